"""Profiling step: one complete row per sweep point; memory that grows where it must."""
from __future__ import annotations

import copy
import math
import re
import sys

import pandas as pd
import pytest

from adjoint_meta import config, make_tasks, profile
from adjoint_meta.estimators.core import LINEARIZE_BLOCK
from adjoint_meta.tasks import TaskPool
from conftest import TEST_PARAMS

PARAMS = config.load(TEST_PARAMS)
JOBS = config.profile_jobs(PARAMS)
MiB = 2**20


@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tasks")
    out = {}
    for dataset in sorted({j["dataset"] for j in JOBS}):
        make_tasks.run(config.prune(PARAMS, "make-tasks", dataset=dataset), dataset,
                       str(d / f"{dataset}.parquet"), str(d / f"{dataset}.json"))
        out[dataset] = str(d / f"{dataset}.parquet")
    return out


def n_params(d: int, layers: int, units: int) -> int:
    return d * units + units + (layers - 1) * (units * units + units) + units + 1


def _run(spec, job, task_files, tmp_path, log=None) -> pd.DataFrame:
    out = tmp_path / f"{job['profile']}_{job['estimator']}.csv"
    frame = profile.run(spec, job["profile"], job["estimator"], task_files[job["dataset"]], str(out), log)
    on_disk = pd.read_csv(out)
    assert list(on_disk.columns) == profile.COLUMNS
    pd.testing.assert_frame_equal(on_disk, frame, check_dtype=False)
    return frame


@pytest.mark.parametrize("job", JOBS, ids=[f"{j['profile']}-{j['estimator']}" for j in JOBS])
def test_one_complete_row_per_sweep_point(job, task_files, tmp_path):
    spec = config.prune(PARAMS, "profile", **job)
    prof = spec["profiles"][job["profile"]]
    frame = _run(spec, job, task_files, tmp_path, str(tmp_path / "log.txt"))

    expected = [(var, v) for var in profile.SWEEP_VARIABLES for v in prof["sweep"].get(var, [])]
    assert list(zip(frame["variable"], frame["value"])) == expected
    d = TaskPool.load(task_files[job["dataset"]]).input_dim
    kind = spec["estimators"][job["estimator"]]["kind"]
    for _, row in frame.iterrows():
        at = {k: prof["fixed"][k] for k in profile.SWEEP_VARIABLES} | {row["variable"]: row["value"]}
        assert (row["steps"], row["layers"], row["units"]) == (at["steps"], at["layers"], at["units"])
        assert row["n_params"] == n_params(d, row["layers"], row["units"])
        for col in ("ms_median", "ms_min", "ms_max", "plain_ms", "ratio"):
            assert math.isfinite(row[col]) and row[col] > 0, col
        assert row["ms_min"] <= row["ms_median"] <= row["ms_max"]
        assert row["ratio"] == pytest.approx(row["ms_median"] / row["plain_ms"])
        assert row["repeats"] == prof["repeats"] and row["nfe"] >= 1 and row["stored_bytes"] >= 0
        assert row["kind"] == kind and row["threads"] == spec["runtime"]["threads"] and row["dtype"] == "float32"
        if sys.platform.startswith("linux") and row["memory_method"] != "unavailable":
            assert row["memory_method"] == "rss-highwater"
        if row["memory_method"] != "unavailable":
            assert not pd.isna(row["peak_bytes"]) and row["peak_bytes"] >= 0
    log = (tmp_path / "log.txt").read_text()
    assert len(re.findall(r"point \d+/\d+ +\w+=\d+ .* ms .* peak [\d.]+ MB", log)) == len(frame)


def test_adjoint_stores_one_state_per_grid_point(task_files, tmp_path):
    """A-MAML with stored states keeps u_0..u_K: (K + 1) x tasks x P floats, exactly, plus the
    linearizations of one block of states that the backward sweep computes together."""
    job = next(j for j in JOBS if j["estimator"] == "amaml")
    spec = config.prune(PARAMS, "profile", **job)
    assert spec["estimators"]["amaml"]["store"] == "states"
    frame = _run(spec, job, task_files, tmp_path)
    B = spec["meta"]["meta_batch"]
    per_block_state = set()
    for k, p, stored in zip(frame["steps"], frame["n_params"], frame["stored_bytes"]):
        extra = stored - (k + 1) * B * p * 4
        per_block_state.add(extra / min(LINEARIZE_BLOCK, k + 1))
    assert len(per_block_state) == 1 and per_block_state.pop() > 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CPU peak memory is measured on Linux only")
def test_unrolled_maml_memory_grows_with_steps(task_files, tmp_path):
    """Backprop through K unrolled steps keeps K steps of graph; at a size where that is
    megabytes, peak memory at the largest K clearly exceeds that at K = 1."""
    job = next(j for j in JOBS if j["profile"] == "fig34")
    figures = {}
    for est in ("maml", "es"):
        job = dict(job, estimator=est)
        params = copy.deepcopy(PARAMS)
        params["profiles"][job["profile"]].update(estimators=[est], sweep={"steps": [1, 10, 40]},
                                                  fixed={"steps": 10, "layers": 2, "units": 32})
        frame = _run(config.prune(params, "profile", **job), job, task_files, tmp_path)
        figures[est] = list(frame["peak_bytes"].astype(float))
    print("peak MiB at K = 1, 10, 40:", {k: [round(v / MiB, 3) for v in p] for k, p in figures.items()})
    maml = figures["maml"]
    assert maml[-1] > maml[0] + 1 * MiB, maml
    assert maml[0] <= maml[1] <= maml[2], maml
