"""Gradient-accuracy study: exact estimators match the float64 reference, approximations do not."""
from __future__ import annotations

import copy
import math
import re

import pandas as pd
import pytest
import torch
from conftest import TEST_PARAMS, write_u_data

from adjoint_meta import accuracy, config, make_tasks

PARAMS = config.load(TEST_PARAMS)
JOBS = config.accuracy_jobs(PARAMS)
EXACT = ("maml", "maml_adjoint")  # unrolled autograd and the discrete adjoint: MAML's gradient itself
APPROX = ("maml1", "fomaml")


@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tasks")
    raw_dir = d / "raw"
    write_u_data(raw_dir / "ml100k" / "u.data")  # MovieLens-100K format
    out = {}
    for dataset in sorted({j["dataset"] for j in JOBS}):
        make_tasks.run(config.prune(PARAMS, "make-tasks", dataset=dataset), dataset,
                       str(d / f"{dataset}.parquet"), str(d / f"{dataset}.json"), raw_dir=str(raw_dir))
        out[dataset] = str(d / f"{dataset}.parquet")
    return out


def _spec(job: dict) -> dict:
    """The study's slice, with the exact and the one-step/first-order estimators added."""
    spec = config.prune(PARAMS, "accuracy", **job)
    study = spec["accuracy"][job["name"]]
    study["estimators"] = list(dict.fromkeys([*study["estimators"], *EXACT, *APPROX]))
    return spec


@pytest.mark.parametrize("job", JOBS, ids=[j["name"] for j in JOBS])
def test_exact_estimators_match_reference_and_approximations_do_not(job, task_files, tmp_path):
    spec = _spec(job)
    study = spec["accuracy"][job["name"]]
    out = tmp_path / "acc.csv"
    frame = accuracy.run(spec, job["name"], task_files[job["dataset"]], str(out), str(tmp_path / "log.txt"))

    assert list(frame.columns) == accuracy.COLUMNS
    pd.testing.assert_frame_equal(pd.read_csv(out), frame, check_dtype=False)
    assert len(frame) == study["batches"] * len(study["steps"]) * len(study["estimators"])
    for col in ("rel_error", "cosine", "norm_ratio", "ms"):
        assert frame[col].map(math.isfinite).all(), col
    assert (frame["ms"] > 0).all() and (frame["dtype"] == "float32").all()

    exact = frame[frame["estimator"].isin(EXACT)]
    assert len(exact) == study["batches"] * len(study["steps"]) * len(EXACT)
    assert (exact["rel_error"] < 1e-4).all(), exact
    assert (exact["cosine"] > 0.9999).all(), exact

    K = max(study["steps"])
    at_k = frame[frame["steps"] == K].groupby("estimator")["rel_error"].max()
    for name in APPROX:
        assert at_k[name] > 10 * at_k[list(EXACT)].max(), at_k
    print(f"{job['name']}: max rel_error at K={K}: " + ", ".join(f"{k} {v:.2e}" for k, v in at_k.items()))
    log = (tmp_path / "log.txt").read_text()
    assert len(re.findall(r"batch \d+/\d+ K=\d+ .*rel\. error", log)) == study["batches"] * len(study["steps"])


def test_rerun_gives_same_errors_and_unknown_estimator_is_named(task_files, tmp_path):
    job = JOBS[0]
    spec = _spec(job)
    spec["accuracy"][job["name"]].update(steps=[3], batches=1)
    a = accuracy.run(spec, job["name"], task_files[job["dataset"]], str(tmp_path / "a.csv"))
    b = accuracy.run(copy.deepcopy(spec), job["name"], task_files[job["dataset"]], str(tmp_path / "b.csv"))
    pd.testing.assert_series_equal(a["rel_error"], b["rel_error"])
    spec["accuracy"][job["name"]]["estimators"].append("nope")
    with pytest.raises(config.ParamsError, match="'nope'"):
        accuracy.run(spec, job["name"], task_files[job["dataset"]], str(tmp_path / "c.csv"))
    assert not (tmp_path / "c.csv").exists()


def test_compare_figures():
    ref = torch.tensor([3.0, 4.0], dtype=torch.float64)
    f = accuracy.compare(torch.tensor([6.0, 8.0]), ref)
    assert f == pytest.approx({"rel_error": 1.0, "cosine": 1.0, "norm_ratio": 2.0})
    assert math.isnan(accuracy.compare(torch.tensor([math.nan, 0.0]), ref)["rel_error"])
