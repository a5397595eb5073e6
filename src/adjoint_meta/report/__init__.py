"""The self-contained HTML report, built only from files the pipeline wrote.

Figures are PNGs embedded as base64 (no external scripts or styles), so the file
opens offline; the same PNGs are written under ``reports/figures/``.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd

from adjoint_meta import paths, runtime, timings
from adjoint_meta.io import read_json, write_text
from adjoint_meta.reference import paper
from adjoint_meta.report import discussion, figures, tables
from adjoint_meta.report.tables import esc
from adjoint_meta.summarize import MissingResultError, need

PACKAGES = ["adjoint-meta", "torch", "torchdiffeq", "numpy", "scipy", "pandas", "pyarrow", "matplotlib", "seaborn",
            "snakemake", "dvc"]

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:.88em}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:right;vertical-align:top}th{background:#f3f3f3}
td.l,th.l{text-align:left}code{background:#f6f6f6;padding:0 .2em}
figure{margin:1em 0}figcaption{font-size:.9em;color:#444}img{max-width:100%}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em}
li{margin:.3em 0}
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
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _figure(b64: str, alt: str, caption: str) -> str:
    return (f"<figure><img alt='{esc(alt)}' src='data:image/png;base64,{b64}'>"
            f"<figcaption>{caption}</figcaption></figure>")


def _dataset_row(name: str, s: dict) -> str:
    if s["source"] == "synthetic":
        rule = f"synthetic {esc(s['family'])} ({esc(s['variant'])})"
        paper_count, raw = "100 / 100" if s["family"] != "sinusoid" else "–", "generated from the seed"
    else:
        f = s.get("filter", {})
        rule = f"{esc(s['family'])}: {esc(f.get('items', ''))}; {esc(f.get('users', ''))}"
        paper_count = f"{s['paper_task_count']:,}"
        r = s.get("raw", {})
        flag = {True: "the published file", False: "<b>differs from the published file</b>",
                None: "no published checksum"}[r.get("matches_known")]
        raw = f"<code>{esc(Path(r.get('file', '?')).name)}</code> sha256 {esc(r.get('sha256', '')[:16])}… ({flag})"
        have, published = f.get("ratings_in_input"), s.get("published_ratings")
        if have is not None and published and have != published:
            raw += (f"<br><b>holds {have:,} of the published {published:,} ratings: a partial copy, "
                    "so its results are not comparable to the paper's</b>")
    return (f"<tr><td class=l>{esc(name)}</td><td class=l>{rule}</td><td>{s['n_train_tasks']:,}</td>"
            f"<td>{s['n_test_tasks']:,}</td><td>{paper_count}</td><td>{s['n_rows']:,}</td><td class=l>{raw}</td></tr>")


def _data_row(name: str, s: dict) -> str:
    """Provenance of one dataset: the raw file and the task table, by full sha256."""
    r = s.get("raw") or {}
    raw = (f"<code>{esc(r.get('file', '?'))}</code><br><code>{esc(r.get('sha256', '?'))}</code>" if r
           else "generated from the seed")
    return (f"<tr><td class=l>{esc(name)}</td><td class=l>{raw}</td><td class=l><code>"
            f"{esc(paths.TASKS.format(dataset=name))}</code><br><code>{esc(s.get('table_sha256', '?'))}</code>"
            f"</td></tr>")


def _job_times(params: dict, base: Path) -> str:
    """Wall time, CPU time and peak memory of every job, from Snakemake's benchmark records."""
    bench = timings.read_benchmarks(base)
    if bench.empty:
        return ("<p>No per-job benchmark records under <code>logs/benchmarks/</code> (they are written by "
                "Snakemake's <code>benchmark:</code> directives; a DVC run has none). The training jobs' own "
                "wall times are listed below.</p>")
    per_step = bench.groupby("step").agg(jobs=("job", "size"), wall=("wall_s", "sum"), cpu=("cpu_s", "sum"),
                                         rss=("max_rss_mb", "max")).sort_values("wall", ascending=False)
    steps = "".join(f"<tr><td class=l>{esc(k)}</td><td>{r.jobs}</td><td>{r.wall:,.1f}</td><td>{r.cpu:,.1f}</td>"
                    f"<td>{r.rss:,.0f}</td></tr>" for k, r in per_step.iterrows())
    rows = "".join(f"<tr><td class=l>{esc(r.step)}</td><td class=l>{esc(r.job)}</td><td>{r.wall_s:,.1f}</td>"
                   f"<td>{r.cpu_s:,.1f}</td><td>{r.max_rss_mb:,.0f}</td></tr>"
                   for r in bench.sort_values("wall_s", ascending=False).itertuples())
    length, chain = timings.critical_path(params, bench)
    head = "<tr><th class=l>step</th>{}<th>wall (s)</th><th>CPU (s)</th><th>peak memory (MB)</th></tr>"
    return (f"<p>From Snakemake's benchmark records (<code>logs/benchmarks/</code>; this report's own job is "
            f"not yet among them): {len(bench)} jobs, summed wall time {bench['wall_s'].sum() / 3600:.2f} h, "
            f"summed CPU time {bench['cpu_s'].sum() / 3600:.2f} h; critical path {length / 60:.1f} min "
            f"({esc(' → '.join(chain))}).</p>"
            f"<table>{head.format('<th>jobs</th>')}{steps}</table>"
            f"<details><summary>every job</summary><table>{head.format('<th class=l>job</th>')}{rows}</table>"
            f"</details>")


def _ul(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>" if items else "<p>–</p>"


def run(params: dict, out_html: str, root: str = ".", log_file: str | None = None) -> None:
    log = runtime.logger("report", log_file)
    base = Path(root)
    metrics = read_json(need(base / paths.METRICS))
    jobs = pd.read_csv(need(base / paths.JOBS))
    prof = pd.read_csv(need(base / paths.PROFILES)) if params["profiles"] else pd.DataFrame()
    acc = pd.read_csv(need(base / paths.ACCURACY_TABLE)) if params["accuracy"] else pd.DataFrame()
    labels = {name: cfg.get("label", name) for name, cfg in params["estimators"].items()}
    exps = params["experiments"]
    tabs = {e: pd.read_csv(need(base / paths.TABLE.format(experiment=e))) for e in exps}
    for e, t in tabs.items():
        if t.empty or not set(exps[e]["estimators"]) <= set(t["estimator"]):
            raise MissingResultError(f"table of experiment {e} lacks estimators "
                                     f"{sorted(set(exps[e]['estimators']) - set(t['estimator']))}")
    ablations = [e for e, x in exps.items() if (x.get("paired_test") or {}).get("experiment") not in (None, e)]
    tables_with_paper = [e for e in exps if e in paper()["tables"] and e not in ablations]
    others = [e for e in exps if e not in ablations and e not in tables_with_paper]

    def experiment_section(e: str) -> str:
        x = exps[e]
        curve = figures.save(figures.curves(pd.read_csv(need(base / paths.CURVES.format(experiment=e))), e, labels,
                                            x["steps"]), base, f"{e}_curves")
        return (f"<h3>{esc(e)}</h3><p>K = {x['steps']} inner steps (A-MAML: T = K·α = "
                f"{x['steps'] * params['inner']['alpha']:g}); unrolled MAML {x['maml_steps']} steps, MAML-1 one. "
                f"Test tasks are fine-tuned for {x['eval_steps']} steps; the table reports nRMSE after K steps, "
                f"mean ± std over test tasks (RMSE in the data's units), the paper's value where it gives one, "
                f"and the paired test against {esc((x.get('paired_test') or {}).get('estimator', '–'))}.</p>"
                + tables.results(tabs[e], e)
                + _figure(curve, f"curves {e}", f"Test nRMSE while fine-tuning from each learned initialization "
                          f"(mean, band ± one std over test tasks; dotted line: step K = {x['steps']})."))

    profile_html = []
    for name, p in params["profiles"].items():
        profile_html.append(f"<h3>profile {esc(name)}: {esc(p['dataset'])} {esc(p['setting'])}</h3>")
        for var in p["sweep"]:
            for metric in ("memory", "time"):
                fig = figures.save(figures.profile(prof, name, var, metric, labels, p["memory_cap_gb"]), base,
                                   f"profile_{name}_{var}_{metric}")
                profile_html.append(_figure(fig, f"{name} {metric} vs {var}",
                                            f"{metric.capitalize()} of one meta-update vs {var} "
                                            f"(others fixed at {p['fixed']})."))
            profile_html.append(tables.profile(prof, name, var, labels))
    accuracy_html = []
    for name, a in params["accuracy"].items():
        fig = figures.save(figures.accuracy(acc, name, labels), base, f"accuracy_{name}")
        accuracy_html.append(f"<h3>{esc(name)}: {esc(a['dataset'])} {esc(a['setting'])}</h3>"
                             + _figure(fig, f"accuracy {name}", "Mean over meta-batches; bars ± one std.")
                             + tables.accuracy(acc, name, labels))

    summaries = {ds: read_json(need(base / paths.TASKS_SUMMARY.format(dataset=ds))) for ds in params["datasets"]}
    datasets = "".join(_dataset_row(ds, s) for ds, s in summaries.items())
    data_rows = "".join(_data_row(ds, s) for ds, s in summaries.items())
    job_rows = "".join(
        f"<tr><td class=l>{esc(paths.cell_name(r))}</td><td>{r['wall_seconds']:.1f}</td>"
        f"<td class=l>{esc(r['device'])}</td><td class=l>{esc(r['dtype'])}</td></tr>" for r in jobs.to_dict("records"))
    vers = "".join(f"<tr><td class=l>{esc(k)}</td><td class=l>{esc(v)}</td></tr>" for k, v in versions().items())
    h = params_hash(params)
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>A-MAML reproduction report</title>
<style>{CSS}</style></head><body>
<h1>Meta-learning with adjoint methods: reproduction report</h1>
<p>Generated {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} from the files the pipeline wrote.
Preset <code>{esc(params.get('preset'))}</code>, parameters hash <code>{h}</code>, seeds
{', '.join(map(str, params['meta']['seeds']))} (master seed {params['seed']}), commit <code>{esc(git_commit())}</code>.</p>

<h2>Where we agree with the paper, and where not</h2>
<p>Every statement below is computed from this run's results; the paper's claims are quoted for comparison.</p>
<h3>Tables 1–2</h3>{_ul(discussion.tables({e: tabs[e] for e in tables_with_paper}))}
<h3>Synthetic families (Figure 2)</h3>{_ul(discussion.curves(tabs, others))}
<h3>Paper versus released code (ablation)</h3>{_ul(discussion.ablation(tabs, ablations))}
<p class=note>{discussion.RELEASED_CODE}</p>
<h3>Memory and time (Figures 3–4, scaling study)</h3>{_ul(discussion.profiles(prof, params) if not prof.empty else [])}
<h3>Gradient accuracy</h3>{_ul(discussion.accuracy(acc) if not acc.empty else [])}
<h3>The paper's claims</h3>{_ul(discussion.claims())}

<h2>Definitions and settings</h2>
<ul>
<li><b>nRMSE</b> of a test task = ‖ŷ − y‖₂ / ‖y‖₂ over its evaluation examples, in the data's original units (the
paper does not define nRMSE; this relative error is our primary figure). <b>RMSE</b> = √(mean (ŷ − y)²) in the
same units (rating points for the collaborative-filtering data). Alternatives one might call nRMSE (RMSE divided
by the range or the std of the targets) rescale each dataset by a constant and do not change any comparison
between estimators.</li>
<li>Inner loop: gradient descent with α = {params['inner']['alpha']:g} on the mean squared error of the support set;
outer loop: {esc(params['meta']['optimizer'])} with learning rate {params['meta']['lr']:g} unless a configuration
says otherwise, meta-batch {params['meta']['meta_batch']}, {params['meta']['meta_epochs']} outer updates. Every
estimator of a dataset and seed starts from the same θ and sees the same sequence of meta-batches.</li>
<li>Test: each test task is fine-tuned from θ on its support examples with {esc(params['evaluation']['optimizer'])}
(step {params['evaluation']['lr']:g}); synthetic tasks are evaluated on fresh points, a user on all ratings not used
for training. Paired tests: two-sided Wilcoxon signed-rank over the same test tasks.</li>
</ul>

<h2>Tables 1–2: collaborative filtering</h2>{''.join(experiment_section(e) for e in tables_with_paper)}
<h2>Figure 2: synthetic families</h2>{''.join(experiment_section(e) for e in others)}
<h2>Ablation: A-MAML as the paper states it and as the released code runs it</h2>
{''.join(experiment_section(e) for e in ablations)}
<h2>Figures 3–4 and the scaling study: time and memory</h2>{''.join(profile_html)}
<h2>Gradient accuracy (beyond the paper)</h2>{''.join(accuracy_html)}

<h2>Tasks per dataset</h2>
<table><tr><th class=l>dataset</th><th class=l>source and rule</th><th>training tasks</th><th>test tasks</th>
<th>tasks (paper)</th><th>examples</th><th class=l>raw data</th></tr>{datasets}</table>
<p>The paper's task counts are shown beside ours; where they differ, the rule in the second column is the one
applied (on the real <code>u.data</code> the paper's stated rule gives 575 users, not 489).</p>

<h2>Provenance</h2>
<p>Git commit <code>{esc(git_commit())}</code>; parameters hash <code>{h}</code> (sha256 of the effective
parameters as canonical JSON, first 16 hex digits). Paper values: {esc(paper()['source'])}.</p>
<h3>Data</h3>
<table><tr><th class=l>dataset</th><th class=l>raw file, sha256</th><th class=l>task table, sha256</th></tr>
{data_rows}</table>
<h3>Wall time of every job</h3>{_job_times(params, base)}
<h3>Training jobs</h3>
<table><tr><th class=l>job</th><th>wall time (s)</th><th class=l>device</th><th class=l>dtype</th></tr>{job_rows}</table>
<p>Total training wall time {jobs['wall_seconds'].sum() / 3600:.2f} h over {len(jobs)} jobs.</p>
<h3>Software</h3><table>{vers}</table>
<h3>Effective parameters</h3><pre>{esc(json.dumps(params, indent=1, sort_keys=True))}</pre>
<h3>Metrics as written to <code>{paths.METRICS}</code></h3><pre>{esc(json.dumps(metrics, indent=1, sort_keys=True))}</pre>
</body></html>
"""
    write_text(out_html, doc)
    log.info("wrote %s", out_html)
