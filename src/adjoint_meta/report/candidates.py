"""The report's section "What the paper's nRMSE could have been": every candidate definition of
nRMSE (``adjoint_meta.nrmse``) set beside the paper's Tables 1-2, from
``reports/tables/nrmse_definitions.csv``.

For each definition, over the cells of the experiments that have the paper's tables:
* ours / paper over A-MAML's cells (estimator ``amaml``, 12 in the paper's protocol) and over
  every estimator's cells (60) that have a published value: median, range, and how many lie
  within a factor 1.5 of the paper's value (1/1.5 <= ratio <= 1.5);
* the order of the estimators per cell (by our value, lowest first): in how many cells it differs
  from the order under definition 1, and in how many it is the paper's order (among the
  estimators the paper prints; cells where it prints at least two).
A definition "brings our numbers within 1.5x of the paper's" when its median ratio lies in
[1/1.5, 1.5]; the closing sentence says which do, over A-MAML's cells and over every cell.
"""
from __future__ import annotations

import math

import pandas as pd

from adjoint_meta import nrmse, paths
from adjoint_meta.kinds import BASELINE
from adjoint_meta.report.markup import Markup, html, join

WITHIN = 1.5            # "near the paper's value": ours / paper in [1 / WITHIN, WITHIN]
PAPER_METHOD = "amaml"  # the estimator the paper proposes (its key in paper.yaml)
CELL = ["experiment", "dataset", "setting"]
NUMBER = {name: i for i, name in enumerate(nrmse.DEFINITIONS, 1)}  # definitions are numbered in this order


def _scope(ratios: pd.Series) -> dict:
    r = ratios.dropna()
    if r.empty:
        return {"n": 0, "median": math.nan, "min": math.nan, "max": math.nan, "within": 0}
    return {"n": int(len(r)), "median": float(r.median()), "min": float(r.min()), "max": float(r.max()),
            "within": int(((r >= 1 / WITHIN) & (r <= WITHIN)).sum())}


def _order(cell: pd.DataFrame, column: str) -> list[str]:
    """The estimators of one cell from the lowest value of ``column`` up (ties: the table's order)."""
    return list(cell.sort_values(column, kind="stable")["estimator"])


def near(scope: dict) -> bool:
    """Whether a scope's median ratio lies within a factor WITHIN of the paper's values."""
    return scope["n"] > 0 and 1 / WITHIN <= scope["median"] <= WITHIN


def summary(frame: pd.DataFrame, experiments: list[str]) -> list[dict]:
    """One entry per definition, in ``nrmse.DEFINITIONS`` order, over the cells of ``experiments``
    (the rows of the definitions table): the ratio scopes and the order counts described above."""
    sub = frame[frame["experiment"].isin(experiments)]
    if "role" in sub:  # the baselines never enter the comparison with the paper's estimators
        sub = sub[sub["role"] != BASELINE]
    reference = {key: _order(g, "ours") for key, g in
                 sub[sub["definition"] == nrmse.REFERENCE].groupby(CELL, sort=False)}
    out = []
    for name, d in nrmse.DEFINITIONS.items():
        number = NUMBER[name]
        rows = sub[sub["definition"] == name]
        known = rows[rows["paper"].notna()]
        changed = paper_cells = paper_order = 0
        groups = list(rows.groupby(CELL, sort=False))
        for key, g in groups:
            changed += int(_order(g, "ours") != reference.get(key))
            published = g[g["paper"].notna()]
            if len(published) > 1:
                paper_cells += 1
                paper_order += int(_order(published, "ours") == _order(published, "paper"))
        out.append({"number": number, "name": name, "label": d.label, "formula": d.formula,
                    "amaml": _scope(known.loc[known["estimator"] == PAPER_METHOD, "ratio"]),
                    "all": _scope(known["ratio"]), "cells": len(groups), "order_changed": changed,
                    "paper_cells": paper_cells, "paper_order": paper_order})
    return out


def _ratio_cells(scope: dict) -> Markup:
    if not scope["n"]:
        return Markup("<td>–</td><td>–</td><td>–</td>")
    return html("<td>{:.2f}×</td><td>{:.2f}–{:.2f}×</td><td>{} of {}</td>", scope["median"], scope["min"],
                scope["max"], scope["within"], scope["n"])


def table(rows: list[dict]) -> Markup:
    """The compact table: one row per definition."""
    head = html(
        "<tr><th class=l rowspan=2>definition</th><th colspan=3>A-MAML's cells: ours / paper</th>"
        "<th colspan=3>every estimator's cells: ours / paper</th><th colspan=2>order of the estimators</th></tr>"
        "<tr><th>median</th><th>range</th><th>within {w:g}×</th><th>median</th><th>range</th><th>within {w:g}×</th>"
        "<th>differs from definition {ref}</th><th>the paper's order</th></tr>", w=WITHIN, ref=NUMBER[nrmse.REFERENCE])
    body = []
    for r in rows:
        paper = html("{} of {}", r["paper_order"], r["paper_cells"]) if r["paper_cells"] else "–"
        body.append(html("<tr><td class=l>{}. {}</td>{}{}<td>{} of {}</td><td>{}</td></tr>", r["number"], r["label"],
                         _ratio_cells(r["amaml"]), _ratio_cells(r["all"]), r["order_changed"], r["cells"], paper))
    return html("<table>{}{}</table>", head, join(body))


def _names(rows: list[dict]) -> Markup:
    if not rows:
        return Markup("no definition")
    return join((html("definition {} ({})", r["number"], r["label"]) for r in rows), ", ")


def verdict(rows: list[dict]) -> Markup:
    """The plain sentence(s) computed from ``summary``: which definitions, if any, bring our numbers
    within 1.5x of the paper's (median ratio), and whether any changes the order of the estimators."""
    n_amaml, n_all = rows[0]["amaml"]["n"], rows[0]["all"]["n"]
    if not n_all:
        first = Markup("No cell of Tables 1–2 in this run has a value the paper prints, so no definition can be "
                       "set beside the paper's numbers.")
    else:
        amaml = (html("over A-MAML's {} cells, {}; ", n_amaml, _names([r for r in rows if near(r["amaml"])]))
                 if n_amaml else Markup(""))
        first = html("Within {:g}× of the paper's numbers (median of ours / paper between {:.2f} and {:g}): {}over "
                     "every estimator's {} cells, {}.", WITHIN, 1 / WITHIN, WITHIN, amaml, n_all,
                     _names([r for r in rows if near(r["all"])]))
    changed = [r for r in rows if r["order_changed"]]
    cells = rows[0]["cells"]
    if not changed:
        second = html("No definition changes the order of the estimators in any of the {} cells.", cells)
    else:
        second = html("Compared with definition {}, the order of the estimators changes under {}.",
                      NUMBER[nrmse.REFERENCE], join(
            (html("definition {} ({}) in {} of {} cells", r["number"], r["label"], r["order_changed"], r["cells"])
             for r in changed), "; "))
    paper_cells = rows[0]["paper_cells"]
    if paper_cells:
        best = max(rows, key=lambda r: r["paper_order"])
        ref = next(r for r in rows if r["name"] == nrmse.REFERENCE)
        third = html(" The paper's order is reproduced in {} of {} cells under definition {} and in at most {} under "
                     "any definition.", ref["paper_order"], paper_cells, ref["number"], best["paper_order"])
    else:
        third = Markup("")
    return html("{} {}{}", first, second, third)


def released_steps(frame: pd.DataFrame, experiments: list[str]) -> dict | None:
    """Where the released protocol's best point lay over the cells of ``experiments``: min, median, max."""
    steps = frame[(frame["experiment"].isin(experiments)) & (frame["definition"] == "released")]["step"]
    if steps.empty:
        return None
    return {"min": float(steps.min()), "median": float(steps.median()), "max": float(steps.max())}


def section(frame: pd.DataFrame, experiments: list[str], protocol: dict) -> dict:
    """What the template's section shows: the definitions (number, label, formula), the table, the
    verdict, the counts of cells it is computed over, and the released protocol with its best steps."""
    rows = summary(frame, experiments)
    return {"definitions": [{k: r[k] for k in ("number", "label", "formula")} for r in rows],
            "table": table(rows), "verdict": verdict(rows), "cells": rows[0]["cells"],
            "n_amaml": rows[0]["amaml"]["n"], "n_all": rows[0]["all"]["n"], "protocol": protocol,
            "released_steps": released_steps(frame, experiments), "path": paths.NRMSE_DEFINITIONS,
            "number": NUMBER}
