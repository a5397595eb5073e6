"""The baselines: the predictor baselines against a hand computation, the two initialization
baselines through the train step, and the parameter checks that keep baselines out of places
where they do not belong."""
from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TEST_PARAMS
from test_train import tasks  # noqa: F401  (the CosMixture task pool of the test configuration)

from adjoint_meta import baselines, config, kinds, model_file, train
from adjoint_meta.backends import build as build_model
from adjoint_meta.estimators import REGISTRY
from adjoint_meta.report import discussion
from adjoint_meta.seeding import torch_generator
from adjoint_meta.tasks import TaskPool

SHIFT, SCALE = 3.0, 2.0  # the pool's target standardization: rating = y * SCALE + SHIFT

# (task, split, [(item, rating), ...] in stored order); ratings in rating units
USERS = [
    (0, "train", [(0, 4.0), (1, 2.0), (2, 5.0)]),
    (1, "train", [(0, 2.0), (1, 4.0)]),
    (2, "test", [(0, 5.0), (1, 3.0), (3, 1.0), (2, 4.0)]),  # shot 2: support items 0, 1; evaluated on 3, 2
    (3, "test", [(2, 1.0), (3, 2.0), (0, 3.0)]),            # support items 2, 3; evaluated on 0
]


def hand_pool() -> TaskPool:
    rows = [(t, split, "pool", k, item, (r - SHIFT) / SCALE)
            for t, split, ratings in USERS for k, (item, r) in enumerate(ratings)]
    table = pd.DataFrame(rows, columns=["task", "split", "role", "order", "item", "y"])
    table = table.astype({"task": "int32", "order": "int32", "item": "int64", "y": "float32"})
    summary = {"input": {"kind": "onehot", "dim": 4}, "train_pool": "all", "test_eval": "rest",
               "target": {"shift": SHIFT, "scale": SCALE}}
    return TaskPool(table, summary, name="hand")


def test_item_statistics_by_hand():
    stats = baselines.fit(hand_pool())
    mu = (4 + 2 + 5 + 2 + 4) / 5  # 3.4: every training rating
    assert stats.global_mean == mu
    # item 3 has no training rating: the global mean
    assert stats.item_mean.tolist() == [3.0, 3.0, 5.0, mu]
    assert stats.bias.tolist() == [3.0 - mu, 3.0 - mu, 5.0 - mu, 0.0]


def test_predictor_baselines_by_hand():
    out = baselines.evaluate(hand_pool(), shot=2, source="ml100k")
    assert set(out) == set(kinds.PREDICTORS)
    mu = 3.4
    # item mean: user 2 gets (mu, 5) for ratings (1, 4), user 3 gets 3 for rating 3
    im = out["item_mean"]
    assert im["nrmse"]["per_task"] == pytest.approx([math.hypot(mu - 1, 1) / math.hypot(1, 4), 0.0], abs=1e-15)
    assert im["rmse"]["per_task"][0] == pytest.approx(math.sqrt(((mu - 1) ** 2 + 1) / 2), abs=1e-15)
    # user mean + item bias: user 2's support mean 4, user 3's 1.5; b = item mean - mu
    ub = out["user_item_bias"]
    p2 = [4 + 0.0, 4 + (5 - mu)]            # items 3, 2
    p3 = 1.5 + (3 - mu)                     # item 0
    assert ub["nrmse"]["per_task"] == pytest.approx(
        [math.hypot(p2[0] - 1, p2[1] - 4) / math.hypot(1, 4), abs(p3 - 3) / 3], abs=1e-15)
    assert ub["nrmse"]["mean"] == pytest.approx(np.mean(ub["nrmse"]["per_task"]), abs=1e-15)
    # the candidate definitions that apply without fine-tuning, consistent with the primary numbers
    assert set(ub["definitions"]) == {"ours", "standardized", "range", "std", "pooled", "support"}
    assert ub["definitions"]["ours"]["per_task"] == ub["nrmse"]["per_task"]
    assert ub["definitions"]["range"]["per_task"] == pytest.approx([r / 4 for r in ub["rmse"]["per_task"]])
    # on the support set, user 2: predictions 4 + b_0, 4 + b_1 for ratings 5, 3
    s2 = math.hypot(4 + 3 - mu - 5, 4 + 3 - mu - 3) / math.hypot(5, 3)
    assert ub["definitions"]["support"]["per_task"][0] == pytest.approx(s2, abs=1e-15)


def test_predictor_baselines_need_rating_data():
    pool = hand_pool()
    pool.onehot = False
    with pytest.raises(ValueError, match="one-hot item inputs"):
        baselines.fit(pool)


# ---------------------------------------------------------------- initialization baselines


def _train(params, d, out, estimator, **meta):
    cell = dict(experiment="fig2_50shot", dataset="cosmixture", setting="5shot-5val", estimator=estimator, seed=0)
    spec = config.prune(params, "train", **cell)
    spec["meta"].update(meta)
    train.run(spec, cell, str(d / "t.parquet"), str(out / f"{estimator}.pt"), str(out / f"{estimator}.csv"))
    return model_file.load(str(out / f"{estimator}.pt"))[0], spec


def _initial_theta(spec, dataset="cosmixture", seed=0):
    """How train.run draws the initial theta every estimator of a dataset and seed starts from."""
    ds = spec["datasets"][dataset]
    pool = TaskPool.load(spec["_tasks"])
    model = build_model(pool.input_dim, ds["hidden"], ds["activation"])
    return model.init(torch_generator(int(spec["seed"]), "init", dataset, seed), torch.float32), model, pool


def test_random_init_is_the_estimators_initial_theta(tasks, tmp_path):
    params, d = tasks
    theta, spec = _train(params, d, tmp_path, "random_init")
    spec["_tasks"] = str(d / "t.parquet")
    theta0, _, _ = _initial_theta(spec)
    assert torch.equal(theta, theta0)
    # and an estimator that makes no update ends where it started: the same theta
    fomaml, _ = _train(params, d, tmp_path, "fomaml", lr=0.0)
    assert torch.equal(fomaml, theta)


def _pooled_mse(model, pool, theta):
    """Mean squared error over every example of every training task (standardized targets)."""
    tr = pool.train
    valid = torch.arange(tr.y.shape[1]).unsqueeze(0) < tr.n.unsqueeze(1)
    pred = model.predict(theta.to(torch.float64).unsqueeze(0).expand(tr.y.shape[0], -1),
                         pool.features(tr.x, torch.float64))
    return float(((pred - tr.y) ** 2)[valid].mean())


def test_pretrain_lowers_the_pooled_training_error_and_is_reproducible(tasks, tmp_path):
    params, d = tasks
    runs = [_train(params, d, tmp_path / str(i), "pretrain", meta_epochs=60, lr=0.01)[0] for i in range(2)]
    assert torch.equal(runs[0], runs[1]), "pretrain must be bit for bit reproducible from the seed"
    spec = copy.deepcopy(config.prune(params, "train", experiment="fig2_50shot", dataset="cosmixture",
                                      setting="5shot-5val", estimator="pretrain", seed=0))
    spec["_tasks"] = str(d / "t.parquet")
    theta0, model, pool = _initial_theta(spec)
    assert not torch.equal(runs[0], theta0)
    before, after = _pooled_mse(model, pool, theta0), _pooled_mse(model, pool, runs[0])
    assert after < 0.9 * before, (before, after)
    curve = pd.read_csv(tmp_path / "0" / "pretrain.csv")
    assert len(curve) == 60  # one update per meta-step, on a meta-batch of training tasks


# ---------------------------------------------------------------- one registry, clear errors
def test_one_registry_of_kinds():
    assert set(REGISTRY) == set(kinds.KINDS)
    assert config.schema()["$defs"]["estimator"]["properties"]["kind"]["enum"] == list(kinds.KINDS)
    assert [k for k in kinds.KINDS if kinds.is_baseline(k)] == list(kinds.INITIALIZATIONS)
    assert all(kinds.is_baseline(k) for k in kinds.PREDICTORS)


def _doc():
    return config.read_yaml(TEST_PARAMS)


def test_unknown_kind_names_the_key_and_the_kinds():
    doc = _doc()
    doc["estimators"]["pretrain"]["kind"] = "pretraining"
    with pytest.raises(config.ParamsError, match=r"estimators\.pretrain\.kind: 'pretraining' is not allowed; "
                                                 r"allowed values: .*random_init, pretrain"):
        config.validate(doc)


@pytest.mark.parametrize("section, name", [("profiles", "fig34"), ("accuracy", "real")])
def test_a_baseline_in_a_profile_or_accuracy_study_is_refused(section, name):
    doc = _doc()
    doc[section][name]["estimators"].append("random_init")
    with pytest.raises(config.ParamsError, match=rf"{section}\.{name}\.estimators: 'random_init' is a baseline"):
        config.validate(doc)
    with pytest.raises(config.ParamsError, match=rf"{section}\.{name}\.estimators: 'random_init' is a baseline"):
        config.refuse_baselines(doc, section, name)  # what the job itself checks on its slice


def test_a_baseline_cannot_be_the_reference():
    doc = _doc()
    doc["experiments"]["table1"]["paired_test"]["estimator"] = "pretrain"
    doc["experiments"]["ablation_real"]["paired_test"]["estimator"] = "pretrain"
    with pytest.raises(config.ParamsError, match=r"experiments\.table1\.paired_test\.estimator: 'pretrain' is a "
                                                 "baseline"):
        config.validate(doc)


# ---------------------------------------------------------------- the report keeps baselines apart
def _table():
    rows = []
    for d, est, base in (("a", 0.5, 0.6), ("b", 0.5, 0.4)):
        rows += [{"dataset": d, "setting": "s", "estimator": "amaml", "label": "A-MAML", "role": "estimator",
                  "nrmse_mean": est, "reference": "amaml", "p_value": math.nan, "median_diff": 0.0, "report_step": 5},
                 {"dataset": d, "setting": "s", "estimator": "fomaml", "label": "FOMAML", "role": "estimator",
                  "nrmse_mean": est + 0.1, "reference": "amaml", "p_value": 0.5, "median_diff": 0.1, "report_step": 5},
                 {"dataset": d, "setting": "s", "estimator": "item_mean", "label": "Item mean", "role": "baseline",
                  "nrmse_mean": base, "reference": "amaml", "p_value": 0.01, "median_diff": 0.1, "report_step": 0}]
    return pd.DataFrame(rows)


def test_discussion_compares_the_best_estimator_with_the_best_baseline():
    (line,) = discussion.baselines({"t": _table()})
    assert "beats the best baseline in 1 of 2 cells" in str(line)
    # (0.6 - 0.5) / 0.6 = +16.7% and (0.4 - 0.5) / 0.4 = -25%: median -4.2%
    assert "4.2% higher" in str(line) and "-25.0% to +16.7%" in str(line)


def test_baselines_never_enter_the_rankings():
    t = _table()
    assert "item_mean" not in set(discussion.estimators_only(t)["estimator"])
    (line,) = discussion.curves({"t": t}, ["t"])[:1]
    assert "ranks 1 of 2" in str(line)  # among the two estimators, although item mean is lower in cell b
