"""Profiling step: one complete row per sweep point and estimator, one plain-training floor per point,
impossible ratios flagged; memory that grows where it must."""
from __future__ import annotations

import copy
import logging
import math
import re
import sys

import pandas as pd
import pytest
import torch
from conftest import ROOT, TEST_PARAMS

from adjoint_meta import backends, config, make_tasks, profile
from adjoint_meta.estimators import REGISTRY, build
from adjoint_meta.estimators.core import LINEARIZE_BLOCK
from adjoint_meta.outer_loop import meta_train
from adjoint_meta.seeding import derive_seed, torch_generator
from adjoint_meta.tasks import TaskPool

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
    out = tmp_path / f"{job['profile']}.csv"
    frame = profile.run(spec, job["profile"], task_files[job["dataset"]], str(out), log)
    on_disk = pd.read_csv(out)
    assert list(on_disk.columns) == profile.COLUMNS
    pd.testing.assert_frame_equal(on_disk, frame, check_dtype=False)
    return frame


@pytest.mark.parametrize("job", JOBS, ids=[j["profile"] for j in JOBS])
def test_one_complete_row_per_sweep_point_and_estimator(job, task_files, tmp_path):
    spec = config.prune(PARAMS, "profile", **job)
    prof = spec["profiles"][job["profile"]]
    frame = _run(spec, job, task_files, tmp_path, str(tmp_path / "log.txt"))

    ests = prof["estimators"]
    expected = [(var, v, e) for var in profile.SWEEP_VARIABLES for v in prof["sweep"].get(var, []) for e in ests]
    trained = prof.get("trained")
    if trained:
        expected += [(profile.TRAINED, k, e) for k in trained["steps"] for e in trained["estimators"]]
    assert list(zip(frame["variable"], frame["value"], frame["estimator"])) == expected
    at_trained = frame[frame["variable"] == profile.TRAINED]
    assert (at_trained["theta_meta_steps"] == (trained["meta_steps"] if trained else 0)).all()
    assert (at_trained["steps"] == at_trained["value"]).all()
    for col in ("layers", "units"):
        assert (at_trained[col] == prof["fixed"][col]).all()
    full = frame
    frame = frame[frame["variable"] != profile.TRAINED]
    assert (frame["theta_meta_steps"] == 0).all()
    d = TaskPool.load(task_files[job["dataset"]]).input_dim
    for _, row in frame.iterrows():
        at = {k: prof["fixed"][k] for k in profile.SWEEP_VARIABLES} | {row["variable"]: row["value"]}
        assert (row["steps"], row["layers"], row["units"]) == (at["steps"], at["layers"], at["units"])
        assert row["n_params"] == n_params(d, row["layers"], row["units"])
        for col in ("ms_median", "ms_min", "ms_max", "plain_ms", "ratio"):
            assert math.isfinite(row[col]) and row[col] > 0, col
        assert row["ms_min"] <= row["ms_median"] <= row["ms_max"]
        assert row["ratio"] == pytest.approx(row["ms_median"] / row["plain_ms"])
        assert row["repeats"] == prof["repeats"] and row["nfe"] >= 1 and row["stored_bytes"] >= 0
        # autograd's saved tensors: counted for the estimators that build a graph, none for the others
        uses_autograd = REGISTRY[row["kind"]].uses_autograd
        assert (row["saved_bytes"] > 0) if uses_autograd else (row["saved_bytes"] == 0), row["estimator"]
        assert row["kind"] == spec["estimators"][row["estimator"]]["kind"]
        assert row["threads"] == spec["runtime"]["threads"] and row["dtype"] == "float32"
        if sys.platform.startswith("linux") and row["memory_method"] != "unavailable":
            assert row["memory_method"] == "rss-highwater"
        if row["memory_method"] != "unavailable":
            assert not pd.isna(row["peak_bytes"]) and row["peak_bytes"] >= 0
    assert frame["below_floor"].tolist() == profile.below_floor(frame).tolist()

    # one floor per (model, K), measured beside every estimator of the profile, and a point shared by
    # several sweeps (the fixed one) measured once
    points = frame.groupby(["steps", "layers", "units"])
    assert (points["plain_ms"].nunique() == 1).all()
    assert (frame["plain_repeats"] == len(ests) * prof["repeats"]).all()
    assert (points.apply(lambda g: g.groupby("estimator")["ms_median"].nunique().max()) == 1).all()
    log = (tmp_path / "log.txt").read_text()
    n_trained = len(trained["steps"]) if trained else 0
    assert len(re.findall(r"plain inner training [\d.]+ ms \(median of \d+ calls\)", log)) \
        == points.ngroups + n_trained
    assert len(re.findall(r"^.* INFO +\w+ +[\d.]+ ms \(x[\d.]+ plain\) +peak [\d.]+ MB", log, re.M)) \
        == points.ngroups * len(ests) + len(full) - len(frame)
    if trained:
        assert re.search(rf"trained theta: {trained['meta_steps']} meta-update\(s\) of {trained['estimator']}", log)


def test_every_candidate_is_warmed_up_then_timed_beside_the_floor():
    calls = []
    fns = {name: (lambda n=name: calls.append(n)) for name in ("a", "b", "c")}
    floor, times = profile.time_interleaved(lambda: calls.append("floor"), fns, 3, torch.device("cpu"))
    rounds = profile.WARMUP_ROUNDS + 3
    assert profile.WARMUP_ROUNDS >= 2
    assert calls == ["floor", "a", "floor", "b", "floor", "c"] * rounds  # the floor right before each
    assert len(floor) == 3 * 3 and all(len(t) == 3 for t in times.values())


def test_below_floor_flags_estimators_that_do_the_floors_work_and_time_under_it():
    rows = pd.DataFrame([  # kind, K, gradient evaluations, Hessian-vector products, ratio -> flagged
        ("tbptt", 100, 100, 10, 0.5, True),
        ("imaml", 100, 100, 5, 1.3, False),
        ("reptile", 50, 50, 0, 0.999, True),
        ("maml1", 100, 1, 0, 0.02, False),      # one step: legitimately far below K plain steps
        ("maml1", 1, 1, 0, 0.8, True),          # ... but not below one
        ("amaml", 200, 44, 400, 0.9, True),     # adaptive forward with few evaluations, 2K products back
        ("amaml", 200, 44, 100, 0.9, False),    # fewer passes than the floor's K steps: not impossible
    ], columns=["kind", "steps", "nfe", "hvp", "ratio", "expected"])
    assert profile.below_floor(rows).tolist() == rows["expected"].tolist()


def test_quick_preset_times_profiles_with_at_least_three_repeats():
    quick = config.load(ROOT / "params.yaml", {"preset": "quick"})
    assert quick["profiles"] and all(p["repeats"] >= 3 for p in quick["profiles"].values())


def _only(estimators: list[str], **prof) -> tuple[dict, dict]:
    """The fig34 job and its slice with the profile reduced to ``estimators`` (and ``prof`` changes; no
    measurement at a trained theta unless ``prof`` has one)."""
    job = next(j for j in JOBS if j["profile"] == "fig34")
    params = copy.deepcopy(PARAMS)
    params["profiles"]["fig34"].pop("trained", None)
    params["profiles"]["fig34"].update(estimators=estimators, **prof)
    return job, config.prune(params, "profile", **job)


def test_adjoint_stores_one_state_per_grid_point(task_files, tmp_path):
    """A-MAML with stored states keeps u_0..u_K: (K + 1) x tasks x P floats, exactly, plus the
    linearizations of one block of states that the backward sweep computes together."""
    job, spec = _only(["amaml"])
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
    job, spec = _only(["maml", "es"], sweep={"steps": [1, 10, 40]}, fixed={"steps": 10, "layers": 2, "units": 32})
    frame = _run(spec, job, task_files, tmp_path)
    figures = {e: list(g["peak_bytes"].astype(float)) for e, g in frame.groupby("estimator")}
    print("peak MiB at K = 1, 10, 40:", {k: [round(v / MiB, 3) for v in p] for k, p in figures.items()})
    maml = figures["maml"]
    assert maml[-1] > maml[0] + 1 * MiB, maml
    assert maml[0] <= maml[1] <= maml[2], maml


@pytest.mark.parametrize("estimator", ["amaml", "maml_adjoint_layer"])
def test_trained_theta_comes_from_the_training_loop(estimator, task_files):
    """The profile's trained theta is ``outer_loop.meta_train``'s on the profile's draws, also for an estimator
    that learns its step sizes alongside theta; the initial theta is left as it was."""
    job = next(j for j in JOBS if j["profile"] == "fig34")
    spec = copy.deepcopy(config.prune(PARAMS, "profile", **job))
    prof = spec["profiles"]["fig34"]
    prof["trained"].update(estimator=estimator, meta_steps=4)
    assert estimator in spec["estimators"]
    pool = TaskPool.load(task_files[job["dataset"]])
    fixed = prof["fixed"]
    model = backends.of_dataset(spec["datasets"][job["dataset"]], pool.input_dim, [fixed["units"]] * fixed["layers"])
    theta0 = model.init(torch.Generator().manual_seed(0), torch.float32)
    before = theta0.clone()
    log = logging.getLogger("test_profile")
    theta = profile.train_theta(spec, "fig34", prof, pool, model, theta0, torch.device("cpu"), torch.float32, log)
    assert torch.equal(theta0, before) and not torch.equal(theta, theta0) and bool(torch.isfinite(theta).all())

    cfg, master = spec["estimators"][estimator], int(spec["seed"])
    steps = config.inner_steps(cfg["kind"], int(fixed["steps"]))
    est = build(cfg["kind"], cfg, steps, float(spec["inner"]["alpha"]),
                derive_seed(master, "estimator", "profile", "fig34", "train", estimator))
    gen = torch_generator(master, "profile", "fig34", "train")
    st, batch = spec["settings"][prof["setting"]], int(spec["meta"]["meta_batch"])
    expected = before.clone()
    draw = lambda: pool.sample(gen, batch, int(st["shot"]), int(st["val"]), torch.float32)  # noqa: E731
    outer = (prof["trained"]["optimizer"], float(prof["trained"]["lr"]))
    meta_train(est, model, expected, gen, draw, 4, what="reference", outer=outer, on_nonfinite="stop",
               rt=spec["runtime"], device=torch.device("cpu"), dtype=torch.float32, log=log)
    assert torch.equal(theta, expected)
