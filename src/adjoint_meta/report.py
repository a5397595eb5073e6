"""The self-contained HTML report, built only from files the pipeline wrote.

Figures are PNGs embedded as base64 (no external scripts or styles), so the
file opens offline; the same PNGs are written under ``reports/figures/``.
"""
from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import io
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from adjoint_meta import config, paths, runtime  # noqa: E402
from adjoint_meta.io import atomic_path, read_json, write_text  # noqa: E402
from adjoint_meta.summarize import MissingResultError, _need  # noqa: E402

PACKAGES = ["adjoint-meta", "torch", "torchdiffeq", "numpy", "pandas", "pyarrow", "matplotlib", "seaborn",
            "snakemake", "dvc"]

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}code{background:#f6f6f6;padding:0 .2em}
figure{margin:1em 0}figcaption{font-size:.9em;color:#444}img{max-width:100%}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em}
"""


def params_hash(params: dict) -> str:
    canon = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _png(fig: plt.Figure, path: Path) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = buf.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return base64.b64encode(data).decode()


def curves_figure(curves: pd.DataFrame, experiment: str, root: Path) -> str:
    """nRMSE of the test tasks vs fine-tuning steps, one panel per (dataset, setting)."""
    if curves.empty:
        raise MissingResultError(f"no curves for experiment {experiment}: refusing to draw an empty figure")
    panels = curves[["dataset", "setting"]].drop_duplicates().values.tolist()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    palette = dict(zip(sorted(curves["estimator"].unique()), sns.color_palette("tab10")))
    for ax, (ds, st) in zip(axes[0], panels):
        sub = curves[(curves["dataset"] == ds) & (curves["setting"] == st)]
        for est, g in sub.groupby("estimator"):
            g = g.sort_values("step")
            ax.plot(g["step"], g["nrmse_mean"], label=est, color=palette[est])
            ax.fill_between(g["step"], g["nrmse_mean"] - g["nrmse_std"], g["nrmse_mean"] + g["nrmse_std"],
                            color=palette[est], alpha=0.15, linewidth=0)
        ax.set_title(f"{ds} {st}")
        ax.set_xlabel("fine-tuning steps on the support set")
        ax.set_ylabel("nRMSE (mean ± std over test tasks)")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig, root / paths.FIGURE.format(name=f"{experiment}_curves"))


def _table_html(table: pd.DataFrame) -> str:
    """Estimators as rows, (dataset, setting) as columns, 'mean ± std' in each cell."""
    cols = table[["dataset", "setting"]].drop_duplicates().values.tolist()
    head = "".join(f"<th>{html.escape(d)}<br>{html.escape(s)}</th>" for d, s in cols)
    rows = []
    for est in dict.fromkeys(table["estimator"]):
        sub = table[table["estimator"] == est]
        label = sub["label"].iloc[0]
        cells = []
        for d, s in cols:
            hit = sub[(sub["dataset"] == d) & (sub["setting"] == s)]
            if hit.empty:
                cells.append("<td>–</td>")
                continue
            r = hit.iloc[0]
            extra = f"<br><small>seeds ± {r['nrmse_seed_std']:.4f}</small>" if r["seeds"] > 1 else ""
            cells.append(f"<td>{r['nrmse_mean']:.4f} ± {r['nrmse_std']:.4f}{extra}"
                         f"<br><small>RMSE {r['rmse_mean']:.4g}</small></td>")
        rows.append(f"<tr><td class=l>{html.escape(label)} <code>{html.escape(est)}</code></td>{''.join(cells)}</tr>")
    return f"<table><tr><th class=l>estimator</th>{head}</tr>{''.join(rows)}</table>"


def _dataset_row(name: str, s: dict) -> str:
    if s["source"] == "synthetic":
        rule = f"synthetic {s['family']} ({s['variant']})"
        paper, raw = "100 / 100" if s["family"] != "sinusoid" else "–", "generated from the seed"
    else:
        f = s.get("filter", {})
        rule = f"{s['family']}: {html.escape(f.get('items', ''))}; {html.escape(f.get('users', ''))}"
        paper = f"{s['paper_task_count']:,}"
        r = s.get("raw", {})
        flag = {True: "published file", False: "<b>differs from the published file</b>",
                None: "no published checksum"}[r.get("matches_known")]
        raw = f"<code>{html.escape(Path(r.get('file', '?')).name)}</code> {r.get('sha256', '')[:16]}… ({flag})"
        have, published = f.get("ratings_in_input"), s.get("published_ratings")
        if have is not None and published and have != published:
            raw += (f"<br><b>holds {have:,} of the published {published:,} ratings: a partial copy, "
                    "so its results are not comparable to the paper's</b>")
    return (f"<tr><td class=l>{html.escape(name)}</td><td class=l>{rule}</td><td>{s['n_train_tasks']:,}</td>"
            f"<td>{s['n_test_tasks']:,}</td><td>{paper}</td><td>{s['n_rows']:,}</td><td class=l>{raw}</td></tr>")


def run(params: dict, out_html: str, root: str = ".", log_file: str | None = None) -> None:
    log = runtime.logger("report", log_file)
    base = Path(root)
    metrics = read_json(_need(str(base / paths.METRICS)))
    jobs = pd.read_csv(_need(str(base / paths.JOBS)))
    sections = []
    for exp_name, exp in params["experiments"].items():
        table = pd.read_csv(_need(str(base / paths.TABLE.format(experiment=exp_name))))
        curves = pd.read_csv(_need(str(base / paths.CURVES.format(experiment=exp_name))))
        if table.empty or not set(exp["estimators"]) <= set(table["estimator"]):
            raise MissingResultError(f"table of experiment {exp_name} lacks estimators "
                                     f"{sorted(set(exp['estimators']) - set(table['estimator']))}")
        fig = curves_figure(curves, exp_name, base)
        sections.append(
            f"<h2>Experiment <code>{html.escape(exp_name)}</code></h2>"
            f"<p>Inner steps K = {exp['steps']} (A-MAML: T = K·α = {exp['steps'] * params['inner']['alpha']:g}); "
            f"unrolled MAML uses {exp['maml_steps']} steps; MAML-1 one. Test tasks are fine-tuned for "
            f"{exp['eval_steps']} steps; the table reports nRMSE after K = {exp['steps']} steps, mean ± std over "
            f"test tasks (RMSE in the data's units below).</p>"
            f"{_table_html(table)}"
            f"<figure><img alt='nRMSE curves of {html.escape(exp_name)}' src='data:image/png;base64,{fig}'>"
            f"<figcaption>nRMSE of the held-out tasks while fine-tuning from each learned initialization "
            f"(mean, band = ± one std over test tasks; log scale).</figcaption></figure>")

    datasets = "".join(_dataset_row(ds, read_json(_need(str(base / paths.TASKS_SUMMARY.format(dataset=ds)))))
                       for ds in params["datasets"])
    job_rows = "".join(
        f"<tr><td class=l>{html.escape(paths.cell_name(r))}</td><td>{r['wall_seconds']:.1f}</td>"
        f"<td class=l>{html.escape(str(r['device']))}</td><td class=l>{html.escape(str(r['dtype']))}</td></tr>"
        for r in jobs.to_dict("records"))
    vers = "".join(f"<tr><td class=l>{html.escape(k)}</td><td class=l>{html.escape(v)}</td></tr>"
                   for k, v in versions().items())
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>A-MAML reproduction report</title>
<style>{CSS}</style></head><body>
<h1>Meta-learning with adjoint methods: reproduction report</h1>
<p>Generated {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} from the files the pipeline wrote.
Preset <code>{html.escape(str(params.get('preset')))}</code>, parameters hash <code>{params_hash(params)}</code>,
seeds {', '.join(map(str, params['meta']['seeds']))} (master seed {params['seed']}).</p>
<h2>Definitions</h2>
<ul>
<li><b>nRMSE</b> of a test task = ‖ŷ − y‖₂ / ‖y‖₂ over its evaluation examples (the paper does not define
nRMSE; this relative error is our primary figure). <b>RMSE</b> = √(mean (ŷ − y)²) in the data's own units.</li>
<li>Inner loop: gradient descent with α = {params['inner']['alpha']:g} on the mean squared error of the support set;
outer loop: {html.escape(params['meta']['optimizer'])} with learning rate {params['meta']['lr']:g}, meta-batch
{params['meta']['meta_batch']}, {params['meta']['meta_epochs']} outer updates.</li>
</ul>
{''.join(sections)}
<h2>Tasks per dataset</h2>
<table><tr><th class=l>dataset</th><th class=l>source and rule</th><th>training tasks</th><th>test tasks</th>
<th>tasks (paper)</th><th>examples</th><th class=l>raw file (sha256)</th></tr>
{datasets}</table>
<p>The paper's task counts are shown where it states them; where ours differ the rule above is the one we
applied (PROTOCOL: on the real <code>u.data</code> the paper's stated rule gives 575 users, not 489).</p>
<h2>Provenance</h2>
<p>Git commit <code>{html.escape(git_commit())}</code>; parameters hash <code>{params_hash(params)}</code>
(sha256 of the effective parameters as canonical JSON, first 16 hex digits).</p>
<h3>Training jobs</h3>
<table><tr><th class=l>job</th><th>wall time (s)</th><th class=l>device</th><th class=l>dtype</th></tr>{job_rows}</table>
<h3>Software</h3><table>{vers}</table>
<h3>Effective parameters</h3><pre>{html.escape(json.dumps(params, indent=1, sort_keys=True))}</pre>
<h3>Metrics as written to <code>{paths.METRICS}</code></h3><pre>{html.escape(json.dumps(metrics, indent=1, sort_keys=True))}</pre>
</body></html>
"""
    write_text(out_html, doc)
    log.info("wrote %s (%d experiment section(s))", out_html, len(sections))
