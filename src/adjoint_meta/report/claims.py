"""The verdict on each claim of ``reference/paper.yaml``: which comparisons a claim expands into, and
the rule that judges them (``adjoint_meta.verdicts`` holds the test and the generic rules).

Estimators are known by their kind (the first configuration of each kind in an experiment's or
profile's list).  Cells of Tables 1-2 are the experiments the paper has tables for, cells of
Figure 2 the other experiments that are not ablations (``loading.experiment_groups``); Figures 3-4
are the profile ``FIGURES_3_4``.  ``RULES`` states, in one sentence each, what a claim compares.
The claims set the paper's estimators (``kinds.PAPER_KINDS``) against each other: its "MAML" is the
kind ``maml`` (exact, K/10 steps); the MAMLs we add beside it (``maml_fo``, ``maml_adjoint``) enter the
discussion (``discussion.maml_variants``), not the verdicts.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from adjoint_meta import verdicts as v
from adjoint_meta.kinds import PAPER_KINDS, SHORT_NAMES
from adjoint_meta.profile import TRAINED
from adjoint_meta.reference import paper
from adjoint_meta.report import loading
from adjoint_meta.report.loading import Cell, floats
from adjoint_meta.units import GB

NAMES = SHORT_NAMES  # how a claim names an estimator kind
CURVE_STEPS = 10       # a claim about fine-tuning is tested at this many evenly spaced recorded steps after step 0
EARLY, LATE = 1 / 3, 1 / 2  # iMAML's "beginning": the first third of those steps; "after considerable training":
                            # the last half
FIGURES_3_4 = "fig34"  # the profile of Figures 3-4 (params.yaml profiles.fig34)
_N = paper()["claims"]["figure3"]["numbers"]
_CURVE = (f"at {CURVE_STEPS} evenly spaced recorded fine-tuning steps after step 0 of each cell (the first and the "
          "last among them)")
_MAJORITY = f"more than {v.MAJORITY:.0%} must support"

RULES = {
    "tables": "A-MAML against every other estimator the paper compares (MAML is its K/10-step exact one) in every "
              "cell of Tables 1-2, nRMSE after K fine-tuning steps; “in all the cases”: all must support. Below the "
              "verdict, the same comparisons are broken down by table (K = 50 and K = 100), not judged again.",
    "figure2": f"A-MAML against every other estimator the paper compares in every Figure 2 cell, {_CURVE}; "
               "“throughout the training”: all must support.",
    "maml1": f"MAML against MAML-1 in every Figure 2 cell with both, {_CURVE}; “in general”: {_MAJORITY}.",
    "fomaml_reptile": f"MAML against FOMAML and against Reptile in every cell of Tables 1-2 and Figure 2 that has "
                      f"them, {_CURVE}; “often”: {_MAJORITY}.",
    "reptile": f"MAML against Reptile in every cell of Tables 1-2 and Figure 2 that has both, {_CURVE}; “nearly "
               f"always”: at least {v.MOST:.0%} must support.",
    "imaml": f"Two parts, in every Figure 2 cell with iMAML, {_CURVE}: at the first {EARLY:.0%} of them (“at the "
             "beginning”) iMAML ranks second by mean nRMSE and is better than the third-ranked (otherwise it is set "
             "against the estimator that would make it second), all must support; at the last "
             f"{LATE:.0%} of them MAML or FOMAML is better than iMAML (each at the Bonferroni level for the two "
             f"chances), “often”: {_MAJORITY}; Holm runs over both parts together.",
    "figure3": f"Profile {FIGURES_3_4}'s sweep over K, memory as the bytes kept for the backward pass (autograd's "
               "saved tensors plus a stored trajectory, counted from the tensors, so the same on every device; the "
               "measured peak only for a profile without that count), in four parts: unrolled MAML's, extrapolated "
               f"linearly in K, fills {_N['gpu_gb']} GB within a factor {v.NEAR:g} of K = {_N['maml_full_at']} "
               f"(“near”); it grows linearly in K (a line explains at least {v.LINEAR_R2:g} of its variance); "
               f"A-MAML's stays flat (grows by at most {v.FLAT_SHARE:.0%} of MAML's bytes per step); and A-MAML's at "
               f"K = {_N['amaml_steps']} (measured, or extrapolated) is below {_N['amaml_share']:.0%} of the GPU.",
    "figure4": f"Profile {FIGURES_3_4}, times flagged below plain training left out, in two parts: at the θ the job "
               f"trained (where dopri5 has stiffened) and every K ≥ {v.MIN_TIMED_K}, A-MAML's time per meta-update "
               f"within ×{v.COMPARABLE:g} either way of FOMAML's, Reptile's and iMAML's, with the margin of the "
               "fastest and slowest timed rounds (all inside: holds, one entirely outside: does not hold); and "
               f"unrolled MAML's at least ×{v.MUCH_SMALLER:g} A-MAML's at the largest K of the sweep both ran, over "
               "every timed round.",
}


class Comparer:
    """Computes each comparison once (a comparison shared by two claims is one comparison)."""

    def __init__(self):
        self._done: dict[str, v.Comparison] = {}

    def __call__(self, cell: Cell, ref: str, other: str, step: int, role: str = "", tests: int = 1) -> v.Comparison:
        name = f"{cell.experiment}/{cell.dataset}/{cell.setting}/step{step}/{ref}-{other}/tests{tests}"
        if name not in self._done:
            level = 1 - (1 - v.LEVEL) / tests  # Bonferroni over the chances a comparison is the best of
            result = v.paired_interval(cell.at(ref, step), cell.at(other, step), level)
            where = f"{cell.name}, step {step}{role}"
            self._done[name] = v.Comparison(where, NAMES.get(ref, ref), NAMES.get(other, other), result,
                                            cell.experiment, tests)
        return self._done[name]


@dataclass
class Evidence:
    """What the claims are judged on."""
    tables: dict[str, list[Cell]]   # experiment with a paper table -> its cells
    figure2: list[Cell]
    profile: pd.DataFrame           # the rows of profile FIGURES_3_4 (empty without it)
    profile_estimators: list[str]   # its configurations, in order
    kinds: dict[str, str]           # configuration -> kind
    preset: str
    compare: Comparer

    @property
    def table_cells(self) -> list[Cell]:
        return [c for cells in self.tables.values() for c in cells]


def _at_k(c: Cell) -> list[int]:
    return [c.report_step]


def curve_steps(c: Cell) -> list[int]:
    """CURVE_STEPS recorded steps after 0, evenly spaced over the curve, with the first and the last."""
    after = c.steps[c.steps > 0]
    if not after.size:
        return []
    return [int(after[i]) for i in sorted(set(np.linspace(0, after.size - 1, CURVE_STEPS).round().astype(int)))]


def _against(cells: list[Cell], ref: str, others: list[str] | None, ev: Evidence,
             steps: Callable[[Cell], list[int]] = _at_k) -> list[v.Comparison]:
    """``ref`` against each of ``others`` (None: every other kind the paper compares, ``PAPER_KINDS``; the MAML
    variants and other estimators we add are not in its claims) in every cell that has both."""
    out = []
    for c in cells:
        if ref not in c.nrmse:
            continue
        for other in [k for k in c.nrmse if k != ref and k in PAPER_KINDS] if others is None else \
                [k for k in others if k in c.nrmse]:
            out += [ev.compare(c, ref, other, s) for s in steps(c)]
    return out


def tables(ev: Evidence):
    comps = _against(ev.table_cells, "amaml", None, ev)
    verdict = v.judge(comps, ev.preset, claimed="A-MAML lower")
    strong = dict(zip(map(id, comps), v.decisive(comps)))
    lines = []
    for name, cells in ev.tables.items():
        mine = [c for c in comps if c.group == name]
        if mine:
            k = sorted({c.report_step for c in cells})
            lines.append(f"{name} (K = {', '.join(map(str, k))}): "
                         f"{v.counts([c.outcome for c in mine], [strong[id(c)] for c in mine])}")
    return replace(verdict, breakdown=tuple(lines)), comps


def figure2(ev: Evidence):
    comps = _against(ev.figure2, "amaml", None, ev, curve_steps)
    return v.judge(comps, ev.preset, claimed="A-MAML lower"), comps


def maml1(ev: Evidence):
    comps = _against(ev.figure2, "maml", ["maml1"], ev, curve_steps)
    return v.judge(comps, ev.preset, v.MAJORITY, claimed="MAML lower"), comps


def fomaml_reptile(ev: Evidence):
    comps = _against(ev.table_cells + ev.figure2, "maml", ["fomaml", "reptile"], ev, curve_steps)
    return v.judge(comps, ev.preset, v.MAJORITY, claimed="MAML lower"), comps


def reptile(ev: Evidence):
    comps = _against(ev.table_cells + ev.figure2, "maml", ["reptile"], ev, curve_steps)
    return v.judge(comps, ev.preset, v.MOST, claimed="MAML lower"), comps


def _second(c: Cell, step: int, ev: Evidence) -> v.Comparison | None:
    """The comparison that decides whether iMAML ranks second (by mean nRMSE among the paper's estimators)."""
    ranked = [k for k in c.nrmse if k in PAPER_KINDS]
    if len(ranked) < 3:
        return None
    order = sorted(ranked, key=lambda k: float(c.at(k, step).mean()))
    rank = order.index("imaml")
    if rank == 1:    # second: it must beat the third
        return ev.compare(c, "imaml", order[2], step, " (iMAML second vs third)")
    if rank > 1:     # it would have to beat the second
        return ev.compare(c, "imaml", order[1], step, f" (iMAML ranks {rank + 1})")
    return ev.compare(c, order[1], "imaml", step, " (iMAML ranks 1)")  # the second would have to beat it


def _overtaken(c: Cell, step: int, ev: Evidence) -> v.Comparison | None:
    """MAML or FOMAML against iMAML at ``step``, the one more for the claim (by t), each at the Bonferroni level."""
    rivals = [k for k in ("maml", "fomaml") if k in c.nrmse]
    late = [ev.compare(c, k, "imaml", step, " (overtaken?)", tests=len(rivals)) for k in rivals]
    return max(late, key=_t, default=None)


def _t(c: v.Comparison) -> float:
    """A comparison's t statistic (a difference without spread: ±inf, or 0)."""
    r = c.result
    return r.diff / r.se if r.se > 0 else 0.0 if r.diff == 0 else math.copysign(math.inf, r.diff)


IMAML_PARTS = ("second best at the beginning", "often overtaken later by MAML or FOMAML")


def imaml(ev: Evidence):
    early, late = [], []
    for c in ev.figure2:
        steps = curve_steps(c)
        if "imaml" not in c.nrmse or not steps:
            continue
        n_early, n_late = max(1, round(EARLY * len(steps))), max(1, round(LATE * len(steps)))
        early += [x for s in steps[:n_early] if (x := _second(c, s, ev)) is not None]
        late += [x for s in steps[-n_late:] if (x := _overtaken(c, s, ev)) is not None]
    comps = early + late
    if not comps:
        return v.Verdict(v.UNTESTABLE, "no comparison in this configuration"), comps
    parts = [(name, v.judge(cs, ev.preset, share, "the claim's side", family=comps) if cs else None)
             for name, cs, share in ((IMAML_PARTS[0], early, v.ALL), (IMAML_PARTS[1], late, v.MAJORITY))]
    rule = v.parts_rule([p.rule if p else None for _, p in parts])
    lines = tuple(f"{name}: {p.rule} ({p.evidence})" if p else f"{name}: no data" for name, p in parts)
    evidence = "; ".join(f"{name}: {p.rule}" if p else f"{name}: no data" for name, p in parts)
    return v.Verdict(rule, evidence, tuple(v.comparison_reasons(comps, ev.preset)),
                     v.NOT_COMPUTABLE not in [c.outcome for c in comps], lines), comps


SWEEP = "steps"  # the profile rows of the sweep over K (at the initial θ)


def _sweep(ev: Evidence, kind: str, variable: str = SWEEP) -> v.Sweep | None:
    est = next((e for e in ev.profile_estimators if ev.kinds.get(e) == kind), None)
    rows = ev.profile[(ev.profile["variable"] == variable) & (ev.profile["estimator"] == est)] \
        if est is not None and not ev.profile.empty else pd.DataFrame()
    if rows.empty:
        return None
    rows = rows.sort_values("value")
    spread = {c: floats(rows[c]) for c in ("ms_min", "ms_max") if c in rows}
    return v.Sweep(floats(rows["value"]), kept_bytes(rows), floats(rows["ms_median"]),
                   ~rows["below_floor"].to_numpy(bool), spread.get("ms_min"), spread.get("ms_max"))


def kept_bytes(rows: pd.DataFrame) -> np.ndarray:
    """The memory Figure 3's rule compares: the bytes an estimator keeps for its backward pass, autograd's
    saved tensors (``saved_bytes``) plus its stored trajectory (``stored_bytes``), both counted from the
    tensors; a profile written without ``saved_bytes`` falls back to the measured peak (``peak_bytes``)."""
    if "saved_bytes" not in rows or rows["saved_bytes"].isna().all():
        return floats(rows["peak_bytes"])
    return floats(rows["saved_bytes"]) + floats(rows["stored_bytes"])


def _repeats(ev: Evidence) -> int:
    return int(ev.profile["repeats"].min()) if not ev.profile.empty else 0


def figure3(ev: Evidence):
    return v.memory_verdict(_sweep(ev, "maml"), _sweep(ev, "amaml"), _N["gpu_gb"] * GB, _N["maml_full_at"],
                            _N["amaml_steps"], _N["amaml_share"], ev.preset, _repeats(ev)), []


def figure4(ev: Evidence):
    """Comparable times at the trained θ (the sweep's, flagged not conclusive, where the profile has none)."""
    trained = _sweep(ev, "amaml", TRAINED) is not None
    variable = TRAINED if trained else SWEEP
    peers = {NAMES[k]: s for k in ("fomaml", "reptile", "imaml") if (s := _sweep(ev, k, variable)) is not None}
    return v.time_verdict(_sweep(ev, "amaml", variable), peers, _sweep(ev, "maml"), ev.preset, _repeats(ev),
                          maml_amaml=_sweep(ev, "amaml"), trained=trained), []


JUDGES = {"tables": tables, "figure2": figure2, "maml1": maml1, "fomaml_reptile": fomaml_reptile, "reptile": reptile,
          "imaml": imaml, "figure3": figure3, "figure4": figure4}


def judge_all(ev: Evidence) -> dict[str, tuple[v.Verdict, list[v.Comparison]]]:
    """Every claim of paper.yaml, in its order: (verdict, the comparisons behind it)."""
    return {key: JUDGES[key](ev) for key in paper()["claims"]}


def _say(c: v.Comparison) -> str:
    lo, hi = c.result.rel_interval
    return (f"{c.other} − {c.ref} in {c.where}: {c.result.rel:+.1%} of {c.ref}'s nRMSE (interval {lo:+.1%} "
            f"to {hi:+.1%}; {c.outcome})")


def strongest(comps: list[v.Comparison]) -> str:
    """One sentence: the comparison most against the claim and the one most for it."""
    worst, best = v.extremes(comps)
    if worst is None:
        return ""
    return f"Most against the claim: {_say(worst)}." if worst is best else \
        f"Most against the claim: {_say(worst)}. Most for it: {_say(best)}."


def _pct(x: float, spec: str = "+.1%") -> str:
    return format(x, spec) if np.isfinite(x) else "–"


def comparison_rows(comps: list[v.Comparison]) -> list[dict]:
    """One row per comparison of a claim, as the report lists them: the difference relative to the better-claimed
    estimator's nRMSE, its interval, p-value, outcome (decisive after Holm over the claim, or not), the per-seed
    mean differences, the seeds' share of the variance, and the smallest difference it could have detected."""
    out = []
    for c, strong in zip(comps, v.decisive(comps)):
        r = c.result
        lo, hi = r.rel_interval
        base = r.base if r.base else np.nan
        out.append({"where": c.where, "pair": f"{c.other} − {c.ref}", "rel": _pct(r.rel),
                    "interval": f"{_pct(lo)} to {_pct(hi)}" + (f" ({r.level:.1%})" if r.level != v.LEVEL else ""),
                    "p": "–" if not np.isfinite(c.p) else f"{c.p:.2g}",
                    "outcome": c.outcome + (" (decisive)" if strong != v.UNDECIDED else ""),
                    "seed_means": ", ".join(_pct(m / base) for m in r.seed_means),
                    "seed_share": _pct(r.seed_share, ".0%"), "mdd": _pct(r.mdd / base, ".1%")})
    return out


def evidence(params: dict, profiles: pd.DataFrame, base) -> Evidence:
    """The cells and profile rows the claims are judged on, loaded from the pipeline's files."""
    with_paper, others, _ = loading.experiment_groups(params)
    prof = params["profiles"].get(FIGURES_3_4)
    rows = profiles[profiles["profile"] == FIGURES_3_4] if prof and not profiles.empty else pd.DataFrame()
    return Evidence(tables={e: loading.cells(params, base, [e]) for e in with_paper},
                    figure2=loading.cells(params, base, others), profile=rows,
                    profile_estimators=list(prof["estimators"]) if prof else [],
                    kinds={name: cfg["kind"] for name, cfg in params["estimators"].items()},
                    preset=params["preset"], compare=Comparer())


STATUS = {v.HOLDS: "holds", v.IN_PART: "part", v.NOT_HOLD: "fails", v.NOT_SHOWN: "unshown", v.UNTESTABLE: "untested"}


def _links(key: str, ev: Evidence) -> list[dict]:
    tables = [{"href": f"#exp-{e}", "label": e} for e in ev.tables]
    fig2 = [{"href": f"#exp-{e}", "label": e} for e in dict.fromkeys(c.experiment for c in ev.figure2)]
    profile = [] if ev.profile.empty or SWEEP not in set(ev.profile["variable"]) else [
        {"href": f"#fig-profile_{FIGURES_3_4}_steps_{m}", "label": f"{FIGURES_3_4}: {m} vs K"}
        for m in ("memory", "time")]
    return {"tables": tables, "figure2": fig2, "maml1": fig2, "imaml": fig2, "fomaml_reptile": tables + fig2,
            "reptile": tables + fig2, "figure3": profile[:1], "figure4": profile[1:]}[key]


def rows(ev: Evidence, judged: dict | None = None) -> list[dict]:
    """One row per claim for the report's verdict table (plain strings; the template escapes them)."""
    out = []
    for key, (verdict, comps) in (judged or judge_all(ev)).items():
        claim = paper()["claims"][key]
        out.append({"key": key, "text": claim["text"], "quote": claim["quote"], "rule": RULES[key],
                    "verdict": verdict.text, "status": STATUS[verdict.rule] if verdict.text == verdict.rule else "open",
                    "evidence": verdict.evidence, "breakdown": list(verdict.breakdown),
                    "reasons": "; ".join(verdict.reasons), "detail": strongest(comps), "links": _links(key, ev),
                    "comparisons": comparison_rows(comps)})
    return out


def method() -> dict:
    """The test and the generic rules, as the report states them under the verdict table."""
    return {"test": "Each comparison is a t interval on the mean nRMSE difference over training seeds and test "
                    "tasks, taken as crossed random effects (seed, task, and their interaction): its variance is the "
                    "spread of the per-seed means plus the tasks' variance beyond the interaction, with "
                    f"Satterthwaite's degrees of freedom ({v.LEVEL:.0%}, docs/statistics.md). Relative differences "
                    "are of the mean nRMSE of the estimator the claim says is better; the smallest detectable "
                    f"difference is the one the comparison finds with probability {v.POWER:.0%}.",
            "rules": list(v.RULES.values())}
