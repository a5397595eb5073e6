"""Figures of the report, drawn only from the CSV files the pipeline wrote.

Every function refuses an empty or missing input (MissingResultError) rather
than drawing an empty figure.
"""
from __future__ import annotations

import base64
import io
import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from adjoint_meta import paths  # noqa: E402
from adjoint_meta.io import atomic_path  # noqa: E402
from adjoint_meta.report.discussion import memory_cap_steps  # noqa: E402
from adjoint_meta.results import MissingResultError  # noqa: E402
from adjoint_meta.units import GB, MB

sns.set_theme(style="whitegrid", context="paper")


def _require(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    if frame is None or frame.empty:
        raise MissingResultError(f"no data for {what}: refusing to draw an empty figure")
    return frame


def save(fig: plt.Figure, root: Path, name: str) -> str:
    """Write reports/figures/<name>.png and return it base64-encoded for embedding."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = buf.getvalue()
    with atomic_path(root / paths.FIGURE.format(name=name)) as tmp:
        tmp.write_bytes(data)
    return base64.b64encode(data).decode()


def _palette(names: list[str]) -> dict[str, tuple]:
    """A colour of its own for each name: tab10's ten, then the lighter tones of tab20 (tab10 alone repeats
    its colours after ten lines), then evenly spaced hues."""
    names = sorted(set(names))
    colors = sns.color_palette("tab10", 10) + sns.color_palette("tab20", 20)[1::2]
    if len(names) > len(colors):
        colors = sns.color_palette("husl", len(names))
    return {n: colors[i] for i, n in enumerate(names)}


MARKERS = "os^Dv<>PXph*"  # with the colours, so that lines in a dark and a light tone of one hue still differ


def curves(frame: pd.DataFrame, experiment: str, labels: dict[str, str], mark_step: int) -> plt.Figure:
    """nRMSE of the test tasks vs fine-tuning steps, one panel per (dataset, setting)."""
    _require(frame, f"the curves of experiment {experiment}")
    panels = frame[["dataset", "setting"]].drop_duplicates().values.tolist()
    cols = min(3, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    palette = _palette(list(frame["estimator"]))
    for ax, (ds, st) in zip(axes.flat, panels):
        sub = _require(frame[(frame["dataset"] == ds) & (frame["setting"] == st)], f"{experiment} {ds} {st}")
        for est, g in sub.groupby("estimator", sort=False):
            g = g.sort_values("step")
            ax.plot(g["step"], g["nrmse_mean"], label=labels.get(est, est), color=palette[est], lw=1.4)
            lo = np.clip(g["nrmse_mean"] - g["nrmse_std"], 1e-6, None)
            ax.fill_between(g["step"], lo, g["nrmse_mean"] + g["nrmse_std"], color=palette[est], alpha=0.12, lw=0)
        ax.axvline(mark_step, color="grey", ls=":", lw=1)
        ax.set_title(f"{ds}, {st}")
        ax.set_xlabel("fine-tuning steps on the support set")
        ax.set_ylabel("test nRMSE")
        ax.set_yscale("log")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{experiment}: test nRMSE while fine-tuning from each learned initialization "
                 f"(dotted: step {mark_step})", fontsize=9)
    fig.tight_layout()
    return fig


def profile(frame: pd.DataFrame, name: str, variable: str, metric: str, labels: dict[str, str],
            cap_gb: float) -> plt.Figure:
    """Time or peak memory of one meta-update against ``variable``, one line per estimator."""
    sub = _require(frame[(frame["profile"] == name) & (frame["variable"] == variable)],
                   f"profile {name}, sweep over {variable}")
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    palette = _palette(list(sub["estimator"]))
    column = "ms_median" if metric == "time" else "peak_bytes"
    marker = dict(zip(palette, itertools.cycle(MARKERS)))
    for est, g in sub.groupby("estimator", sort=False):
        g = g.sort_values("value")
        y = g[column] / (1 if metric == "time" else MB)
        ax.plot(g["value"], y, marker=marker[est], ms=3.5, label=labels.get(est, est), color=palette[est])
    if metric == "time":
        plain = sub.groupby("value")["plain_ms"].first()  # one floor per point, shared by every estimator
        ax.plot(plain.index, plain.values, color="black", ls="--", lw=1, label="plain inner training")
        bad = sub[sub["below_floor"]]
        if not bad.empty:
            ax.scatter(bad["value"], bad["ms_median"], marker="x", s=60, color="red", zorder=3,
                       label="below plain training although it runs ≥ K steps (not a valid time)")
        ax.set_ylabel("time per meta-update (ms, median)")
    else:
        ax.axhline(cap_gb * 1024, color="red", ls="--", lw=1, label=f"memory cap {cap_gb:g} GB")
        ax.set_ylabel("peak memory of one meta-update (MB)")
        if variable == "steps":  # where unrolled MAML would run out, extrapolated from its sweep
            for est, g in sub[sub["kind"] == "maml"].groupby("estimator", sort=False):
                k_cap = memory_cap_steps(g.sort_values("value"), cap_gb * GB)
                if np.isfinite(k_cap) and k_cap <= 100 * sub["value"].max():
                    ax.axvline(k_cap, color=palette[est], ls=":", lw=1.2,
                               label=f"{labels.get(est, est)} reaches the cap (K ≈ {k_cap:,.0f}, extrapolated)")
    ax.set_xlabel({"steps": "inner steps K", "layers": "hidden layers", "units": "hidden units per layer"}[variable])
    ax.set_yscale("log")
    if variable in ("steps", "units"):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    # beside the axes: a dozen estimators and the reference lines would cover the curves inside them
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    ax.set_title(f"profile {name}: {metric} vs {variable}", fontsize=9)
    return fig  # no tight_layout: it would shrink the axes to make room for the legend; the saved PNG grows


def accuracy(frame: pd.DataFrame, name: str, labels: dict[str, str]) -> plt.Figure:
    """Relative error and cosine similarity against the exact meta-gradient vs K."""
    sub = _require(frame[frame["study"] == name], f"accuracy study {name}")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    palette = _palette(list(sub["estimator"]))
    for est, g in sub.groupby("estimator", sort=False):
        agg = g.groupby("steps").agg(err=("rel_error", "mean"), err_sd=("rel_error", "std"),
                                     cos=("cosine", "mean"), cos_sd=("cosine", "std")).reset_index()
        kw = dict(marker="o", ms=3, color=palette[est], label=labels.get(est, est))
        a1.errorbar(agg["steps"], agg["err"].clip(lower=1e-12), yerr=agg["err_sd"].fillna(0), capsize=2, **kw)
        a2.errorbar(agg["steps"], agg["cos"], yerr=agg["cos_sd"].fillna(0), capsize=2, **kw)
    a1.set(xscale="log", yscale="log", xlabel="inner steps K", ylabel="relative error vs exact")
    a2.set(xscale="log", xlabel="inner steps K", ylabel="cosine similarity with exact")
    for ax in (a1, a2):
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    a1.legend(fontsize=7)
    fig.suptitle(f"accuracy study {name}: meta-gradients against MAML's exact gradient through K steps",
                 fontsize=9)
    fig.tight_layout()
    return fig
