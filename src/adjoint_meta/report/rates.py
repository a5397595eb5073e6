"""The report's section on learned inner step sizes (beyond the paper): each configuration that learns
its step sizes set against the same estimator with alpha fixed, by the paired interval over training
seeds and test tasks that the verdicts use; the learned step sizes over the meta-steps; and where
they ended."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from adjoint_meta import paths, verdicts
from adjoint_meta.report.figures import _require
from adjoint_meta.report.loading import seed_curve
from adjoint_meta.report.markup import Markup, html, join
from adjoint_meta.results import need


def _at_k(params: dict, base: Path, experiment: str, dataset: str, setting: str, estimator: str) -> np.ndarray:
    """Per-task nRMSE at the experiment's K, [seeds, tasks]."""
    K = int(params["experiments"][experiment]["steps"])
    rows = []
    for seed in params["meta"]["seeds"]:
        steps, grid = seed_curve(base / paths.EVAL_CURVE.format(experiment=experiment, dataset=dataset,
                                                                setting=setting, estimator=estimator, seed=seed))
        rows.append(grid[int(np.flatnonzero(steps == K)[0])])
    return np.stack(rows)


def counterparts(params: dict, experiment: str, estimator: str) -> list[tuple[str, str]]:
    """(configuration, experiment) pairs a learning configuration is set against: the same estimator kind
    with alpha fixed (one the experiment trains itself, else its paired test's reference when that is of
    the kind), and for selection ES also the experiment's configuration of the kind that learns a scalar
    alpha by gradient."""
    x, configs = params["experiments"][experiment], params["estimators"]
    cfg = configs[estimator]
    same = [e for e in x["estimators"] if configs[e]["kind"] == cfg["kind"]]
    fixed = [(e, experiment) for e in same if not configs[e].get("learn_rate")]
    pt = x.get("paired_test") or {}
    if not fixed and pt and configs[pt["estimator"]]["kind"] == cfg["kind"]:
        fixed = [(pt["estimator"], pt.get("experiment", experiment))]
    out = fixed[:1]
    if cfg.get("rate_method") == "es":
        out += [(e, experiment) for e in same if configs[e].get("learn_rate") == "scalar"
                and configs[e].get("rate_method", "reverse") != "es"][:1]
    return out


def comparisons(params: dict, base: Path) -> list[dict]:
    """One row per (rate experiment, dataset, setting, configuration learning its step sizes, counterpart):
    its nRMSE at K and the counterpart's (means over seeds and tasks), and the paired interval of the difference
    learned - counterpart (negative: this configuration fine-tunes to a lower error)."""
    out = []
    for e in paths.rate_experiments(params):
        x = params["experiments"][e]
        for ds in x["datasets"]:
            for st in x["settings"]:
                for est in x["estimators"]:
                    if not params["estimators"][est].get("learn_rate"):
                        continue
                    learned = _at_k(params, base, e, ds, st, est)
                    row = {"experiment": e, "dataset": ds, "setting": st, "estimator": est,
                           "label": params["estimators"][est].get("label", est), "learned": float(learned.mean())}
                    pairs = counterparts(params, e, est)
                    if not pairs:
                        out.append(row)
                    for other, where in pairs:
                        fixed = _at_k(params, base, where, ds, st, other)
                        b = verdicts.paired_interval(fixed, learned)
                        out.append({**row, "fixed_name": params["estimators"][other].get("label", other),
                                    "fixed_learns": bool(params["estimators"][other].get("learn_rate")),
                                    "fixed": b.base, "diff": b.diff, "lo": b.lo, "hi": b.hi, "seeds": b.seeds,
                                    "says": _says(b)})
    return out


def _says(b: verdicts.Interval) -> str:
    if b.seeds < verdicts.MIN_SEEDS:
        return f"not conclusive ({b.seeds} seed{'s' if b.seeds != 1 else ''})"
    if b.hi < 0:
        return LOWER
    if b.lo > 0:
        return HIGHER
    return SAME


LOWER, HIGHER, SAME = "lower error", "higher error", "no difference shown"


def final_values(rates: pd.DataFrame) -> dict[tuple, str]:
    """(experiment, dataset, setting, estimator) -> the step sizes at the last meta-step, mean over seeds."""
    out = {}
    if rates.empty:
        return out
    last = rates[rates["meta_step"] == rates.groupby(["experiment", "dataset", "setting", "estimator", "seed"])
                 ["meta_step"].transform("max")]
    for key, g in last.groupby(["experiment", "dataset", "setting", "estimator"], sort=False):
        means = g.groupby("rate", sort=False)["value"].mean()
        out[key] = ", ".join(f"{name} {v:.3g}" for name, v in means.items())
    return out


def _num(x, spec: str = ".4f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def table(comps: list[dict], finals: dict[tuple, str]) -> Markup:
    head = html("<tr><th class=l>experiment</th><th class=l>cell</th><th class=l>configuration</th>"
                "<th>nRMSE at K</th><th class=l>set against</th><th>its nRMSE</th>"
                "<th>difference (95% interval)</th><th class=l>what it says (for the configuration)</th>"
                "<th class=l>step sizes at the end (mean over seeds)</th></tr>")
    rows = []
    for r in comps:
        key = (r["experiment"], r["dataset"], r["setting"], r["estimator"])
        diff = (html("{} ({} to {})", _num(r["diff"], "+.4f"), _num(r["lo"], "+.4f"), _num(r["hi"], "+.4f"))
                if "diff" in r else "–")
        rows.append(html("<tr><td class=l>{}</td><td class=l>{} {}</td><td class=l>{}</td><td>{}</td>"
                         "<td class=l>{}</td><td>{}</td><td>{}</td><td class=l>{}</td><td class=l>{}</td></tr>",
                         r["experiment"], r["dataset"], r["setting"], r["label"], _num(r["learned"]),
                         r.get("fixed_name", "–"), _num(r.get("fixed")), diff, r.get("says", "–"),
                         finals.get(key, "–")))
    return html("<table>{}{}</table>", head, join(rows))


def findings(comps: list[dict], preset: str) -> list[Markup]:
    """Per experiment, against alpha fixed: how many configurations fine-tune to a lower, a higher or no
    different error; then selection ES against the scalar rate learned by gradient."""
    out = []
    for e in dict.fromkeys(r["experiment"] for r in comps):
        rs = [r for r in comps if r["experiment"] == e and "says" in r and not r["fixed_learns"]]
        counts = {s: sum(r["says"] == s for r in rs) for s in (LOWER, HIGHER, SAME)}
        inconclusive = len(rs) - sum(counts.values())
        text = html("{}: of {} comparisons of a configuration that learns its step sizes with the same estimator "
                    "at alpha fixed, {} show a lower test error with the learned step sizes, {} a higher one, and "
                    "in {} the interval holds zero", e, len(rs), counts[LOWER], counts[HIGHER], counts[SAME])
        if inconclusive:
            text = html("{}; {} are not conclusive (fewer than {} training seeds{})", text, inconclusive,
                        verdicts.MIN_SEEDS, ", as in the quick preset" if preset == "quick" else "")
        out.append(html("{}.", text))
        for r in (r for r in comps if r["experiment"] == e and r.get("fixed_learns")):
            out.append(html("{} {} {}: {} against {}: {} ({} to {}), {}.", e, r["dataset"], r["setting"], r["label"],
                            r["fixed_name"], _num(r["diff"], "+.4f"), _num(r["lo"], "+.4f"), _num(r["hi"], "+.4f"),
                            r["says"]))
    return out


def figure(rates: pd.DataFrame, alpha: float) -> plt.Figure:
    """The learned step sizes over meta-steps (mean over seeds, log scale), one panel per experiment and
    dataset; the dotted line is the fixed alpha they start from; ES's spread is left out."""
    _require(rates, "the learned step sizes")
    shown = rates[rates["rate"] != "alpha_sigma"]
    panels = list(dict.fromkeys(zip(shown["experiment"], shown["dataset"], shown["setting"])))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels) + 2.5, 4.0), squeeze=False)
    labels = list(dict.fromkeys(shown["label"]))
    palette = dict(zip(labels, sns.color_palette("tab10", len(labels))))
    styles = ["-", "--", "-.", ":"]
    for ax, (e, ds, st) in zip(axes[0], panels):
        sub = shown[(shown["experiment"] == e) & (shown["dataset"] == ds) & (shown["setting"] == st)]
        for (label, rate), g in sub.groupby(["label", "rate"], sort=False):
            mean = g.groupby("meta_step")["value"].mean()
            names = list(dict.fromkeys(sub[sub["label"] == label]["rate"]))
            ax.plot(mean.index, mean.to_numpy(), color=palette[label], ls=styles[names.index(rate) % len(styles)],
                    lw=1.3, label=f"{label}: {rate}")
        ax.axhline(alpha, color="grey", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_title(f"{e}: {ds} {st}", fontsize=9)
        ax.set_xlabel("meta-step")
        ax.set_ylabel("inner step size")
    entries = {n: h for ax in axes[0] for h, n in zip(*ax.get_legend_handles_labels())}  # each line once
    axes[0][-1].legend(entries.values(), entries.keys(), fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                       frameon=False)
    return fig


def section(params: dict, base: Path) -> dict:
    """What the template shows: the comparisons' table and findings, and the figure's data."""
    rates = pd.read_csv(need(base / paths.LEARNED_RATES))
    comps = comparisons(params, base)
    return {"experiments": paths.rate_experiments(params), "rates": rates, "table": table(comps, final_values(rates)),
            "findings": findings(comps, params["preset"]), "seeds": len(params["meta"]["seeds"])}
