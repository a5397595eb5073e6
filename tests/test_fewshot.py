"""The few-shot classification experiment: digits tasks, Prototypical Networks, the jobs and their summary.

The estimators themselves are checked on the experiment's CNN against torch.autograd references in
tests/test_funcmodel.py (test_every_estimator_on_the_fewshot_cnn)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from adjoint_meta import config, paths
from adjoint_meta.estimators import InnerProblem
from adjoint_meta.fewshot import PROTONET, cnn, run, summary
from adjoint_meta.fewshot.digits import SHAPE, Digits, Episodes, FewShotError, split
from adjoint_meta.fewshot.protonet import Episodic, ProtoNet
from adjoint_meta.interface import Data

D = torch.float64


@pytest.fixture(scope="module")
def digits():
    return Digits.load()


def test_the_digits_are_the_bundled_set(digits):
    assert digits.images.shape == (1797, *SHAPE) and 0 <= digits.images.min() and digits.images.max() <= 1
    assert sorted(set(digits.labels.tolist())) == list(range(10))


def test_tasks_hold_out_the_test_classes_and_never_reuse_an_image(digits):
    train_classes, test_classes = split([5, 6, 7, 8, 9])
    assert train_classes == [0, 1, 2, 3, 4]
    family = Episodes(digits, test_classes, ways=3, shot=2, query=4, role="test")
    classes, sup, qry = family.draw(torch.Generator().manual_seed(0), 50)
    assert set(classes.flatten().tolist()) == set(test_classes)  # every test digit appears, no other
    for t in range(50):
        assert len(set(classes[t].tolist())) == 3
        assert not set(sup[t].tolist()) & set(qry[t].tolist())
        # label j of the task is its j-th digit, in blocks of shot (support) and query images
        assert digits.labels[sup[t]].tolist() == classes[t].repeat_interleave(2).tolist()
        assert digits.labels[qry[t]].tolist() == classes[t].repeat_interleave(4).tolist()
    # labels are drawn per task: the first label stands for different digits in different tasks
    assert len(set(classes[:, 0].tolist())) > 1
    _, support, query = family.sample(torch.Generator().manual_seed(0), 50, D)
    assert support.x.shape == (50, 6, *SHAPE) and query.y.shape == (50, 12)
    assert support.y[0].tolist() == [0, 0, 1, 1, 2, 2] and torch.allclose(support.w.sum(1), torch.ones(50, dtype=D))
    again = family.sample(torch.Generator().manual_seed(0), 50, D)[1]
    assert torch.equal(again.x, support.x)


@pytest.mark.parametrize("kwargs, key", [(dict(ways=6), "fewshot.ways"), (dict(shot=100, query=90), "fewshot.shot")])
def test_settings_the_digits_cannot_serve_are_refused(digits, kwargs, key):
    args = {**dict(ways=3, shot=2, query=2), **kwargs}
    with pytest.raises(FewShotError, match=key.replace(".", r"\.")):
        Episodes(digits, [5, 6, 7, 8, 9], role="test", **args)


@pytest.mark.parametrize("classes", [[3, 3], [4, 10], [-1, 2]])
def test_bad_test_classes_are_refused(classes):
    with pytest.raises(FewShotError, match="fewshot.test_classes"):
        split(classes)


@pytest.mark.parametrize("override, message", [
    ({"fewshot.ways": 4}, "fewshot.ways: 4 classes per task, but the test tasks have 3"),
    ({"fewshot.reference": "random_init"}, "fewshot.reference: 'random_init' is an initialization baseline"),
    ({"fewshot.estimators": ["amaml", "nope"]}, "fewshot.estimators: 'nope' is not defined"),
])
def test_the_parameters_check_the_experiment(override, message):
    with pytest.raises(config.ParamsError, match=message.replace(".", r"\.").replace("(", r"\(")):
        config.load("tests/params.test.yaml", override)


# ---------------------------------------------------------------- Prototypical Networks
@pytest.fixture(scope="module")
def proto(digits):
    net = ProtoNet(cnn.trunk(3).to(D), SHAPE)
    theta = net.init(torch.Generator().manual_seed(0), D)
    _, support, query = Episodes(digits, [0, 1, 2, 3], 3, 2, 3, "training").sample(torch.Generator().manual_seed(1),
                                                                                   4, D)
    return net, theta, support, query


def test_protonet_logits_are_distances_to_the_class_means(proto):
    net, theta, support, query = proto
    got = net.logits(theta, support, query, 3)
    embed = net.module  # the template holds other parameters: load theta into a copy
    nn.utils.vector_to_parameters(theta, embed.parameters())
    for t in range(4):
        es, eq = embed(support.x[t]), embed(query.x[t])
        for c in range(3):
            mean = es[support.y[t] == c].mean(0)
            torch.testing.assert_close(got[t, :, c], -((eq - mean) ** 2).sum(1), rtol=1e-12, atol=1e-12)


def test_protonet_per_task_gradients_are_those_of_each_tasks_loss(proto):
    net, theta, support, query = proto
    mg = Episodic(net, 3)(theta, InnerProblem(net, support, query))
    for t in range(4):
        th = theta.clone().requires_grad_(True)
        one = lambda d, t=t: Data(d.x[t:t + 1], d.y[t:t + 1], d.w[t:t + 1])  # noqa: E731
        (g,) = torch.autograd.grad(net.loss(th, one(support), one(query), 3).sum(), th)
        torch.testing.assert_close(mg.grad[t], g, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(mg.query_loss[t], net.loss(theta, one(support), one(query), 3)[0])


# ---------------------------------------------------------------- the jobs
@pytest.fixture(scope="module")
def spec():
    return config.load("tests/params.test.yaml")


def _job(spec, tmp_path, method, seed=0):
    out, curve = tmp_path / f"{method}{seed}.json", tmp_path / f"{method}{seed}.csv"
    if method == PROTONET:
        run.protonet(config.job_slice(spec, "protonet", seed=seed), seed, str(out), str(curve))
    else:
        run.estimator(config.job_slice(spec, "fewshot", estimator=method, seed=seed), method, seed, str(out),
                      str(curve))
    return json.loads(out.read_text()), pd.read_csv(curve)


def test_a_job_tests_the_shared_tasks_and_is_reproducible(spec, tmp_path):
    fs = spec["fewshot"]
    record, curve = _job(spec, tmp_path, "amaml")
    assert record["meta_steps"] == fs["meta"]["meta_epochs"] and record["inner_steps"] == fs["steps"]
    steps = sorted({0, 2, 3, 4})  # every record_every steps, the last step and K
    assert record["steps_recorded"] == steps and len(curve) == fs["n_test_tasks"] * len(steps)
    assert curve["accuracy"].between(0, 1).all() and (curve["cross_entropy"] > 0).all()
    assert not list(tmp_path.glob("*.ckpt"))
    again, curve_again = _job(spec, tmp_path, "amaml")
    pd.testing.assert_frame_equal(curve_again, curve)
    assert again["accuracy"] == record["accuracy"]
    # random_init keeps the shared initial theta: its step-0 scores are those of the untrained CNN
    ri, ri_curve = _job(spec, tmp_path, "random_init")
    assert ri["meta_steps"] == 0 and ri["steps_recorded"] == steps  # the experiment's K even where the method has none
    proto, proto_curve = _job(spec, tmp_path, PROTONET)
    assert proto_curve["step"].unique().tolist() == [0] and len(proto_curve) == fs["n_test_tasks"]


def test_protonet_learns_the_meta_training_classes(spec, tmp_path):
    """Trained longer on larger tasks, ProtoNet's training loss falls (a check that can fail: a sign or
    gradient error in the prototypes would not)."""
    spec = json.loads(json.dumps(spec))
    spec["fewshot"].update(ways=3, shot=3, query=5, channels=8, meta=dict(optimizer="adam", lr=0.01, meta_batch=4,
                                                                         meta_epochs=40))
    spec["runtime"]["log_every"] = 1000
    run.protonet(config.job_slice(spec, "protonet", seed=0), 0, str(tmp_path / "p.json"), str(tmp_path / "p.csv"))
    record = json.loads((tmp_path / "p.json").read_text())
    assert record["final_accuracy"] > 1 / 3 + 0.15, record


def test_the_summary_sets_the_reference_against_each_method_paired_by_seed_and_task(tmp_path):
    """Synthetic per-task records where the reference is more accurate on every task of every seed,
    the baseline a little less, ProtoNet more accurate: the table's lead and outcome follow."""
    params = {"seed": 0, "meta": {"seeds": [0, 1, 2]},
              "fewshot": {"estimators": ["ref", "base"], "reference": "ref", "steps": 2, "eval_steps": 4}}
    rng = np.random.default_rng(0)
    level = {"ref": 0.7, "base": 0.5, PROTONET: 0.9}
    for method, acc in level.items():
        for seed in (0, 1, 2):
            job = {"estimator": method, "seed": seed}
            json_path = tmp_path / (paths.PROTONET.format(seed=seed) if method == PROTONET
                                    else paths.FEWSHOT.format(**job))
            csv_path = tmp_path / (paths.PROTONET_CURVE.format(seed=seed) if method == PROTONET
                                   else paths.FEWSHOT_CURVE.format(**job))
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps({"label": method, "role": "baseline" if method != "ref" else "estimator"}))
            steps = [0] if method == PROTONET else [0, 2, 4]
            untrained = 1 / 3 if method != PROTONET else acc  # step 0: the initialization, or ProtoNet's one record
            rows = [(t, s, (acc if s else untrained) + 0.01 * rng.standard_normal(),
                     1.0) for s in steps for t in range(20)]
            pd.DataFrame(rows, columns=["task", "step", "accuracy", "cross_entropy"]).to_csv(csv_path, index=False)
    table, curves = summary.tables(params, tmp_path)
    row = table.set_index("method")
    assert row.loc["base", "ref_lead"] == pytest.approx(0.2, abs=0.01) and row.loc["base", "outcome"] == "supports"
    assert row.loc[PROTONET, "ref_lead"] == pytest.approx(-0.2, abs=0.01) and row.loc[PROTONET,
                                                                                      "outcome"] == "contradicts"
    assert row.loc[PROTONET, "accuracy_step0"] == row.loc[PROTONET, "accuracy_final"]  # no fine-tuning
    assert row.loc["ref", "accuracy_step0"] == pytest.approx(1 / 3, abs=0.01)
    assert set(curves[curves["method"] == "ref"]["step"]) == {0, 2, 4}
