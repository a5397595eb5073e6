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

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from adjoint_meta import verdicts as v
from adjoint_meta.kinds import PAPER_KINDS
from adjoint_meta.reference import paper
from adjoint_meta.report import loading
from adjoint_meta.report.loading import Cell, floats

NAMES = {"amaml": "A-MAML", "maml": "MAML", "maml1": "MAML-1", "fomaml": "FOMAML", "reptile": "Reptile",
         "imaml": "iMAML"}
FIGURE2_STEPS = 10   # Figure 2's claim is tested at this many evenly spaced recorded steps after step 0
FIGURES_3_4 = "fig34"  # the profile of Figures 3-4 (params.yaml profiles.fig34)
_SHARE = f"at least {v.NEARLY_ALWAYS:.0%} must support"
_N = paper()["claims"]["figure3"]["numbers"]

RULES = {
    "tables": "A-MAML against every other estimator the paper compares (MAML is its K/10-step exact one) in every "
              "cell of Tables 1-2, nRMSE after K fine-tuning steps; all must support.",
    "both_k": "The Tables 1-2 rule on Table 1 (K = 50) and on Table 2 (K = 100) separately: holds if it holds in "
              "both, does not hold if it holds in neither even in part, holds in part otherwise.",
    "figure2": f"A-MAML against every other estimator the paper compares in every Figure 2 cell, at "
               f"{FIGURE2_STEPS} evenly spaced recorded fine-tuning steps after step 0 (the first and the last among "
               "them); all must support.",
    "maml1": f"MAML against MAML-1 in every Figure 2 cell with both, after K steps; “in general”: {_SHARE}.",
    "fomaml_reptile": "MAML against FOMAML and against Reptile in every cell of Tables 1-2 and Figure 2 that has "
                      "them, after K steps; all must support.",
    "reptile": f"MAML against Reptile in every cell of Tables 1-2 and Figure 2 that has both, after K steps; "
               f"“nearly always”: {_SHARE}.",
    "imaml": "In every Figure 2 cell with iMAML, two comparisons: at the first recorded step after 0, iMAML ranks "
             "second by mean nRMSE and is better than the third-ranked (otherwise it is set against the estimator "
             "that would make it second); at the last recorded step, MAML or FOMAML is better than iMAML; all must "
             "support.",
    "figure3": f"Profile {FIGURES_3_4}'s sweep over K, memory as the bytes kept for the backward pass (autograd's "
               "saved tensors plus a stored trajectory, counted from the tensors, so the same on every device; the "
               "measured peak only for a profile without that count): unrolled MAML's, extrapolated linearly in K, "
               f"fills {_N['gpu_gb']} GB at K ≤ {v.NEAR * _N['maml_full_at']:g} (“near {_N['maml_full_at']}”), "
               f"and A-MAML's at K = {_N['amaml_steps']} (measured, or extrapolated if the sweep stops earlier) is "
               f"below {_N['amaml_share']:.0%} of it; both parts: holds, one: in part.",
    "figure4": f"Profile {FIGURES_3_4}'s sweep over K, times flagged below plain training left out: A-MAML's time per "
               f"meta-update within ×{v.COMPARABLE:g} either way of FOMAML's, Reptile's and iMAML's at every K, and "
               f"MAML's at least ×{v.MUCH_SMALLER:g} A-MAML's at the largest K both ran; both parts: holds, one: "
               "in part.",
}


class Comparer:
    """Bootstraps each comparison once (a comparison shared by two claims gets one interval), seeded from
    the master seed and the comparison's name."""

    def __init__(self, master_seed: int, replicates: int = v.REPLICATES):
        self.master, self.replicates = master_seed, replicates
        self._done: dict[str, v.Comparison] = {}

    def __call__(self, cell: Cell, ref: str, other: str, step: int, role: str = "") -> v.Comparison:
        name = f"{cell.experiment}/{cell.dataset}/{cell.setting}/step{step}/{ref}-{other}"
        if name not in self._done:
            result = v.paired_bootstrap(cell.at(ref, step), cell.at(other, step), v.bootstrap_seed(self.master, name),
                                        self.replicates)
            where = f"{cell.name}, step {step}{role}"
            self._done[name] = v.Comparison(where, NAMES.get(ref, ref), NAMES.get(other, other), result)
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


def _against(cells: list[Cell], ref: str, others: list[str] | None, ev: Evidence,
             steps: Callable[[Cell], list[int]] = lambda c: [c.report_step]) -> list[v.Comparison]:
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


def _thinned(c: Cell) -> list[int]:
    after = c.steps[c.steps > 0]
    if not after.size:
        return []
    return [int(after[i]) for i in sorted(set(np.linspace(0, after.size - 1, FIGURE2_STEPS).round().astype(int)))]


def _table_claim(cells: list[Cell], ev: Evidence) -> tuple[v.Verdict, list[v.Comparison]]:
    comps = _against(cells, "amaml", None, ev)
    return v.judge(comps, ev.preset, claimed="A-MAML lower"), comps


def tables(ev: Evidence):
    return _table_claim(ev.table_cells, ev)


def both_k(ev: Evidence):
    names = list(paper()["tables"])
    subs = {n: _table_claim(ev.tables.get(n, []), ev) for n in names}
    rule = v.combine_rule([verdict.rule for verdict, _ in subs.values()])
    comps = [c for _, cs in subs.values() for c in cs]
    words = "; ".join(f"{n}: {verdict.rule}" + (f", supports {sum(c.outcome == v.SUPPORTS for c in cs)} of "
                                                f"{len(cs)}" if cs else "") for n, (verdict, cs) in subs.items())
    if rule == v.UNTESTABLE:
        return v.Verdict(rule, words), comps
    reasons = tuple(dict.fromkeys(r for verdict, _ in subs.values() for r in verdict.reasons))
    return v.Verdict(rule, words, reasons, all(verdict.computable for verdict, _ in subs.values())), comps


def figure2(ev: Evidence):
    comps = _against(ev.figure2, "amaml", None, ev, _thinned)
    return v.judge(comps, ev.preset, claimed="A-MAML lower"), comps


def maml1(ev: Evidence):
    comps = _against(ev.figure2, "maml", ["maml1"], ev)
    return v.judge(comps, ev.preset, v.NEARLY_ALWAYS, claimed="MAML lower"), comps


def fomaml_reptile(ev: Evidence):
    comps = _against(ev.table_cells + ev.figure2, "maml", ["fomaml", "reptile"], ev)
    return v.judge(comps, ev.preset, claimed="MAML lower"), comps


def reptile(ev: Evidence):
    comps = _against(ev.table_cells + ev.figure2, "maml", ["reptile"], ev)
    return v.judge(comps, ev.preset, v.NEARLY_ALWAYS, claimed="MAML lower"), comps


def imaml(ev: Evidence):
    comps = []
    for c in ev.figure2:
        after = c.steps[c.steps > 0]
        if "imaml" not in c.nrmse or not after.size:
            continue
        first, last = int(after[0]), int(after[-1])
        ranked = [k for k in c.nrmse if k in PAPER_KINDS]  # ranked among the paper's estimators
        if len(ranked) >= 3:
            order = sorted(ranked, key=lambda k: float(c.at(k, first).mean()))
            rank = order.index("imaml")
            if rank == 1:    # second: it must beat the third
                comps.append(ev.compare(c, "imaml", order[2], first, " (first; iMAML second vs third)"))
            elif rank > 1:   # it would have to beat the second
                comps.append(ev.compare(c, "imaml", order[1], first, f" (first; iMAML ranks {rank + 1})"))
            else:            # first: the second would have to beat it
                comps.append(ev.compare(c, order[1], "imaml", first, " (first; iMAML ranks 1)"))
        late = [ev.compare(c, k, "imaml", last, " (last)") for k in ("maml", "fomaml") if k in c.nrmse]
        if late:
            comps.append(next((x for x in late if x.outcome == v.SUPPORTS), max(late, key=lambda x: x.result.diff)))
    return v.judge(comps, ev.preset, claimed="the claim's side"), comps


def _sweep(ev: Evidence, kind: str) -> v.Sweep | None:
    est = next((e for e in ev.profile_estimators if ev.kinds.get(e) == kind), None)
    rows = ev.profile[(ev.profile["variable"] == "steps") & (ev.profile["estimator"] == est)] \
        if est is not None and not ev.profile.empty else pd.DataFrame()
    if rows.empty:
        return None
    rows = rows.sort_values("value")
    return v.Sweep(floats(rows["value"]), kept_bytes(rows), floats(rows["ms_median"]),
                   ~rows["below_floor"].to_numpy(bool))


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
    return v.memory_verdict(_sweep(ev, "maml"), _sweep(ev, "amaml"), _N["gpu_gb"] * 2 ** 30, _N["maml_full_at"],
                            _N["amaml_steps"], _N["amaml_share"], ev.preset, _repeats(ev)), []


def figure4(ev: Evidence):
    peers = {NAMES[k]: s for k in ("fomaml", "reptile", "imaml") if (s := _sweep(ev, k)) is not None}
    return v.time_verdict(_sweep(ev, "amaml"), peers, _sweep(ev, "maml"), ev.preset, _repeats(ev)), []


JUDGES = {"tables": tables, "both_k": both_k, "figure2": figure2, "maml1": maml1, "fomaml_reptile": fomaml_reptile,
          "reptile": reptile, "imaml": imaml, "figure3": figure3, "figure4": figure4}


def judge_all(ev: Evidence) -> dict[str, tuple[v.Verdict, list[v.Comparison]]]:
    """Every claim of paper.yaml, in its order: (verdict, the comparisons behind it)."""
    return {key: JUDGES[key](ev) for key in paper()["claims"]}


def strongest(comps: list[v.Comparison]) -> str:
    """One sentence: the comparison most against the claim and the one most for it."""
    worst, best = v.extremes(comps)
    if worst is None:
        return ""

    def say(c: v.Comparison) -> str:
        lo, hi = c.result.rel_interval
        return (f"{c.other} − {c.ref} in {c.where}: {c.result.rel:+.1%} of {c.ref}'s nRMSE (interval {lo:+.1%} "
                f"to {hi:+.1%}; {c.outcome})")
    return f"Most against the claim: {say(worst)}." if worst is best else \
        f"Most against the claim: {say(worst)}. Most for it: {say(best)}."


def evidence(params: dict, profiles: pd.DataFrame, base) -> Evidence:
    """The cells and profile rows the claims are judged on, loaded from the pipeline's files."""
    with_paper, others, _ = loading.experiment_groups(params)
    prof = params["profiles"].get(FIGURES_3_4)
    rows = profiles[profiles["profile"] == FIGURES_3_4] if prof and not profiles.empty else pd.DataFrame()
    return Evidence(tables={e: loading.cells(params, base, [e]) for e in with_paper},
                    figure2=loading.cells(params, base, others), profile=rows,
                    profile_estimators=list(prof["estimators"]) if prof else [],
                    kinds={name: cfg["kind"] for name, cfg in params["estimators"].items()},
                    preset=params["preset"], compare=Comparer(params["seed"]))


STATUS = {v.HOLDS: "holds", v.IN_PART: "part", v.NOT_HOLD: "fails", v.UNTESTABLE: "untested"}


def _links(key: str, ev: Evidence) -> list[dict]:
    tables = [{"href": f"#exp-{e}", "label": e} for e in ev.tables]
    fig2 = [{"href": f"#exp-{e}", "label": e} for e in dict.fromkeys(c.experiment for c in ev.figure2)]
    profile = [] if ev.profile.empty or "steps" not in set(ev.profile["variable"]) else [
        {"href": f"#fig-profile_{FIGURES_3_4}_steps_{m}", "label": f"{FIGURES_3_4}: {m} vs K"}
        for m in ("memory", "time")]
    return {"tables": tables, "both_k": tables, "figure2": fig2, "maml1": fig2, "imaml": fig2,
            "fomaml_reptile": tables + fig2, "reptile": tables + fig2, "figure3": profile[:1],
            "figure4": profile[1:]}[key]


def rows(ev: Evidence) -> list[dict]:
    """One row per claim for the report's verdict table (plain strings; the template escapes them)."""
    out = []
    for key, (verdict, comps) in judge_all(ev).items():
        claim = paper()["claims"][key]
        out.append({"key": key, "text": claim["text"], "quote": claim["quote"], "rule": RULES[key],
                    "verdict": verdict.text, "status": STATUS[verdict.rule] if verdict.text == verdict.rule else "open",
                    "evidence": verdict.evidence, "reasons": "; ".join(verdict.reasons),
                    "detail": strongest(comps), "links": _links(key, ev)})
    return out


def method() -> dict:
    """The test and the generic rules, as the report states them under the verdict table."""
    return {"test": f"Each comparison is a paired bootstrap over training seeds and test tasks: {v.REPLICATES:,} "
                    "replicates (seeded from the master seed), each drawing the seeds, then the test tasks, with "
                    "replacement and taking the mean nRMSE difference; its interval is the "
                    f"{v.LEVEL:.0%} percentile range. Relative differences are of the mean nRMSE of the estimator "
                    "the claim says is better.",
            "rules": list(v.RULES.values())}
