"""Synthetic task families (data/synthetic.py) against the formulas of docs/protocol.md §3 and §5.

Every expected target is recomputed here, independently of the module, from the task
parameters the module reports in ``summary['task_params']`` and the inputs it stored.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from adjoint_meta.data import synthetic

PI = math.pi
PHASE = 5 * PI / 12

# (family, variant) -> (input dim, input domain, {parameter: range})
SPECS = {
    ("cosmixture", "paper"): (2, (-1.0, 1.0), {"A": (0.1, 1.0), "omega": (0.5 * PI, 2 * PI), "phi": (3.0, 6.0)}),
    ("cosmixture", "released"): (2, (-1.0, 1.0), {"c": (0.1, 1.0), "phi": (0.5, 2.0), "k": (3.0, 6.0)}),
    ("alpine", "paper"): (2, (-10.0, 10.0), {"phi1": (-PHASE, PHASE), "phi2": (-PHASE, PHASE)}),
    ("alpine", "released"): (2, (-10.0, 10.0), {"phi": (-PHASE, PHASE)}),
    ("sinusoid", "paper"): (1, (-5.0, 5.0), {"A": (0.1, 5.0), "phi": (0.0, PI), "b": (-1.0, 1.0)}),
}
KEYS = list(SPECS)


def cos_paper(x, p):
    return -0.1 * sum(p["A"] * np.cos(p["omega"] * x[:, i] + p["phi"]) for i in range(2)) - (x ** 2).sum(1)


def cos_released(x, p):
    return -p["c"] * sum(np.cos(p["k"] * PI * x[:, i] + p["phi"]) for i in range(2)) - (x ** 2).sum(1)


def alpine_paper(x, p):
    phases = (p["phi1"], p["phi2"])
    return sum(np.abs(x[:, i] * np.sin(x[:, i] + phases[i]) + 0.1 * x[:, i]) for i in range(2))


def alpine_released(x, p):
    return sum(np.abs(x[:, i] * np.sin(x[:, i] + PI + p["phi"]) + 0.1 * x[:, i]) for i in range(2))


def sinusoid(x, p):
    return p["A"] * np.sin(x[:, 0] + p["phi"]) + p["b"]


FORMULAS = {
    ("cosmixture", "paper"): cos_paper,
    ("cosmixture", "released"): cos_released,
    ("alpine", "paper"): alpine_paper,
    ("alpine", "released"): alpine_released,
    ("sinusoid", "paper"): sinusoid,
}


def make_cfg(family, variant, standardize=False, n_train=30, n_test=12, train_points=25,
             test_support=10, test_eval=8):
    return {"family": family, "variant": variant, "standardize": standardize,
            "n_train_tasks": n_train, "n_test_tasks": n_test, "train_points": train_points,
            "test_support_points": test_support, "test_eval_points": test_eval}


def gen(family, variant, seed=0, **kw):
    return synthetic.generate(make_cfg(family, variant, **kw), np.random.default_rng(seed))


def task_params(summary) -> list[dict]:
    """Parameters of every task, indexed by task id (training tasks come first)."""
    return summary["task_params"]["train"] + summary["task_params"]["test"]


def inputs(table, dim):
    return table[[f"x{j}" for j in range(dim)]].to_numpy(np.float64)


def max_formula_error(table, summary, formula, dim) -> float:
    worst = 0.0
    params = task_params(summary)
    for t, g in table.groupby("task"):
        expected = formula(inputs(g, dim), params[t])
        worst = max(worst, float(np.max(np.abs(g["y"].to_numpy(np.float64) - expected))))
    return worst


# -- layout ----------------------------------------------------------------------

@pytest.mark.parametrize("key", KEYS)
def test_layout(key):
    dim = SPECS[key][0]
    table, summary = gen(*key, n_train=7, n_test=4, train_points=11, test_support=6, test_eval=5)
    assert list(table.columns) == ["task", "split", "role", "order"] + [f"x{j}" for j in range(dim)] + ["y"]
    assert table["task"].nunique() == 11 and sorted(table["task"].unique()) == list(range(11))
    split = table.groupby("task")["split"].agg(lambda s: set(s))
    assert all(split[t] == {"train"} for t in range(7)) and all(split[t] == {"test"} for t in range(7, 11))
    for t, g in table.groupby("task"):
        n_pool, n_eval = (11, 0) if t < 7 else (6, 5)
        assert (g["role"] == "pool").sum() == n_pool and (g["role"] == "eval").sum() == n_eval
        assert sorted(g["order"]) == list(range(n_pool + n_eval))
        # the pool comes first in the stored order, then the fresh evaluation points
        assert (g.sort_values("order")["role"].to_numpy() == ["pool"] * n_pool + ["eval"] * n_eval).all()
    assert len(summary["task_params"]["train"]) == 7 and len(summary["task_params"]["test"]) == 4
    assert summary["n_rows"] == len(table) == 7 * 11 + 4 * 11
    assert summary["input"]["dim"] == dim and summary["input"]["kind"] == "dense"
    assert summary["input"]["domain"] == list(SPECS[key][1])
    assert (summary["family"], summary["variant"]) == key
    assert (summary["train_pool"], summary["test_eval"]) == ("first", "eval_rows")


# -- the targets are the stated formulas -------------------------------------------

@pytest.mark.parametrize("key", KEYS)
def test_targets_follow_the_formula(key):
    dim = SPECS[key][0]
    table, summary = gen(*key, seed=11)
    assert set(task_params(summary)[0]) == set(SPECS[key][2])
    # x is stored as float32 and y was computed from the float64 draw: allow that rounding
    assert max_formula_error(table, summary, FORMULAS[key], dim) < 2e-4


@pytest.mark.parametrize("key", KEYS)
def test_inputs_and_parameters_in_range(key):
    dim, (lo, hi), ranges = SPECS[key]
    table, summary = gen(*key, seed=5, n_train=150, n_test=50)
    x = inputs(table, dim)
    assert (x >= lo).all() and (x <= hi).all()
    # uniform over the whole domain, in every coordinate, not a corner of it
    assert (x.min(0) < lo + 0.05 * (hi - lo)).all() and (x.max(0) > hi - 0.05 * (hi - lo)).all()
    assert abs(x.mean() - (lo + hi) / 2) < 0.05 * (hi - lo)
    params = pd.DataFrame(task_params(summary))
    assert list(params.columns) == list(ranges)
    for name, (plo, phi) in ranges.items():
        v = params[name].to_numpy()
        assert (v >= plo).all() and (v <= phi).all(), name
        assert v.min() < plo + 0.1 * (phi - plo) and v.max() > phi - 0.1 * (phi - plo), name
    # test tasks are drawn from the same ranges, and are other tasks than the training ones
    train, test = summary["task_params"]["train"], summary["task_params"]["test"]
    assert not any(p in train for p in test)


# -- consequences of the formulas --------------------------------------------------

def test_cosmixture_paper_has_the_tenth_factor_and_released_does_not():
    # paper: |f + |x|^2| = 0.1 |sum_i A cos(.)| <= 0.2 A <= 0.2; released: up to 2c <= 2
    for variant, bound in (("paper", 0.2), ("released", 2.0)):
        table, summary = gen("cosmixture", variant, seed=2, n_train=60)
        params = task_params(summary)
        amp_name = "A" if variant == "paper" else "c"
        resid = []
        for t, g in table.groupby("task"):
            x = inputs(g, 2)
            r = np.abs(g["y"].to_numpy(np.float64) + (x ** 2).sum(1))
            assert r.max() <= bound * params[t][amp_name] + 1e-5
            resid.append(r.max())
        if variant == "released":
            assert max(resid) > 0.5  # well past what the 0.1 factor would allow
        else:
            assert max(resid) > 0.05  # not trivially zero either


def test_alpine_bounds_and_phases():
    for variant in ("paper", "released"):
        table, _ = gen("alpine", variant, seed=4)
        x = inputs(table, 2)
        y = table["y"].to_numpy(np.float64)
        assert (y >= 0).all()
        assert (y <= 1.1 * np.abs(x).sum(1) + 1e-4).all()
    # paper: two independent phases per task
    _, summary = gen("alpine", "paper", seed=4, n_train=300, n_test=10)
    p = pd.DataFrame(summary["task_params"]["train"])
    assert (p["phi1"] != p["phi2"]).all()
    assert abs(np.corrcoef(p["phi1"], p["phi2"])[0, 1]) < 0.25
    assert (p["phi1"] - p["phi2"]).abs().max() > PHASE  # far apart for some tasks
    # released: one shared phase; the function is symmetric in its two coordinates
    rng = np.random.default_rng(0)
    x = rng.uniform(-10, 10, (50, 2))
    swapped = x[:, ::-1].copy()
    rel = synthetic.FAMILIES[("alpine", "released")]
    pap = synthetic.FAMILIES[("alpine", "paper")]
    np.testing.assert_allclose(rel.f(x, np.array([0.7])), rel.f(swapped, np.array([0.7])), rtol=1e-12)
    assert not np.allclose(pap.f(x, np.array([0.7, -0.9])), pap.f(swapped, np.array([0.7, -0.9])))


def test_alpine_paper_data_needs_two_phases():
    """On paper-variant data a single shared phase (either one) does not reproduce the targets."""
    table, summary = gen("alpine", "paper", seed=8, n_train=40)
    params = task_params(summary)
    far = [t for t in range(40) if abs(params[t]["phi1"] - params[t]["phi2"]) > 0.3]
    assert far
    for t in far:
        g = table[table["task"] == t]
        x, y = inputs(g, 2), g["y"].to_numpy(np.float64)
        for shared in (params[t]["phi1"], params[t]["phi2"]):
            one = {"phi1": shared, "phi2": shared}
            assert np.abs(alpine_paper(x, one) - y).max() > 1e-2


def test_sinusoid_amplitude_and_bias():
    table, summary = gen("sinusoid", "paper", seed=6, n_train=40, train_points=200)
    params = task_params(summary)
    for t, g in table.groupby("task"):
        y = g["y"].to_numpy(np.float64)
        assert np.abs(y - params[t]["b"]).max() <= params[t]["A"] + 1e-5
        if t < 40:  # 200 points over [-5, 5] (more than a period) reach close to both peaks
            assert y.max() - y.min() > 1.6 * params[t]["A"]


# -- seeds and the variant switch ----------------------------------------------------

@pytest.mark.parametrize("key", KEYS)
def test_seed_reproducible(key):
    a, sa = gen(*key, seed=3)
    b, sb = gen(*key, seed=3)
    c, sc = gen(*key, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert sa == sb
    assert sa["task_params"] != sc["task_params"]
    dim = SPECS[key][0]
    assert not np.array_equal(inputs(a, dim), inputs(c, dim))
    assert not np.allclose(a["y"], c["y"])


@pytest.mark.parametrize("family", ["cosmixture", "alpine"])
def test_variant_switch_changes_the_function(family):
    paper, sp = gen(family, "paper", seed=9)
    released, sr = gen(family, "released", seed=9)
    assert set(task_params(sp)[0]) != set(task_params(sr)[0])
    assert not np.allclose(paper["y"], released["y"])
    # each variant's data fits its own formula only
    dim = 2
    assert max_formula_error(paper, sp, FORMULAS[(family, "paper")], dim) < 2e-4
    assert max_formula_error(released, sr, FORMULAS[(family, "released")], dim) < 2e-4
    if family == "cosmixture":  # same parameter layout: apply the other formula's reading
        swapped = {"train": [{"c": p["A"], "phi": p["phi"], "k": p["omega"]} for p in sp["task_params"]["train"]],
                   "test": [{"c": p["A"], "phi": p["phi"], "k": p["omega"]} for p in sp["task_params"]["test"]]}
        assert max_formula_error(paper, {"task_params": swapped}, cos_released, dim) > 1e-2
    else:
        shared = {s: [{"phi": p["phi1"]} for p in sp["task_params"][s]] for s in ("train", "test")}
        assert max_formula_error(paper, {"task_params": shared}, alpine_released, dim) > 1e-2


def test_sinusoid_has_one_variant():
    a, sa = gen("sinusoid", "paper", seed=1)
    b, sb = gen("sinusoid", "released", seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert sa["task_params"] == sb["task_params"]


def test_unknown_family_or_variant():
    with pytest.raises(KeyError):
        gen("rastrigin", "paper")
    with pytest.raises(KeyError):
        gen("alpine", "authors")


# -- standardization -----------------------------------------------------------------

@pytest.mark.parametrize("key", KEYS)
def test_standardization_uses_training_tasks(key):
    dim = SPECS[key][0]
    raw, s_raw = gen(*key, seed=21, standardize=False)
    std, s_std = gen(*key, seed=21, standardize=True)
    # the same draws; only the scaling differs
    assert s_raw["task_params"] == s_std["task_params"]
    assert s_raw["target"] == {"mode": "raw", "shift": 0.0, "scale": 1.0}
    assert s_raw["input"]["shift"] == [0.0] * dim and s_raw["input"]["scale"] == [1.0] * dim
    assert s_std["target"]["mode"] == "standardized"
    train_raw = raw[raw["split"] == "train"]
    cols = [f"x{j}" for j in range(dim)]
    # the statistics are those of the training tasks' points (population std)
    assert s_std["target"]["shift"] == pytest.approx(train_raw["y"].astype(float).mean(), rel=1e-9, abs=1e-12)
    assert s_std["target"]["scale"] == pytest.approx(train_raw["y"].astype(float).std(ddof=0), rel=1e-9)
    np.testing.assert_allclose(s_std["input"]["shift"], train_raw[cols].astype(float).mean(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(s_std["input"]["scale"], train_raw[cols].astype(float).std(ddof=0), rtol=1e-9)
    # test tasks do not enter the statistics
    all_mean = raw["y"].astype(float).mean()
    assert s_std["target"]["shift"] != pytest.approx(all_mean, rel=1e-9, abs=1e-12)
    # standardized training points: mean 0, std 1
    train_std = std[std["split"] == "train"]
    for col in cols + ["y"]:
        v = train_std[col].astype(float)
        assert v.mean() == pytest.approx(0.0, abs=1e-5) and v.std(ddof=0) == pytest.approx(1.0, abs=1e-5)
    # undoing the scaling gives the function's own values, for every row (test tasks included)
    t = s_std["target"]
    np.testing.assert_allclose(std["y"] * t["scale"] + t["shift"], raw["y"], rtol=1e-5, atol=1e-4)
    for j, col in enumerate(cols):
        np.testing.assert_allclose(std[col] * s_std["input"]["scale"][j] + s_std["input"]["shift"][j],
                                   raw[col], rtol=1e-5, atol=1e-5)
    # and those values are the formula
    params = task_params(s_std)
    for tid, g in std.groupby("task"):
        x = np.column_stack([g[c].astype(float) * s_std["input"]["scale"][j] + s_std["input"]["shift"][j]
                             for j, c in enumerate(cols)])
        expected = FORMULAS[key](x, params[tid])
        np.testing.assert_allclose(g["y"].astype(float) * t["scale"] + t["shift"], expected, atol=5e-4)
