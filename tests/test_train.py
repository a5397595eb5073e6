"""Meta-training: progress, reproducibility, and non-finite meta-gradients never reaching theta."""
from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest
import reference as ref
import torch
from conftest import TEST_PARAMS

from adjoint_meta import config, make_tasks, model_file, outer_loop, train
from adjoint_meta.evaluate import errors, finetune_curve
from adjoint_meta.io import read_json
from adjoint_meta.model import MLP


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    params = config.load(TEST_PARAMS)
    d = tmp_path_factory.mktemp("tasks")
    make_tasks.run(config.prune(params, "make-tasks", dataset="cosmixture"), "cosmixture",
                   str(d / "t.parquet"), str(d / "t.json"))
    return params, d


def _spec(params, estimator="fomaml", **meta):
    cell = dict(experiment="fig2_50shot", dataset="cosmixture", setting="5shot-5val", estimator=estimator, seed=0)
    spec = config.prune(params, "train", **cell)
    spec["meta"].update(meta)
    return spec, cell


def test_training_logs_progress_and_is_reproducible(tasks, tmp_path):
    params, d = tasks
    spec, cell = _spec(params)
    thetas = []
    for i in range(2):
        train.run(spec, cell, str(d / "t.parquet"), str(tmp_path / f"m{i}.pt"), str(tmp_path / f"c{i}.csv"),
                  str(tmp_path / f"log{i}.txt"))
        thetas.append(model_file.load(tmp_path / f"m{i}.pt")[0])
    assert torch.equal(thetas[0], thetas[1])
    log = (tmp_path / "log0.txt").read_text()
    assert re.search(r"meta-step 20/20 +query loss [\d.e+-]+ +elapsed [\d.]+s", log)
    curve = pd.read_csv(tmp_path / "c0.csv")
    assert list(curve["meta_step"]) == list(range(1, 21)) and np.isfinite(curve["query_loss"]).all()
    other = copy.deepcopy(spec)
    other["seed"] = 1
    train.run(other, cell, str(d / "t.parquet"), str(tmp_path / "m2.pt"), str(tmp_path / "c2.csv"))
    assert not torch.equal(model_file.load(tmp_path / "m2.pt")[0], thetas[0])


def _poisoned(d, tmp_path, task: int):
    table = pd.read_parquet(d / "t.parquet")
    table.loc[table["task"] == task, "y"] = np.float32(3e38)
    table.to_parquet(tmp_path / "bad.parquet")
    (tmp_path / "bad.json").write_text((d / "t.json").read_text())
    return str(tmp_path / "bad.parquet")


@pytest.mark.parametrize("estimator", ["fomaml", "maml"])
def test_diverging_task_stops_with_step_and_task(tasks, tmp_path, estimator):
    params, d = tasks
    spec, cell = _spec(params, estimator)
    with pytest.raises(outer_loop.NonFiniteError, match=r"meta-step \d+ for training task\(s\) \[3\]"):
        train.run(spec, cell, _poisoned(d, tmp_path, 3), str(tmp_path / "m.pt"), str(tmp_path / "c.csv"))
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "c.csv").exists()


def test_diverging_task_is_skipped_and_counted(tasks, tmp_path):
    params, d = tasks
    spec, cell = _spec(params, on_nonfinite="skip")
    summary = train.run(spec, cell, _poisoned(d, tmp_path, 3), str(tmp_path / "m.pt"), str(tmp_path / "c.csv"),
                        str(tmp_path / "log.txt"))
    theta, _ = model_file.load(tmp_path / "m.pt")
    assert summary["skipped_tasks"] > 0 and torch.isfinite(theta).all()
    assert "skipping them" in (tmp_path / "log.txt").read_text()
    assert pd.read_csv(tmp_path / "c.csv")["skipped_tasks"].iloc[-1] == summary["skipped_tasks"]


def test_summary_of_tasks_is_written(tasks):
    _, d = tasks
    s = read_json(d / "t.json")
    assert s["n_train_tasks"] == 12 and s["n_test_tasks"] == 6
    assert s["input"]["kind"] == "dense" and s["input"]["dim"] == 2 and s["input"]["domain"] == [-1.0, 1.0]
    assert s["target"]["mode"] == "standardized" and s["target"]["scale"] > 0


def test_standardized_tasks_have_zero_mean_unit_std_on_training_points(tasks):
    _, d = tasks
    table = pd.read_parquet(d / "t.parquet")
    train = table[table["split"] == "train"]
    for col in ("x0", "x1", "y"):
        assert abs(train[col].mean()) < 1e-5 and abs(train[col].std(ddof=0) - 1) < 1e-5


@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_finetuning_equals_a_plain_loop(optimizer):
    """Fine-tuning at evaluation (in inference mode) takes the steps a plain loop takes."""
    m = MLP([2, 6, 6, 1], "tanh")
    support, evaluation = ref.problem_data([2, 6, 6, 1], B=3, n_support=10, n_query=12, seed=4)
    theta = m.init(torch.Generator().manual_seed(0), torch.float64)
    curve = finetune_curve(m, theta, support, evaluation, [0, 3, 7], optimizer, 0.05)
    u = torch.nn.Parameter(theta.unsqueeze(0).repeat(3, 1))
    opt = torch.optim.Adam([u], lr=0.05, weight_decay=1e-6) if optimizer == "adam" else None
    expect = {0: errors(m, u.detach(), evaluation)}
    for step in range(1, 8):
        g = m.grad(u.detach(), support)
        if opt is None:
            u = torch.nn.Parameter(u.detach() - 0.05 * g)
        else:
            u.grad = g
            opt.step()
        expect[step] = errors(m, u.detach(), evaluation)
    for step in (0, 3, 7):
        for got, want in zip(curve[step], expect[step]):
            assert torch.allclose(got, want, rtol=1e-12, atol=0)
    assert not torch.allclose(curve[7][0], curve[0][0])  # it did move


@pytest.mark.parametrize("learn, method", [("layer", "reverse"), ("scalar", "forward"), ("scalar", "es")])
def test_learned_step_sizes_are_trained_recorded_and_used_at_test_time(tasks, tmp_path, learn, method):
    """The outer loop moves theta and the step sizes; the curve has a column per learned rate, the
    model file holds them, a resumed run ends where an uninterrupted one does, and evaluation
    fine-tunes with them."""
    from adjoint_meta import evaluate

    params, d = tasks
    params = copy.deepcopy(params)
    params["estimators"]["maml_adjoint"].update(learn_rate=learn, rate_method=method, es_population=4, es_elite=2)
    spec, cell = _spec(params, "maml_adjoint", lr=0.01)
    summary = train.run(spec, cell, str(d / "t.parquet"), str(tmp_path / "m.pt"), str(tmp_path / "c.csv"))
    alpha = summary["learned_rates"]["alpha"]
    assert len(alpha) == (3 if learn == "layer" else 1) and all(a > 0 for a in alpha)
    assert alpha != pytest.approx([params["inner"]["alpha"]] * len(alpha), rel=1e-6)  # they moved
    curve = pd.read_csv(tmp_path / "c.csv")
    columns = [c for c in curve.columns if c.startswith("alpha")]
    assert columns == ({"layer": ["alpha_0", "alpha_1", "alpha_2"]}.get(learn)
                       or (["alpha", "alpha_sigma"] if method == "es" else ["alpha"]))
    assert curve[columns[0]].iloc[-1] == pytest.approx(alpha[0], rel=1e-6)
    history = summary["learned_rates"]["history"]
    assert history["meta_step"] == list(range(1, 21)) and history[columns[0]][-1] == pytest.approx(alpha[0], rel=1e-6)
    theta, _ = model_file.load(tmp_path / "m.pt")
    assert theta.numel() == summary["n_params"]  # theta alone: the step sizes are beside it

    # resume from a checkpoint taken half-way: same theta and step sizes
    resumed = copy.deepcopy(spec)
    resumed["runtime"]["checkpoint_every"] = 10
    with pytest.raises(KeyboardInterrupt):
        _interrupt_after(10, lambda: train.run(resumed, cell, str(d / "t.parquet"), str(tmp_path / "r.pt"),
                                               str(tmp_path / "rc.csv")))
    again = train.run(resumed, cell, str(d / "t.parquet"), str(tmp_path / "r.pt"), str(tmp_path / "rc.csv"))
    assert again["learned_rates"]["alpha"] == pytest.approx(alpha, rel=1e-12)
    assert torch.equal(model_file.load(tmp_path / "r.pt")[0], theta)

    ecell = dict(cell)
    ev_spec = config.prune(params, "evaluate", **ecell)
    result = evaluate.run(ev_spec, ecell, str(tmp_path / "m.pt"), str(d / "t.parquet"), str(tmp_path / "e.json"),
                          str(tmp_path / "e.csv"))
    fixed = copy.deepcopy(ev_spec)
    blob = torch.load(tmp_path / "m.pt", weights_only=False)
    blob["summary"]["learned_rates"] = None
    torch.save(blob, tmp_path / "fixed.pt")
    other = evaluate.run(fixed, ecell, str(tmp_path / "fixed.pt"), str(d / "t.parquet"), str(tmp_path / "f.json"),
                         str(tmp_path / "f.csv"))
    assert result["nrmse"]["per_task"] != other["nrmse"]["per_task"]  # the learned rates were used
    assert result["at_start"] == other["at_start"]


def _interrupt_after(steps: int, job):
    """Run ``job`` and stop it (as Ctrl-C would) at meta-step ``steps`` + 1."""
    from unittest import mock

    calls = {"n": 0}
    real = outer_loop.InnerProblem

    def counting(*a, **k):
        calls["n"] += 1
        if calls["n"] > steps:
            raise KeyboardInterrupt
        return real(*a, **k)

    with mock.patch.object(outer_loop, "InnerProblem", counting):
        job()


def test_a_step_size_that_overflows_is_named_and_undone(tasks, tmp_path):
    params, d = tasks
    params = copy.deepcopy(params)
    params["estimators"]["maml_adjoint"].update(learn_rate="layer")
    spec, cell = _spec(params, "maml_adjoint", optimizer="sgd", lr=1e12)
    with pytest.raises(outer_loop.NonFiniteError) as info:
        train.run(spec, cell, str(d / "t.parquet"), str(tmp_path / "m.pt"), str(tmp_path / "c.csv"))
    message = str(info.value)
    assert re.search(r"meta-step 1 of .*the step size of layer \d became (inf|0)", message), message
    assert "left as they were" in message and not (tmp_path / "m.pt").exists()


def test_a_learned_step_size_that_makes_the_inner_loop_diverge_is_named(tasks, tmp_path):
    params, d = tasks
    params = copy.deepcopy(params)
    params["estimators"]["maml_adjoint"].update(learn_rate="layer", rate_init=1e4)
    spec, cell = _spec(params, "maml_adjoint")
    with pytest.raises(outer_loop.NonFiniteError) as info:
        train.run(spec, cell, str(d / "t.parquet"), str(tmp_path / "m.pt"), str(tmp_path / "c.csv"))
    message = str(info.value)
    assert re.search(r"meta-step 1 for training task\(s\) \[[\d, ]+\].*learned step sizes \(alpha_0 1e\+04, "
                     r"alpha_1 1e\+04, alpha_2 1e\+04\) are largest at alpha_\d", message), message
    assert not (tmp_path / "m.pt").exists()
