"""HTML tables of the report, built with ``markup.html`` (every value escaped)."""
from __future__ import annotations

import math

import pandas as pd

from adjoint_meta.kinds import BASELINE
from adjoint_meta.report.markup import Markup, html, join
from adjoint_meta.units import MB


def _p(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    return "p < 0.001" if p < 1e-3 else f"p = {p:.3f}"


def _table(head: Markup, rows: list[Markup]) -> Markup:
    return html("<table><tr><th class=l>estimator</th>{}</tr>{}</table>", head, join(rows))


def _is_baseline(table: pd.DataFrame) -> pd.Series:
    """Rows that are baselines (the table's ``role``; a table without it has none)."""
    return table["role"] == BASELINE if "role" in table else pd.Series(False, index=table.index)


def results(table: pd.DataFrame, experiment: str) -> Markup:
    """Estimators as rows, (dataset, setting) as columns: ours (mean ± std, RMSE), the paper's value and
    the difference, and the paired test against the reference; the lowest mean of the estimators per
    column in bold.  The baselines follow below a rule, in italics (none of them is ever bold)."""
    cols = table[["dataset", "setting"]].drop_duplicates().values.tolist()
    head = join(html("<th>{}<br>{}</th>", d, s) for d, s in cols)
    is_base = _is_baseline(table)
    ests = table[~is_base]
    best = {(d, s): ests[(ests["dataset"] == d) & (ests["setting"] == s)]["nrmse_mean"].min() for d, s in cols}
    baselines = list(dict.fromkeys(table.loc[is_base, "estimator"]))
    rows = []
    for est in [*dict.fromkeys(ests["estimator"]), *baselines]:
        baseline = est in baselines
        if baseline and est == baselines[0]:
            rows.append(html("<tr class=rule><td class=l colspan={}><i>Baselines, no meta-learning (not part of "
                             "the paper's comparison; docs/study.md, “Baselines”)</i></td></tr>", len(cols) + 1))
        sub = table[table["estimator"] == est]
        cells = []
        for d, s in cols:
            hit = sub[(sub["dataset"] == d) & (sub["setting"] == s)]
            if hit.empty:
                cells.append(Markup("<td>–</td>"))
                continue
            r = hit.iloc[0]
            ours = html("{:.4f} ± {:.4f}", r["nrmse_mean"], r["nrmse_std"])
            lines = [html("<b>{}</b>", ours) if not baseline and r["nrmse_mean"] == best[(d, s)] else ours]
            if r.get("seeds", 1) > 1:
                lines.append(html("<small>± {:.4f} across {} seeds</small>", r["nrmse_seed_std"], int(r["seeds"])))
            lines.append(html("<small>RMSE {:.3f} ({})</small>", r["rmse_mean"], r.get("units", "")))
            if not math.isnan(r.get("paper_mean", math.nan)):
                lines.append(html("<small>paper {:.3f} ± {:.3f}; ours − paper {:+.3f}</small>",
                                  r["paper_mean"], r["paper_std"], r["diff_vs_paper"]))
            if "p_value" in r and isinstance(r.get("reference"), str) and est != r["reference"]:
                lines.append(html("<small>vs {}: {}</small>", r["reference"], _p(r["p_value"])))
            cells.append(html("<td>{}</td>", join(lines, "<br>")))
        src = sub.iloc[0]
        origin = html(" <small>(trained in {})</small>", src["from"]) if src["from"] != experiment else ""
        name = html("<i>{}</i>", src["label"]) if baseline else src["label"]
        rows.append(html("<tr{}><td class=l>{}{}</td>{}</tr>", Markup(" class=baseline") if baseline else "",
                         name, origin, join(cells)))
    return _table(head, rows)


def accuracy(frame: pd.DataFrame, name: str, labels: dict[str, str]) -> Markup:
    """Mean relative error and cosine at each K, estimators as rows."""
    sub = frame[frame["study"] == name]
    ks = sorted(sub["steps"].unique())
    head = join(html("<th>K = {}</th>", k) for k in ks)
    rows = []
    for est, g in sub.groupby("estimator", sort=False):
        agg = g.groupby("steps")[["rel_error", "cosine"]].mean()
        cells = join(html("<td>{:.2e}<br><small>cos {:.4f}</small></td>", agg.loc[k, "rel_error"],
                          agg.loc[k, "cosine"]) if k in agg.index else Markup("<td>–</td>") for k in ks)
        rows.append(html("<tr><td class=l>{}</td>{}</tr>", labels.get(est, est), cells))
    return _table(head, rows)


def profile(frame: pd.DataFrame, name: str, variable: str, labels: dict[str, str]) -> Markup:
    """Time, ratio to plain inner training and peak memory at each swept value; a time below plain
    training that the estimator's work rules out (``below_floor``) is flagged instead."""
    sub = frame[(frame["profile"] == name) & (frame["variable"] == variable)]
    values = sorted(sub["value"].unique())
    head = join(html("<th>{} = {}</th>", variable, v) for v in values)
    rows = []
    for est, g in sub.groupby("estimator", sort=False):
        g = g.set_index("value")
        cells = []
        for v in values:
            if v not in g.index:
                cells.append(Markup("<td>–</td>"))
                continue
            r = g.loc[v]
            mem = "–" if pd.isna(r["peak_bytes"]) else f"{r['peak_bytes'] / MB:.1f} MB"
            if r["below_floor"]:  # an impossible time (profile.below_floor): shown as a flag, not a result
                cells.append(html("<td><b>not a valid time</b><br><small>{:.4g} ms, below plain training's {:.4g} ms "
                                  "although it runs at least K = {} steps; {}</small></td>",
                                  r["ms_median"], r["plain_ms"], int(r["steps"]), mem))
            else:
                cells.append(html("<td>{:.1f} ms<br><small>×{:.2f} plain; {}</small></td>", r["ms_median"],
                                  r["ratio"], mem))
        rows.append(html("<tr><td class=l>{}</td>{}</tr>", labels.get(est, est), join(cells)))
    return _table(head, rows)
