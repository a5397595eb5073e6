"""The verdicts on the paper's claims: the paired bootstrap over seeds and tasks, and every claim's rule on
made-up results whose right verdict is known, both ways."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adjoint_meta import verdicts as v
from adjoint_meta.report import claims, loading
from adjoint_meta.report.loading import Cell
from adjoint_meta.summarize import InvalidResultError, MissingResultError

STEPS = np.array([0, 5, 10, 15, 20])
KIND = {k: k for k in ("amaml", "maml", "maml1", "fomaml", "reptile", "imaml", "es")}


def _pair(diff: float, seeds: int = 3, tasks: int = 40, noise: float = 0.01, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref = 0.1 + rng.random((seeds, tasks)) * 0.05
    return ref, ref + diff + rng.normal(0, noise, (seeds, tasks))


# -- the bootstrap ---------------------------------------------------------------------------------
def test_a_large_true_difference_with_three_seeds_supports():
    b = v.paired_bootstrap(*_pair(0.05), seed=v.bootstrap_seed(0, "x"))
    assert b.outcome == v.SUPPORTS and b.conclusive and 0 < b.lo < b.diff < b.hi
    assert b.rel == pytest.approx(b.diff / b.base) and b.seeds == 3 and b.tasks == 40
    worse = v.paired_bootstrap(*_pair(-0.05), seed=v.bootstrap_seed(0, "x"))
    assert worse.outcome == v.CONTRADICTS


def test_no_difference_is_undecided():
    assert v.paired_bootstrap(*_pair(0.0), seed=1).outcome == v.UNDECIDED
    ref, _ = _pair(0.0)
    same = v.paired_bootstrap(ref, ref, seed=1)
    assert same.outcome == v.UNDECIDED and same.lo == same.hi == 0


def test_the_interval_is_reproducible_from_the_seed():
    ref, other = _pair(0.002, noise=0.02)
    a = v.paired_bootstrap(ref, other, seed=v.bootstrap_seed(7, "table1/ml100k"))
    assert a == v.paired_bootstrap(ref, other, seed=v.bootstrap_seed(7, "table1/ml100k"))
    assert (a.lo, a.hi) != (v.paired_bootstrap(ref, other, seed=v.bootstrap_seed(8, "table1/ml100k")).lo,
                            v.paired_bootstrap(ref, other, seed=v.bootstrap_seed(8, "table1/ml100k")).hi)


def test_seed_luck_widens_the_interval():
    """A difference that one seed shows and the others do not: drawing seeds puts that luck in the interval."""
    ref, other = _pair(0.0, noise=0.001)
    other[0] += 0.03
    b = v.paired_bootstrap(ref, other, seed=3)
    within = v.paired_bootstrap(ref[:1], other[:1], seed=3)
    assert within.outcome == v.SUPPORTS and not within.conclusive  # seed 0 alone: a clear, meaningless difference
    assert b.outcome == v.UNDECIDED and b.lo <= 0.0005


def test_one_seed_gets_an_interval_but_is_flagged():
    b = v.paired_bootstrap(*_pair(0.05, seeds=1), seed=0)
    assert b.outcome == v.SUPPORTS and not b.conclusive
    verdict = v.judge([v.Comparison("c", "A", "B", b)], "full")
    assert verdict.text == "not conclusive (would be: holds)" and verdict.reasons == ("1 training seed, fewer than 3",)


def test_bad_arrays_are_refused():
    ref, other = _pair(0.01)
    with pytest.raises(ValueError, match="one shape"):
        v.paired_bootstrap(ref, other[:, :-1], seed=0)
    other[1, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        v.paired_bootstrap(ref, other, seed=0)


def test_count_and_parts_rules():
    s, c, u = v.SUPPORTS, v.CONTRADICTS, v.UNDECIDED
    assert v.count_rule([s, s]) == v.HOLDS and v.count_rule([s, u]) == v.IN_PART and v.count_rule([c, u]) == v.NOT_HOLD
    assert v.count_rule([]) == v.UNTESTABLE
    assert v.count_rule([s] * 4 + [c], v.NEARLY_ALWAYS) == v.HOLDS
    assert v.count_rule([s] * 3 + [c] * 2, v.NEARLY_ALWAYS) == v.IN_PART
    assert v.parts_rule([True, True]) == v.HOLDS and v.parts_rule([True, False]) == v.IN_PART
    assert v.parts_rule([False, False]) == v.NOT_HOLD and v.parts_rule([None, None]) == v.UNTESTABLE
    assert v.parts_rule([True, None]) == v.IN_PART
    assert v.combine_rule([v.HOLDS, v.HOLDS]) == v.HOLDS and v.combine_rule([v.HOLDS, v.NOT_HOLD]) == v.IN_PART
    assert v.combine_rule([v.NOT_HOLD, v.NOT_HOLD]) == v.NOT_HOLD
    assert v.combine_rule([v.HOLDS, v.UNTESTABLE]) == v.UNTESTABLE


def test_a_verdict_that_cannot_be_computed_never_holds():
    nan = v.Bootstrap(np.nan, np.nan, np.nan, 0.1, 3, 10)
    verdict = v.judge([v.Comparison("c", "A", "B", nan)], "full")
    assert verdict.text.startswith("not conclusive") and "could not be computed" in verdict.reasons[-1]
    with pytest.raises(ValueError, match="reason"):
        v.Verdict(v.HOLDS, "", (), computable=False)


# -- claims on made-up cells -----------------------------------------------------------------------
def _cell(means: dict, experiment: str = "fig2", dataset: str | None = None, seeds: int = 3, tasks: int = 30,
          seed: int = 0) -> Cell:
    """A cell whose estimator ``k`` has mean nRMSE ``means[k]`` (a number, or a function of the step); cells
    differ by their dataset (``d<seed>`` unless given), as the cells of one experiment do."""
    rng = np.random.default_rng(seed)
    base = 0.2 + 0.05 * rng.random((1, 1, tasks))
    nrmse = {}
    for kind, m in means.items():
        level = np.array([m(s) if callable(m) else m for s in STEPS])[None, :, None]
        nrmse[kind] = base + level + rng.normal(0, 0.002, (seeds, len(STEPS), tasks))
    return Cell(experiment, dataset or f"d{seed}", "5shot", 10, STEPS, nrmse)


def _evidence(table1=(), table2=(), figure2=(), profile=None, preset="full", seeds_tables=None) -> claims.Evidence:
    prof = pd.DataFrame() if profile is None else profile
    return claims.Evidence(tables={"table1": list(table1), "table2": list(table2)}, figure2=list(figure2),
                           profile=prof, profile_estimators=list(KIND), kinds=KIND, preset=preset,
                           compare=claims.Comparer(0, replicates=500))


GOOD = {"amaml": 0.0, "maml": 0.02, "fomaml": 0.05, "reptile": 0.06, "imaml": 0.03}
BAD = {"amaml": 0.05, "maml": 0.02, "fomaml": 0.0, "reptile": 0.01, "imaml": 0.03}


def _verdict(key: str, ev: claims.Evidence) -> v.Verdict:
    return claims.JUDGES[key](ev)[0]


def test_claims_compare_the_papers_estimators_only():
    """The MAMLs we add (maml_fo, maml_adjoint) and ES never enter the paper's claims, even where they beat
    A-MAML: the claims' "MAML" is the kind maml, and iMAML's rank is among the paper's estimators."""
    ours = {**GOOD, "maml_fo": -0.01, "maml_adjoint": -0.02, "es": -0.03}
    ev = _evidence([_cell(ours, "table1")], figure2=[_cell(ours)])
    for key in ("tables", "figure2", "fomaml_reptile"):
        verdict, comps = claims.JUDGES[key](ev)
        assert verdict.text == v.HOLDS and {c.other for c in comps} <= set(claims.NAMES.values()), key
    assert {c.ref for c in claims.JUDGES["fomaml_reptile"](ev)[1]} == {"MAML"}
    assert _verdict("imaml", _evidence(figure2=[_cell(ours)])).text == _verdict("imaml", _evidence(
        figure2=[_cell(GOOD)])).text


def test_tables_claim_both_ways():
    holds = _evidence([_cell(GOOD, "table1", d) for d in "ab"], [_cell(GOOD, "table2")])
    verdict = _verdict("tables", holds)
    assert verdict.text == v.HOLDS and verdict.evidence.startswith("supports 12 of 12 comparisons (all needed)")
    assert "positive: A-MAML lower" in verdict.evidence
    assert _verdict("tables", _evidence([_cell(BAD, "table1")])).text == v.NOT_HOLD
    assert _verdict("tables", _evidence([_cell(GOOD, "table1")], [_cell(BAD, "table2")])).text == v.IN_PART
    no_amaml = {k: m for k, m in GOOD.items() if k != "amaml"}
    assert _verdict("tables", _evidence([_cell(no_amaml, "table1")])).text == v.UNTESTABLE
    assert _verdict("tables", _evidence([_cell(GOOD, "table1", seeds=1)])).text == "not conclusive (would be: holds)"
    quick = _verdict("tables", _evidence([_cell(BAD, "table1")], preset="quick"))
    assert quick.text == "not conclusive (would be: does not hold)" and quick.reasons == ("preset quick, not full",)


def test_both_k_must_hold_at_each_k():
    good, bad = _cell(GOOD, "table1"), _cell(BAD, "table2")
    assert _verdict("both_k", _evidence([good], [_cell(GOOD, "table2")])).text == v.HOLDS
    verdict = _verdict("both_k", _evidence([good], [bad]))
    assert verdict.text == v.IN_PART and "table1: holds" in verdict.evidence and "table2: does not hold" in \
        verdict.evidence
    assert _verdict("both_k", _evidence([_cell(BAD, "table1")], [bad])).text == v.NOT_HOLD
    assert _verdict("both_k", _evidence([good], [])).text == v.UNTESTABLE
    assert _verdict("both_k", _evidence([good], [_cell(GOOD, "table2")], preset="quick")).text == \
        "not conclusive (would be: holds)"


def test_figure2_is_judged_throughout_fine_tuning():
    assert _verdict("figure2", _evidence(figure2=[_cell(GOOD)])).text == v.HOLDS
    late = dict(GOOD, amaml=lambda s: 0.0 if s >= 15 else 0.1)  # best only at the end
    verdict = _verdict("figure2", _evidence(figure2=[_cell(late)]))
    assert verdict.text == v.IN_PART and "supports 8 of 16" in verdict.evidence  # 4 recorded steps after 0
    assert _verdict("figure2", _evidence(figure2=[_cell(BAD)])).text == v.NOT_HOLD
    assert _verdict("figure2", _evidence(table1=[_cell(GOOD, "table1")])).text == v.UNTESTABLE
    assert _verdict("figure2", _evidence(figure2=[_cell(GOOD, seeds=2)])).text.startswith("not conclusive")


def test_thinning_keeps_ten_steps_after_zero_with_the_first_and_the_last():
    cell = Cell("e", "d", "s", 50, np.arange(0, 1001, 10), {})
    steps = claims._thinned(cell)
    assert len(steps) == claims.FIGURE2_STEPS and steps[0] == 10 and steps[-1] == 1000


def test_maml1_in_general_worse_uses_the_80_percent_rule():
    worse, better = {"maml": 0.0, "maml1": 0.03}, {"maml": 0.03, "maml1": 0.0}
    four_of_five = [_cell(worse, seed=i) for i in range(4)] + [_cell(better, seed=9)]
    assert _verdict("maml1", _evidence(figure2=four_of_five)).text == v.HOLDS
    three_of_five = [_cell(worse, seed=i) for i in range(3)] + [_cell(better, seed=i) for i in (8, 9)]
    assert _verdict("maml1", _evidence(figure2=three_of_five)).text == v.IN_PART
    assert _verdict("maml1", _evidence(figure2=[_cell(better)])).text == v.NOT_HOLD
    assert _verdict("maml1", _evidence(figure2=[_cell(GOOD)])).text == v.UNTESTABLE  # no MAML-1
    assert _verdict("maml1", _evidence(figure2=[_cell(worse, seeds=1)])).text == "not conclusive (would be: holds)"


def test_fomaml_and_reptile_worse_than_maml():
    assert _verdict("fomaml_reptile", _evidence([_cell(GOOD, "table1")], figure2=[_cell(GOOD)])).text == v.HOLDS
    assert _verdict("fomaml_reptile", _evidence([_cell(BAD, "table1")])).text == v.NOT_HOLD
    assert _verdict("fomaml_reptile", _evidence([_cell(GOOD, "table1")], [_cell(BAD, "table2")])).text == v.IN_PART
    assert _verdict("fomaml_reptile", _evidence([_cell({"amaml": 0, "maml": 0.1}, "table1")])).text == v.UNTESTABLE
    assert _verdict("fomaml_reptile", _evidence([_cell(GOOD, "table1")], preset="quick")).text.startswith(
        "not conclusive")


def test_reptile_nearly_always_worse():
    worse, better = {"maml": 0.0, "reptile": 0.03}, {"maml": 0.03, "reptile": 0.0}
    cells = [_cell(worse, "table1", seed=i) for i in range(4)]
    assert _verdict("reptile", _evidence(cells + [_cell(better, "table1", seed=9)])).text == v.HOLDS
    assert _verdict("reptile", _evidence(cells[:2] + [_cell(better, "table1", seed=i) for i in (8, 9)])).text == \
        v.IN_PART
    assert _verdict("reptile", _evidence([_cell(better, "table1")])).text == v.NOT_HOLD
    assert _verdict("reptile", _evidence([_cell({"maml": 0.0}, "table1")])).text == v.UNTESTABLE
    assert _verdict("reptile", _evidence(cells, preset="quick")).text == "not conclusive (would be: holds)"


IMAML_GOOD = {"amaml": 0.0, "imaml": lambda s: 0.01 if s <= 5 else 0.05, "maml": lambda s: 0.03 if s <= 5 else 0.02,
              "fomaml": 0.04}


def test_imaml_second_early_overtaken_later():
    verdict = _verdict("imaml", _evidence(figure2=[_cell(IMAML_GOOD)]))
    assert verdict.text == v.HOLDS and verdict.evidence.startswith("supports 2 of 2")
    never_overtaken = dict(IMAML_GOOD, imaml=0.01)
    assert _verdict("imaml", _evidence(figure2=[_cell(never_overtaken)])).text == v.IN_PART
    first_and_never_overtaken = dict(IMAML_GOOD, imaml=-0.01)
    verdict = _verdict("imaml", _evidence(figure2=[_cell(first_and_never_overtaken)]))
    assert verdict.text == v.NOT_HOLD and "contradicts 2" in verdict.evidence
    assert _verdict("imaml", _evidence(figure2=[_cell({"amaml": 0.0, "maml": 0.1})])).text == v.UNTESTABLE
    assert _verdict("imaml", _evidence(figure2=[_cell(IMAML_GOOD, seeds=1)])).text == \
        "not conclusive (would be: holds)"


def test_a_comparison_shared_by_two_claims_is_bootstrapped_once():
    ev = _evidence([_cell(GOOD, "table1")], [_cell(GOOD, "table2")])
    a = {(c.where, c.ref, c.other): c for c in claims.JUDGES["fomaml_reptile"](ev)[1]}
    b = {(c.where, c.ref, c.other): c for c in claims.JUDGES["reptile"](ev)[1]}
    assert b and all(a[k] is c for k, c in b.items())


# -- Figures 3-4 on made-up profile rows ------------------------------------------------------------
GB = 2 ** 30


def _profile(maml_per_step: float = 0.1 * GB, amaml_per_step: float = 1e4, times: dict | None = None,
             ks=(1, 10, 100, 200), repeats: int = 3, below: tuple = ()) -> pd.DataFrame:
    times = times or {"amaml": 2.0, "fomaml": 1.0, "reptile": 1.0, "imaml": 1.5, "maml": 10.0}
    rows = []
    for kind, ms_per_step in times.items():
        per_step = {"maml": maml_per_step, "amaml": amaml_per_step}.get(kind, 1e3)
        for k in ks:
            rows.append(dict(profile="fig34", variable="steps", value=k, estimator=kind, kind=kind, repeats=repeats,
                             peak_bytes=1e6 + per_step * k, ms_median=ms_per_step * k,
                             below_floor=(kind, k) in below))
    return pd.DataFrame(rows)


def test_figure3_memory_both_ways():
    verdict = _verdict("figure3", _evidence(profile=_profile()))
    assert verdict.text == v.HOLDS
    assert "would fill 24 GB near K ≈ 240" in verdict.evidence and "(extrapolated)" in verdict.evidence
    slow_growth = _verdict("figure3", _evidence(profile=_profile(maml_per_step=2 ** 20)))
    assert slow_growth.text == v.IN_PART and "near K ≈ 24,5" in slow_growth.evidence
    neither = _verdict("figure3", _evidence(profile=_profile(maml_per_step=2 ** 20, amaml_per_step=0.02 * GB)))
    assert neither.text == v.NOT_HOLD and "42% of 24 GB" in neither.evidence
    measured = _verdict("figure3", _evidence(profile=_profile(ks=(1, 100, 500))))
    assert "at K = 500 (measured)" in measured.evidence
    assert _verdict("figure3", _evidence()).text == v.UNTESTABLE
    assert _verdict("figure3", _evidence(profile=_profile(repeats=1))).text == "not conclusive (would be: holds)"
    assert _verdict("figure3", _evidence(profile=_profile(), preset="quick")).text.startswith("not conclusive")
    one_point = _verdict("figure3", _evidence(profile=_profile(ks=(100,))))
    assert one_point.text.startswith("not conclusive") and not one_point.computable


def test_figure4_time_both_ways():
    assert _verdict("figure4", _evidence(profile=_profile())).text == v.HOLDS
    maml_close = _verdict("figure4", _evidence(profile=_profile(times={"amaml": 2.0, "fomaml": 1.0, "maml": 4.0})))
    assert maml_close.text == v.IN_PART and "MAML / A-MAML at K = 200: ×2 (holds if ≥ ×3)" in maml_close.evidence
    slow = _verdict("figure4", _evidence(profile=_profile(times={"amaml": 10.0, "fomaml": 1.0, "maml": 12.0})))
    assert slow.text == v.NOT_HOLD and "0 within ×3" in slow.evidence
    # a flagged time is left out: FOMAML's impossible 0.1 ms at K = 200 would break "comparable"
    flagged = _profile(times={"amaml": 2.0, "fomaml": 1.0, "maml": 10.0})
    flagged.loc[(flagged["estimator"] == "fomaml") & (flagged["value"] == 200), ["ms_median", "below_floor"]] = \
        [0.1, True]
    verdict = _verdict("figure4", _evidence(profile=flagged))
    assert verdict.text == v.HOLDS and "over 3 (K, estimator) pairs" in verdict.evidence
    assert _verdict("figure4", _evidence()).text == v.UNTESTABLE
    assert _verdict("figure4", _evidence(profile=_profile(repeats=2))).text == "not conclusive (would be: holds)"


# -- every claim of paper.yaml gets a row with a verdict ---------------------------------------------
def test_every_claim_has_a_rule_a_quote_and_a_verdict():
    ev = _evidence([_cell(GOOD, "table1")], [_cell(BAD, "table2")], [_cell(IMAML_GOOD)], _profile())
    rows = claims.rows(ev)
    assert [r["key"] for r in rows] == list(claims.JUDGES) == list(claims.RULES)
    allowed = {v.HOLDS, v.IN_PART, v.NOT_HOLD, v.UNTESTABLE, v.NOT_CONCLUSIVE}
    for r in rows:
        assert r["quote"] and r["text"] and r["rule"] and r["evidence"], r
        assert r["verdict"].split(" (would be")[0] in allowed, r
        assert r["links"] and all(link["href"].startswith("#") for link in r["links"]), r
    by_key = {r["key"]: r for r in rows}
    assert by_key["both_k"]["verdict"] == v.IN_PART and by_key["figure3"]["status"] == "holds"
    assert "Most against the claim" in by_key["tables"]["detail"]


# -- bad input names the file ----------------------------------------------------------------------
def _curve(path, nrmse):
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{s},{t},{x},1.0" for s, values in zip((0, 5), nrmse) for t, x in enumerate(values)]
    path.write_text("step,task,nrmse,rmse\n" + "\n".join(rows) + "\n")


def test_a_non_finite_missing_or_empty_per_task_array_names_the_file(tmp_path):
    good = tmp_path / "seed0.csv"
    _curve(good, [[0.1, 0.2], [0.1, 0.15]])
    steps, grid = loading.seed_curve(good)
    assert steps.tolist() == [0, 5] and grid.shape == (2, 2)
    bad = tmp_path / "results" / "eval" / "seed1.csv"
    _curve(bad, [[0.1, 0.2], [0.1, "nan"]])
    with pytest.raises(InvalidResultError, match=r"seed1.csv: nRMSE is not finite in 1 of 4 rows \(first at step 5, "
                                                 r"task 1\)"):
        loading.seed_curve(bad)
    _curve(bad, [[0.1, 0.2], [0.1, "inf"]])
    with pytest.raises(InvalidResultError, match="seed1.csv: nRMSE is not finite"):
        loading.seed_curve(bad)
    bad.write_text("")
    with pytest.raises(InvalidResultError, match="seed1.csv: not a readable curve file"):
        loading.seed_curve(bad)
    bad.write_text("step,task,nrmse,rmse\n")
    with pytest.raises(InvalidResultError, match="seed1.csv: no per-task errors"):
        loading.seed_curve(bad)
    bad.write_text("step,task,nrmse,rmse\n0,0,0.1,1\n0,1,0.2,1\n5,0,0.1,1\n")
    with pytest.raises(InvalidResultError, match="seed1.csv: per-task errors are incomplete"):
        loading.seed_curve(bad)
    with pytest.raises(MissingResultError, match="seed2.csv: expected result is missing"):
        loading.seed_curve(tmp_path / "seed2.csv")


def test_cells_refuse_curves_that_do_not_match(tmp_path):
    from adjoint_meta import paths

    params = {"experiments": {"fig2": {"estimators": ["amaml", "maml"], "datasets": ["cos"], "settings": ["s"],
                                       "steps": 5}},
              "estimators": {"amaml": {"kind": "amaml"}, "maml": {"kind": "maml"}}, "meta": {"seeds": [0, 1]}}
    for est in ("amaml", "maml"):
        for seed in (0, 1):
            _curve(tmp_path / paths.EVAL_CURVE.format(experiment="fig2", dataset="cos", setting="s", estimator=est,
                                                      seed=seed), [[0.1, 0.2], [0.1, 0.15]])
    [cell] = loading.cells(params, tmp_path, ["fig2"])
    assert cell.nrmse["maml"].shape == (2, 2, 2) and cell.at("amaml", 5).tolist() == [[0.1, 0.15]] * 2
    odd = tmp_path / paths.EVAL_CURVE.format(experiment="fig2", dataset="cos", setting="s", estimator="maml", seed=1)
    _curve(odd, [[0.1, 0.2, 0.3], [0.1, 0.15, 0.2]])
    with pytest.raises(InvalidResultError, match=r"maml/seed1.csv: recorded steps or test tasks differ"):
        loading.cells(params, tmp_path, ["fig2"])


ALL_HOLD = dict(IMAML_GOOD, maml1=0.06, reptile=0.07)  # Figure 2: A-MAML best, iMAML second then overtaken


def _all_holding(seeds: int = 3, preset: str = "full") -> claims.Evidence:
    return _evidence([_cell(GOOD, "table1", seeds=seeds)], [_cell(GOOD, "table2", seeds=seeds)],
                     [_cell(ALL_HOLD, seeds=seeds)], _profile(), preset=preset)


def test_every_claim_holds_on_results_made_to_hold():
    assert {key: verdict.text for key, (verdict, _) in claims.judge_all(_all_holding()).items()} == \
        {key: v.HOLDS for key in claims.JUDGES}


def test_every_claim_is_not_conclusive_with_one_seed_or_a_reduced_preset():
    one_seed = {key: verdict.text for key, (verdict, _) in claims.judge_all(_all_holding(seeds=1)).items()}
    assert one_seed == {key: v.HOLDS if key in ("figure3", "figure4") else "not conclusive (would be: holds)"
                        for key in claims.JUDGES}  # profiles do not depend on the training seeds
    quick = claims.judge_all(_all_holding(preset="quick"))
    assert {verdict.text for verdict, _ in quick.values()} == {"not conclusive (would be: holds)"}
