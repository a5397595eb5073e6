"""The candidate definitions of the paper's nRMSE (adjoint_meta.nrmse): each against a hand computation,
their invariances, the released protocol's choice of step, and their way through evaluate, summarize
and the report."""
from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, TEST_PARAMS

from adjoint_meta import config, evaluate, kinds, make_tasks, nrmse, paths, summarize, train
from adjoint_meta.interface import Data
from adjoint_meta.model import MLP
from adjoint_meta.report import candidates, loading
from adjoint_meta.results import MissingResultError

f64 = torch.float64


def example():
    """Two tasks in the data's units; task 0 has a padded third slot (mask 0) holding junk.
    task 0: y = (3, 4), ŷ = (3, 1): residual (0, -3), ‖r‖ = 3, ‖y‖ = 5
    task 1: y = (1, 2, 2), ŷ = (1, 4, 2): residual (0, 2, 0), ‖r‖ = 2, ‖y‖ = 3"""
    y = torch.tensor([[3.0, 4.0, 99.0], [1.0, 2.0, 2.0]], dtype=f64)
    pred = torch.tensor([[3.0, 1.0, -7.0], [1.0, 4.0, 2.0]], dtype=f64)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], dtype=f64)
    return pred, y, mask


def exact(got: torch.Tensor, want: list[float]) -> None:
    assert got.dtype == f64
    assert torch.allclose(got, torch.tensor(want, dtype=f64), rtol=1e-15, atol=0), (got, want)


# -- each definition by hand --------------------------------------------------

def test_definition_1_relative_error():
    exact(nrmse.relative(*example()), [3 / 5, 2 / 3])


def test_rmse():
    exact(nrmse.rmse(*example()), [math.sqrt(9 / 2), math.sqrt(4 / 3)])


def test_definition_2_standardized_targets():
    # shift 1, scale 2: task 0 y_s = (1, 1.5), ŷ_s = (1, 0); task 1 y_s = (0, .5, .5), ŷ_s = (0, 1.5, .5)
    exact(nrmse.standardized(*example(), shift=1.0, scale=2.0), [1.5 / math.sqrt(3.25), 1 / math.sqrt(0.5)])


def test_definition_3_over_the_range():
    exact(nrmse.over_range(*example(), span=4.0), [math.sqrt(9 / 2) / 4, math.sqrt(4 / 3) / 4])


def test_definition_4_over_the_tasks_target_std():
    # task 0: std of (3, 4) = 0.5; task 1: mean 5/3, variance (4/9 + 1/9 + 1/9) / 3 = 2/9
    exact(nrmse.over_std(*example()), [math.sqrt(9 / 2) / 0.5, math.sqrt(4 / 3) / math.sqrt(2 / 9)])


def test_definition_5_pooled_differs_from_the_mean_over_tasks():
    value, n = nrmse.pooled(*example())
    assert n == 2 and value == pytest.approx(math.sqrt(13 / 34), rel=1e-15)  # (9 + 4) / (25 + 9)
    per_task = float(nrmse.relative(*example()).mean())
    assert per_task == pytest.approx((3 / 5 + 2 / 3) / 2, rel=1e-15)
    assert abs(value - per_task) > 0.01  # 0.618 against 0.633: the pool weights a task by ‖y‖²


def test_definition_6_is_definition_1_on_the_support_examples():
    exact(nrmse.support(*example()), [3 / 5, 2 / 3])


def test_definition_7_takes_the_lowest_mean_of_the_curve():
    t = lambda *v: torch.tensor(v, dtype=f64)  # noqa: E731
    # means 0.6, 0.45, 0.6, 0.5: the minimum lies inside the curve, and is not task 0's best step (20)
    curve = {0: t(0.5, 0.7), 10: t(0.4, 0.5), 20: t(0.3, 0.9), 30: t(0.5, 0.5)}
    step, values = nrmse.best_of_curve(curve)
    assert step == 10 and torch.equal(values, curve[10])
    assert nrmse.best_of_curve({20: t(0.6, 0.4), 0: t(0.5, 0.5), 10: t(0.4, 0.6)})[0] == 0  # a tie: the earliest
    nan, inf = math.nan, math.inf
    # a step where a task diverged does not win by leaving it out of its mean
    assert nrmse.best_of_curve({0: t(0.5, 0.5), 10: t(nan, 0.1)})[0] == 0
    assert nrmse.best_of_curve({0: t(nan, 0.5), 10: t(inf, 0.2)})[0] == 10  # no complete step: finite tasks
    assert nrmse.best_of_curve({5: t(nan, nan), 0: t(inf, nan)})[0] == 0  # nothing finite: the first step


# -- invariances ----------------------------------------------------------------

def random_tasks(seed=0, T=5, M=7):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(T, M, generator=g, dtype=f64) * 2 + 3
    pred = y + 0.3 * torch.randn(T, M, generator=g, dtype=f64)
    mask = (torch.rand(T, M, generator=g, dtype=f64) > 0.3).to(f64)
    mask[:, :2] = 1.0  # at least two examples a task
    return pred, y, mask


def test_definition_2_is_definition_1_without_standardization_and_ignores_the_scale():
    pred, y, mask = random_tasks()
    assert torch.equal(nrmse.standardized(pred, y, mask, 0.0, 1.0), nrmse.relative(pred, y, mask))
    assert torch.allclose(nrmse.standardized(pred, y, mask, 1.5, 0.25), nrmse.standardized(pred, y, mask, 1.5, 4.0),
                          rtol=1e-13, atol=0)
    # it is definition 1 of the targets moved by the shift
    assert torch.allclose(nrmse.standardized(pred, y, mask, 1.5, 3.0), nrmse.relative(pred - 1.5, y - 1.5, mask),
                          rtol=1e-13, atol=0)


def test_definition_3_scales_with_one_over_the_range():
    pred, y, mask = random_tasks(1)
    assert torch.allclose(nrmse.over_range(pred, y, mask, 5.0) * 5.0, nrmse.rmse(pred, y, mask), rtol=1e-15, atol=0)
    assert torch.allclose(nrmse.over_range(pred, y, mask, 20.0) * 5.0, nrmse.over_range(pred, y, mask, 4.0),
                          rtol=1e-15, atol=0)


def test_definition_4_is_invariant_under_an_affine_change_of_units():
    pred, y, mask = random_tasks(2)
    a, b = 2.5, -7.0
    assert torch.allclose(nrmse.over_std(a * pred + b, a * y + b, mask), nrmse.over_std(pred, y, mask),
                          rtol=1e-12, atol=0)
    flat = torch.ones(1, 3, dtype=f64)  # a task whose targets are all equal has no std: not finite
    assert torch.isinf(nrmse.over_std(flat + 1, flat, torch.ones_like(flat))).all()


def test_definition_1_is_invariant_to_a_common_scale_not_to_a_shift():
    pred, y, mask = random_tasks(3)
    assert torch.allclose(nrmse.relative(3 * pred, 3 * y, mask), nrmse.relative(pred, y, mask), rtol=1e-13, atol=0)
    assert not torch.allclose(nrmse.relative(pred + 1, y + 1, mask), nrmse.relative(pred, y, mask))


def test_pooled_equals_the_per_task_value_for_one_task_and_skips_diverged_tasks():
    pred, y, mask = random_tasks(4)
    one, n = nrmse.pooled(pred[:1], y[:1], mask[:1])
    assert n == 1 and one == pytest.approx(float(nrmse.relative(pred[:1], y[:1], mask[:1])), rel=1e-14)
    bad = pred.clone()
    bad[2, 0] = math.nan
    value, n = nrmse.pooled(bad, y, mask)
    keep = torch.tensor([0, 1, 3, 4])
    assert n == 4 and value == pytest.approx(nrmse.pooled(pred[keep], y[keep], mask[keep])[0], rel=1e-14)


def test_the_range_is_the_rating_scale_or_the_synthetic_targets_span():
    pred, y, mask = example()
    assert nrmse.value_range("jester", y, mask) == 20.0
    assert nrmse.value_range("ml100k", y, mask) == nrmse.value_range("ml1m", y, mask) == 4.0
    assert nrmse.value_range("synthetic", y, mask) == 3.0  # max 4 - min 1; the padded 99 is not a target


def test_every_definition_has_a_label_and_a_formula():
    assert list(nrmse.DEFINITIONS) == ["ours", "standardized", "range", "std", "pooled", "support", "released"]
    assert nrmse.REFERENCE == "ours" and all(d.label and d.formula for d in nrmse.DEFINITIONS.values())
    assert [d.name for d in nrmse.DEFINITIONS.values() if not d.per_task] == ["pooled"]


# -- the released protocol in evaluate ------------------------------------------

def small_problem():
    m = MLP([2, 6, 6, 1], "tanh")
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 8, 2, generator=g, dtype=f64)
    xe = torch.randn(4, 12, 2, generator=g, dtype=f64)
    f = lambda x: torch.sin(2 * x[..., 0]) + x[..., 1]  # noqa: E731
    support = Data(x, f(x), torch.full((4, 8), 1 / 8, dtype=f64))
    evaluation = Data(xe, f(xe) + 0.5 * torch.randn(4, 12, generator=g, dtype=f64), torch.full((4, 12), 1 / 12,
                                                                                                 dtype=f64))
    theta = m.init(torch.Generator().manual_seed(0), f64)
    return m, theta, support, evaluation


def test_released_protocol_reports_the_minimum_of_its_mean_curve():
    m, theta, support, evaluation = small_problem()
    protocol = {"steps": 300, "lr": 0.05, "record_every": 20}
    got = evaluate.released_protocol(m, theta, support, evaluation, protocol, 1.0, 2.0)
    steps, means = got["curve"]["step"], got["curve"]["mean"]
    assert steps == evaluate.record_steps(300, 20, []) and steps[0] == 0 and steps[-1] == 300
    best = steps[int(np.argmin(means))]
    assert got["step"] == best and got["value"] == min(means)
    assert 0 < best < 300, "the example is chosen so that the held-out error turns up again (over-fitting)"
    # the per-task values are definition 1 after `best` Adam steps (weight decay 1e-6), replayed by hand
    u = theta.unsqueeze(0).repeat(4, 1).clone()
    opt = torch.optim.Adam([u], lr=0.05, weight_decay=1e-6)
    for _ in range(best):
        u.grad = m.grad(u.detach(), support)
        opt.step()
    pred, y, mask = evaluate.in_units(m, u.detach(), evaluation, 1.0, 2.0)
    assert torch.allclose(torch.tensor(got["per_task"], dtype=f64), nrmse.relative(pred, y, mask), rtol=1e-10, atol=0)
    assert got["n"] == got["n_finite"] == 4 and got["weight_decay"] == 1e-6 and got["lr"] == 0.05


def test_definitions_at_step_k_agree_with_the_primary_error():
    m, theta, support, evaluation = small_problem()
    u = next(u for s, u in evaluate.finetune(m, theta, support, [7], "gd", 0.05))
    defs = evaluate.definitions_at(m, u, support, evaluation, 0.5, 2.0, span=6.0)
    nr, rm = evaluate.errors(m, u, evaluation, 0.5, 2.0)
    assert defs["ours"]["per_task"] == nr.tolist() and defs["ours"]["value"] == pytest.approx(float(nr.mean()))
    assert defs["range"]["per_task"] == pytest.approx((rm / 6.0).tolist(), rel=1e-15) and defs["range"]["range"] == 6.0
    assert defs["support"]["per_task"] == evaluate.errors(m, u, support, 0.5, 2.0)[0].tolist()
    assert set(defs) | {"released"} == set(nrmse.DEFINITIONS)


@pytest.fixture(scope="module")
def params():
    return config.load(TEST_PARAMS)


def test_evaluate_writes_every_definition(params, tmp_path):
    cell = dict(experiment="fig2_50shot", dataset="cosmixture", setting="5shot-5val", estimator="maml1", seed=0)
    tasks = tmp_path / "t.parquet"
    make_tasks.run(config.prune(params, "make-tasks", dataset="cosmixture"), "cosmixture", str(tasks),
                   str(tmp_path / "t.json"))
    train.run(config.prune(params, "train", **cell), cell, str(tasks), str(tmp_path / "m.pt"), str(tmp_path / "m.csv"))
    spec = config.prune(params, "evaluate", **cell)
    evaluate.run(spec, cell, str(tmp_path / "m.pt"), str(tasks), str(tmp_path / "e.json"), str(tmp_path / "e.csv"))
    result = json.loads((tmp_path / "e.json").read_text())
    defs = result["definitions"]
    assert set(defs) == set(nrmse.DEFINITIONS)
    assert all(math.isfinite(d["value"]) for d in defs.values())
    T = result["n_test_tasks"]
    assert all(len(d["per_task"]) == T for name, d in defs.items() if nrmse.DEFINITIONS[name].per_task)
    assert defs["ours"]["per_task"] == result["nrmse"]["per_task"]  # definition 1 is the tables' nRMSE
    protocol = spec["evaluation"]["released_protocol"]
    assert defs["released"]["step"] in evaluate.record_steps(protocol["steps"], protocol["record_every"], [])
    assert defs["released"]["curve"]["step"][-1] == protocol["steps"]


# -- parameters -------------------------------------------------------------------

BASE = config.read_yaml(ROOT / "params.yaml")


def test_a_missing_released_protocol_is_named(tmp_path):
    doc = copy.deepcopy(BASE)
    del doc["evaluation"]["released_protocol"]
    with pytest.raises(config.ParamsError, match="missing key evaluation.released_protocol"):
        config.validate(doc)


def test_the_evaluate_step_reruns_when_the_protocol_changes(params):
    cell = config.cells(params)[0].as_dict()
    before = config.slice_json(params, "evaluate", **cell)
    changed = copy.deepcopy(params)
    changed["evaluation"]["released_protocol"]["steps"] += 1
    assert config.slice_json(changed, "evaluate", **cell) != before
    assert "released_protocol" in config.prune(params, "evaluate", **cell)["evaluation"]


def test_the_quick_preset_and_the_test_configuration_shorten_the_protocol(params):
    quick = config.apply_preset({**BASE, "preset": "quick"})
    assert quick["evaluation"]["released_protocol"]["steps"] < BASE["evaluation"]["released_protocol"]["steps"]
    assert params["evaluation"]["released_protocol"]["steps"] <= 100


# -- summarize --------------------------------------------------------------------

def unique_cells(params) -> list[tuple[str, str, str, str]]:
    """(experiment, dataset, setting, estimator) of every trained cell, seeds merged."""
    return list(dict.fromkeys((c.experiment, c.dataset, c.setting, c.estimator) for c in config.cells(params)))


def fake_evaluations(params, root, value=lambda cell, d: 0.1):
    """An evaluation file for every cell, with every definition's value from ``value``."""
    for c in config.cells(params):
        cell = c.as_dict()
        defs = {d: {"value": value(cell, d)} for d in nrmse.DEFINITIONS}
        defs["released"]["step"] = 40
        path = root / paths.EVAL.format(**cell)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"definitions": defs, "report_step": 6}))
    return root


def test_summary_table_has_every_definition_of_every_cell_with_the_paper_beside(params, tmp_path, monkeypatch):
    published = {("table1", "ml100k", "5shot-5val", "amaml"): (0.05, 0.01)}
    monkeypatch.setattr(summarize, "table_value", lambda *key: published.get(key))
    root = fake_evaluations(params, tmp_path, lambda cell, d: 0.1 + 0.01 * list(nrmse.DEFINITIONS).index(d))
    # the predictor baselines of rating cells (computed from task pools, which this fake run lacks)
    fitted = {d: {"value": 0.2} for d in nrmse.DEFINITIONS if d != "released"}
    monkeypatch.setattr(summarize.Evaluations, "predictors", lambda self, ds, st: {} if
                        params["datasets"][ds]["source"] == "synthetic" else
                        {"item_mean": {"estimator_label": "Item mean", "definitions": fitted}})
    table = summarize.definitions_table(params, summarize.Evaluations(params, root))
    cells = unique_cells(params)
    rating_cells = [(e, d, s) for e, x in params["experiments"].items() for d in x["datasets"] for s in x["settings"]
                    if params["datasets"][d]["source"] != "synthetic"]
    assert rating_cells and len(table) == len(cells) * len(nrmse.DEFINITIONS) + len(rating_cells) * len(fitted)
    item = table[table["estimator"] == "item_mean"]
    assert (item["role"] == "baseline").all() and (item["ours"] == 0.2).all() and item["paper"].isna().all()
    for e, d, s, est in cells:
        rows = table[(table["experiment"] == e) & (table["dataset"] == d) & (table["setting"] == s)
                     & (table["estimator"] == est)]
        assert list(rows["definition"]) == list(nrmse.DEFINITIONS)
    amaml = table[(table["experiment"] == "table1") & (table["estimator"] == "amaml")].set_index("definition")
    assert amaml.loc["std", "ours"] == pytest.approx(0.13) and amaml.loc["std", "paper"] == 0.05
    assert amaml.loc["std", "ratio"] == pytest.approx(0.13 / 0.05)
    assert amaml.loc["released", "step"] == 40 and amaml.loc["ours", "step"] == 6
    assert table[table["estimator"] != "amaml"]["paper"].isna().all()
    assert table[table["estimator"] != "amaml"]["ratio"].isna().all()


@pytest.mark.parametrize("broken", ["null", "missing", "no definitions"])
def test_summary_stops_on_a_missing_or_non_finite_value_naming_the_file(params, tmp_path, broken):
    root = fake_evaluations(params, tmp_path)
    cell = config.cells(params)[2].as_dict()
    path = root / paths.EVAL.format(**cell)
    record = json.loads(path.read_text())
    if broken == "null":  # how write_json stores NaN
        record["definitions"]["std"]["value"] = None
    elif broken == "missing":
        del record["definitions"]["std"]
    else:
        del record["definitions"]
    path.write_text(json.dumps(record))
    with pytest.raises(MissingResultError, match=re.escape(str(path)) + ": definitions"):
        summarize.definitions_table(params, summarize.Evaluations(params, root))


# -- the report's section ------------------------------------------------------

def frame_of(values: dict) -> pd.DataFrame:
    """A definitions table of one experiment, two cells and three estimators: ours = paper x factor,
    with the factor per definition (and, where it is a dict, per cell and estimator)."""
    paper = {("jester", "amaml"): 0.1, ("jester", "maml"): 0.2, ("jester", "fomaml"): 0.3,
             ("ml100k", "amaml"): 0.05, ("ml100k", "maml"): 0.1, ("ml100k", "fomaml"): 0.2}
    rows = []
    for (ds, est), p in paper.items():
        for d in nrmse.DEFINITIONS:
            f = values.get(d, 3.0)
            f = f.get((ds, est), 1.0) if isinstance(f, dict) else f
            rows.append({"experiment": "table1", "dataset": ds, "setting": "10shot-15val", "estimator": est,
                         "label": est, "definition": d, "step": 50.0, "seeds": 1, "ours": p * f, "paper": p,
                         "ratio": f})
    return pd.DataFrame(rows)


FACTORS = {"ours": 4.0, "standardized": 1.2,
           "range": {("jester", "amaml"): 0.5, ("ml100k", "amaml"): 0.5},  # the others 1.0
           "std": {("jester", "amaml"): 9.0}}  # A-MAML last in one cell


def test_section_counts_ratios_and_orders():
    rows = {r["name"]: r for r in candidates.summary(frame_of(FACTORS), ["table1"])}
    assert rows["ours"]["amaml"] == {"n": 2, "median": 4.0, "min": 4.0, "max": 4.0, "within": 0}
    assert rows["standardized"]["all"] == {"n": 6, "median": 1.2, "min": 1.2, "max": 1.2, "within": 6}
    assert rows["range"]["amaml"]["median"] == 0.5 and rows["range"]["amaml"]["within"] == 0
    assert rows["range"]["all"]["median"] == 1.0 and rows["range"]["all"]["within"] == 4
    assert rows["std"]["order_changed"] == 1 and rows["std"]["cells"] == 2
    assert rows["std"]["paper_order"] == 1 and rows["ours"]["paper_order"] == 2 and rows["ours"]["paper_cells"] == 2
    assert all(rows[d]["order_changed"] == 0 for d in rows if d != "std")
    assert [r["number"] for r in rows.values()] == [1, 2, 3, 4, 5, 6, 7]


def test_section_sentence_says_which_definitions_come_near_the_paper():
    rows = candidates.summary(frame_of(FACTORS), ["table1"])
    text = str(candidates.verdict(rows))
    std = "definition 2 (relative error, standardized targets)"
    assert (f"Within 1.5× of the paper's numbers (median of ours / paper between 0.67 and 1.5): over A-MAML's 2 cells, "
            f"{std}; over every estimator's 6 cells, {std}, definition 3 (RMSE / rating range), definition 4 (RMSE / "
            "task&#39;s target std).") in text  # definition 4: ratios 9, 1, 1, 1, 1, 1
    assert ("Compared with definition 1, the order of the estimators changes under definition 4 (RMSE / "
            "task&#39;s target std) in 1 of 2 cells.") in text
    assert "The paper's order is reproduced in 2 of 2 cells under definition 1 and in at most 2" in text
    none = str(candidates.verdict(candidates.summary(frame_of({}), ["table1"])))
    assert "over A-MAML's 2 cells, no definition; over every estimator's 6 cells, no definition." in none
    assert "No definition changes the order of the estimators in any of the 2 cells." in none
    unpublished = frame_of({}).assign(paper=math.nan, ratio=math.nan)
    text = str(candidates.verdict(candidates.summary(unpublished, ["table1"])))
    assert "No cell of Tables 1–2 in this run has a value the paper prints" in text


def test_section_table_has_a_row_per_definition_and_escapes_labels():
    html = str(candidates.table(candidates.summary(frame_of(FACTORS), ["table1"])))
    assert html.count("<tr><td class=l>") == len(nrmse.DEFINITIONS)
    assert "<td>4.00×</td><td>4.00–4.00×</td><td>0 of 2</td>" in html  # definition 1, A-MAML's cells
    assert "<td>1.00×</td><td>0.50–1.00×</td><td>4 of 6</td>" in html  # definition 3, every cell
    empty = str(candidates.table(candidates.summary(frame_of({}).assign(paper=math.nan, ratio=math.nan), ["table1"])))
    assert not re.search(r"\b(nan|inf)\b", empty, flags=re.I) and "<td>–</td>" in empty
    hostile = frame_of({}).assign(estimator="<script>x</script>")
    assert "<script" not in str(candidates.table(candidates.summary(hostile, ["table1"])))


def test_report_stops_on_an_incomplete_or_non_finite_definitions_table(params, tmp_path):
    good = pd.DataFrame([{"experiment": e, "dataset": ds, "setting": s, "estimator": est, "label": est,
                          "definition": d, "step": 1.0, "seeds": 1, "ours": 0.1, "paper": math.nan,
                          "ratio": math.nan} for e, ds, s, est in unique_cells(params) for d in nrmse.DEFINITIONS])
    path = tmp_path / paths.NRMSE_DEFINITIONS
    path.parent.mkdir(parents=True)
    with pytest.raises(MissingResultError, match=re.escape(str(path)) + ": expected result is missing"):
        loading.definitions(params, tmp_path)
    good.to_csv(path, index=False)
    assert len(loading.definitions(params, tmp_path)) == len(good)
    good.iloc[:-1].to_csv(path, index=False)
    with pytest.raises(MissingResultError, match=re.escape(str(path)) + ": no row for 1 "):
        loading.definitions(params, tmp_path)
    good.assign(ours=[math.nan] + [0.1] * (len(good) - 1)).to_csv(path, index=False)
    with pytest.raises(MissingResultError, match=re.escape(str(path)) + ": ours is not a finite number in 1 row"):
        loading.definitions(params, tmp_path)
    path.write_text("")
    with pytest.raises(MissingResultError, match=re.escape(str(path)) + ": empty"):
        loading.definitions(params, tmp_path)


# -- the whole run ------------------------------------------------------------------

@pytest.mark.pipeline
def test_the_run_writes_and_reports_every_definition(snakemake_run, params):
    table = pd.read_csv(snakemake_run / paths.NRMSE_DEFINITIONS)
    assert np.isfinite(table["ours"]).all() and (table["ours"] > 0).all()
    # the predictor baselines of every rating cell: each definition but the released protocol's
    predictors = table[table["estimator"].isin(kinds.PREDICTORS)]
    rating_cells = {(e, d, s) for e, x in params["experiments"].items() for d in x["datasets"] for s in x["settings"]
                    if params["datasets"][d]["source"] != "synthetic"}
    assert rating_cells and len(predictors) == len(rating_cells) * len(kinds.PREDICTORS) * (len(nrmse.DEFINITIONS) - 1)
    table = table[~table["estimator"].isin(kinds.PREDICTORS)]
    assert len(table) == len(unique_cells(params)) * len(nrmse.DEFINITIONS)
    for e, ds, s, est in unique_cells(params):
        evs = [json.loads((snakemake_run / paths.EVAL.format(experiment=e, dataset=ds, setting=s, estimator=est,
                                                             seed=seed)).read_text())
               for seed in params["meta"]["seeds"]]
        assert all(set(ev["definitions"]) == set(nrmse.DEFINITIONS) for ev in evs)
        sub = table[(table["experiment"] == e) & (table["dataset"] == ds) & (table["setting"] == s)
                    & (table["estimator"] == est)].set_index("definition")
        for d in nrmse.DEFINITIONS:
            want = np.mean([ev["definitions"][d]["value"] for ev in evs])
            assert sub.loc[d, "ours"] == pytest.approx(want, rel=1e-5)  # the CSV keeps 6 digits
    html = (snakemake_run / paths.REPORT).read_text()
    section = html.split("<h2>What the paper's nRMSE could have been</h2>")[1].split("<h2>")[0]
    assert all(f"<tr><td class=l>{i}. " in section for i in range(1, len(nrmse.DEFINITIONS) + 1))
    assert "No definition changes the order" in section or "the order of the estimators changes under" in section
    for d in nrmse.DEFINITIONS.values():
        assert d.label.replace("'", "&#39;") in html.split("<h2>Definitions and settings</h2>")[1].split("<h2>")[0]
