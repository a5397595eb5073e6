"""HTML tables of the report."""
from __future__ import annotations

import html
import math

import pandas as pd

MB = 2 ** 20


def esc(x: object) -> str:
    return html.escape(str(x))


def _num(x: float, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _p(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    return "p < 0.001" if p < 1e-3 else f"p = {p:.3f}"


def results(table: pd.DataFrame, experiment: str) -> str:
    """Estimators as rows, (dataset, setting) as columns: ours (mean ± std, RMSE), the paper's value and
    the difference, and the paired test against the reference; the lowest mean per column in bold."""
    cols = table[["dataset", "setting"]].drop_duplicates().values.tolist()
    head = "".join(f"<th>{esc(d)}<br>{esc(s)}</th>" for d, s in cols)
    best = {(d, s): table[(table["dataset"] == d) & (table["setting"] == s)]["nrmse_mean"].min() for d, s in cols}
    rows = []
    for est in dict.fromkeys(table["estimator"]):
        sub = table[table["estimator"] == est]
        cells = []
        for d, s in cols:
            hit = sub[(sub["dataset"] == d) & (sub["setting"] == s)]
            if hit.empty:
                cells.append("<td>–</td>")
                continue
            r = hit.iloc[0]
            ours = f"{r['nrmse_mean']:.4f} ± {r['nrmse_std']:.4f}"
            if r["nrmse_mean"] == best[(d, s)]:
                ours = f"<b>{ours}</b>"
            lines = [ours]
            if r.get("seeds", 1) > 1:
                lines.append(f"<small>± {r['nrmse_seed_std']:.4f} across {int(r['seeds'])} seeds</small>")
            lines.append(f"<small>RMSE {r['rmse_mean']:.3f} ({esc(r.get('units', ''))})</small>")
            if not math.isnan(r.get("paper_mean", math.nan)):
                lines.append(f"<small>paper {r['paper_mean']:.3f} ± {r['paper_std']:.3f}; "
                             f"ours − paper {r['diff_vs_paper']:+.3f}</small>")
            if "p_value" in r and isinstance(r.get("reference"), str) and est != r["reference"]:
                lines.append(f"<small>vs {esc(r['reference'])}: {_p(r['p_value'])}</small>")
            cells.append(f"<td>{'<br>'.join(lines)}</td>")
        src = sub.iloc[0]
        origin = f" <small>(trained in {esc(src['from'])})</small>" if src["from"] != experiment else ""
        rows.append(f"<tr><td class=l>{esc(src['label'])}{origin}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th class=l>estimator</th>{head}</tr>{''.join(rows)}</table>"


def accuracy(frame: pd.DataFrame, name: str, labels: dict[str, str]) -> str:
    """Mean relative error and cosine at each K, estimators as rows."""
    sub = frame[frame["study"] == name]
    ks = sorted(sub["steps"].unique())
    head = "".join(f"<th>K = {k}</th>" for k in ks)
    rows = []
    for est, g in sub.groupby("estimator", sort=False):
        agg = g.groupby("steps")[["rel_error", "cosine"]].mean()
        cells = "".join(f"<td>{agg.loc[k, 'rel_error']:.2e}<br><small>cos {agg.loc[k, 'cosine']:.4f}</small></td>"
                        if k in agg.index else "<td>–</td>" for k in ks)
        rows.append(f"<tr><td class=l>{esc(labels.get(est, est))}</td>{cells}</tr>")
    return f"<table><tr><th class=l>estimator</th>{head}</tr>{''.join(rows)}</table>"


def profile(frame: pd.DataFrame, name: str, variable: str, labels: dict[str, str]) -> str:
    """Time, ratio to plain inner training and peak memory at each swept value."""
    sub = frame[(frame["profile"] == name) & (frame["variable"] == variable)]
    values = sorted(sub["value"].unique())
    head = "".join(f"<th>{esc(variable)} = {v}</th>" for v in values)
    rows = []
    for est, g in sub.groupby("estimator", sort=False):
        g = g.set_index("value")
        cells = []
        for v in values:
            if v not in g.index:
                cells.append("<td>–</td>")
                continue
            r = g.loc[v]
            mem = "–" if pd.isna(r["peak_bytes"]) else f"{r['peak_bytes'] / MB:.1f} MB"
            cells.append(f"<td>{r['ms_median']:.1f} ms<br><small>×{r['ratio']:.2f} plain; {mem}</small></td>")
        rows.append(f"<tr><td class=l>{esc(labels.get(est, est))}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th class=l>estimator</th>{head}</tr>{''.join(rows)}</table>"
