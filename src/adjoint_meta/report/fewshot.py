"""The report's few-shot section: accuracy against fine-tuning steps for every learned
initialization and for Prototypical Networks, a table with the seed spread and the paired interval
against the reference, and a plain statement of what the numbers say."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from adjoint_meta import verdicts
from adjoint_meta.fewshot import PROTONET
from adjoint_meta.report.figures import _require
from adjoint_meta.report.markup import Markup, html, join


def figure(curves: pd.DataFrame, steps: int) -> plt.Figure:
    """Mean test accuracy vs fine-tuning steps (band: ± one std over seeds); ProtoNet, which takes no
    steps, as a horizontal line."""
    _require(curves, "the few-shot curves")
    fig, ax = plt.subplots(figsize=(9.5, 4.4))
    methods = list(dict.fromkeys(curves["method"]))
    palette = dict(zip(methods, sns.color_palette("tab20", len(methods))))  # one color each
    for method, c in curves.groupby("method", sort=False):
        label = c["label"].iloc[0]
        if method == PROTONET:
            ax.axhline(c["accuracy_mean"].iloc[0], color="black", ls="--", lw=1.4, label=label)
            continue
        baseline = c["role"].iloc[0] == "baseline" if "role" in c else False
        ax.plot(c["step"], c["accuracy_mean"], color=palette[method], lw=1.4, ls="-." if baseline else "-", label=label)
        band = c["accuracy_seed_std"].fillna(0.0)
        ax.fill_between(c["step"], c["accuracy_mean"] - band, c["accuracy_mean"] + band, color=palette[method],
                        alpha=0.12)
    ax.axvline(steps, color="grey", ls=":", lw=1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("fine-tuning steps on the support set")
    ax.set_ylabel("test accuracy (query set)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def _num(x: float, spec: str = ".3f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def table(frame: pd.DataFrame, reference: str) -> Markup:
    head = html("<tr><th class=l>method</th><th>seeds</th><th>accuracy, step 0</th><th>step K</th>"
                "<th>last step</th><th>± seeds</th><th>cross-entropy, last step</th>"
                "<th>{} ahead by (95% interval)</th></tr>", frame.loc[frame["method"] == reference, "label"].iloc[0])
    rows = []
    for r in frame.to_dict("records"):
        lead = ("reference" if r["method"] == reference else
                html("{} ({} to {}): {}", _num(r["ref_lead"], "+.3f"), _num(r["ref_lead_lo"], "+.3f"),
                     _num(r["ref_lead_hi"], "+.3f"), r["outcome"]))
        rows.append(html("<tr><td class=l>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                         "<td>{}</td></tr>", r["label"], r["seeds"], _num(r["accuracy_step0"]), _num(r["accuracy_K"]),
                         _num(r["accuracy_final"]), _num(r["accuracy_final_seed_std"]), _num(r["cross_entropy_final"]),
                         lead))
    return html("<table>{}{}</table>", head, join(rows))


def findings(frame: pd.DataFrame, reference: str, preset: str) -> list[str]:
    """What the table says, in sentences: the best method, the reference against ProtoNet and against
    the initialization baselines, and whether any of it is conclusive."""
    out = []
    best = frame.sort_values("accuracy_final", ascending=False).iloc[0]
    out.append(f"Highest accuracy at the last step: {best['label']} ({best['accuracy_final']:.3f}).")
    ref = frame[frame["method"] == reference].iloc[0]
    for method in dict.fromkeys([PROTONET, *frame.loc[frame["role"] == "baseline", "method"]]):
        row = frame[frame["method"] == method]
        if row.empty or method == reference:
            continue
        r = row.iloc[0]
        verb = {verdicts.SUPPORTS: "is more accurate than", verdicts.CONTRADICTS: "is less accurate than"}.get(
            r["outcome"], "cannot be told apart from")
        out.append(f"{ref['label']} {verb} {r['label']}: {r['ref_lead']:+.3f} accuracy "
                   f"({r['ref_lead_lo']:+.3f} to {r['ref_lead_hi']:+.3f}).")
    seeds = int(frame["seeds"].min())
    if seeds < verdicts.MIN_SEEDS or preset != "full":
        out.append(f"Not conclusive: {seeds} training seed(s) and preset {preset!r}; the intervals cover the "
                   f"test tasks{'' if seeds > 1 else ' only'}, and the full protocol trains at least "
                   f"{verdicts.MIN_SEEDS} seeds.")
    return out
