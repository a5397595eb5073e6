"""The self-contained HTML report, built only from files the pipeline wrote.

``loading`` reads the results, ``provenance`` says where they come from, ``claims`` judges the
paper's claims (the verdict table at the top), ``discussion``, ``tables`` and ``figures`` turn the
results into text, tables and PNGs, and ``template.html.j2`` lays out the page. Jinja2 renders it
with autoescape on, so every value is escaped unless it is a ``Markup`` fragment from
``markup.html``, which escapes the values it formats in: no label or name from the parameters can
become a tag. Figures are PNGs embedded as base64 (no external scripts or styles), so the file opens
offline; the same PNGs are written under ``reports/figures/``.
"""
from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Collection
from importlib import resources
from pathlib import Path

import jinja2
import pandas as pd

from adjoint_meta import paths, runtime
from adjoint_meta.io import write_text
from adjoint_meta.reference import paper
from adjoint_meta.report import candidates, claims, discussion, figures, loading, provenance, tables
from adjoint_meta.report import fewshot as fewshot_section
from adjoint_meta.report import rates as rates_section
from adjoint_meta.results import need


def render(context: dict) -> str:
    """The page: ``template.html.j2`` filled with ``context`` (values escaped unless Markup)."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["fmt"] = format  # {{ x|fmt(",.1f") }}: Python's format spec
    source = resources.files("adjoint_meta.report").joinpath("template.html.j2").read_text(encoding="utf-8")
    return env.from_string(source).render(**context)


def _figure(name: str, b64: str, alt: str, caption: str) -> dict:
    """A figure of the page; its anchor is ``fig-<name>`` (``name`` as in reports/figures/<name>.png)."""
    return {"name": name, "b64": b64, "alt": alt, "caption": caption}


NOT_YET_RUN = "not yet run"


def run(params: dict, out_html: str, root: str = ".", log_file: str | None = None,
        pending_claims: Collection[str] = (), pending_units: Collection[str] = (),
        trained_commit: str | None = None, release_params: dict | None = None) -> list[dict]:
    """Write the report of ``params``' results under ``root``; returns the verdict table's rows.

    A published release in progress (``adjoint_meta.publish``) passes the claims whose results are not
    all in (shown as "not yet run", never as a verdict), the units still to run, and the commit that
    trained the results (the report then names both that commit and the one whose code built it), and the
    parameters of the whole release, whose hash the report states (``params`` are those of its finished units)."""
    log = runtime.logger("report", log_file)
    base = Path(root)
    res = loading.load(params, base)
    labels = {name: cfg.get("label", name) for name, cfg in params["estimators"].items()}
    with_paper, others, ablations = loading.experiment_groups(params)

    def experiment(e: str) -> dict:
        x = params["experiments"][e]
        curve = figures.save(figures.curves(pd.read_csv(need(base / paths.CURVES.format(experiment=e))), e, labels,
                                            x["steps"]), base, f"{e}_curves")
        return {"name": e, "steps": x["steps"], "horizon": x["steps"] * params["inner"]["alpha"],
                "maml_steps": x["maml_steps"], "eval_steps": x["eval_steps"],
                "reference": (x.get("paired_test") or {}).get("estimator", "–"),
                "seeds": len(params["meta"]["seeds"]), "table": tables.results(res.tables[e], e),
                "figure": _figure(f"{e}_curves", curve, f"curves {e}", "Test nRMSE while fine-tuning from each "
                                  "learned initialization (mean, band ± one std over test tasks; dotted line: step "
                                  f"K = {x['steps']}).")}

    profiles = []
    for name, p in params["profiles"].items():
        sweeps = []
        for var in p["sweep"]:
            held = ", ".join(f"{k} {v}" for k, v in p["fixed"].items() if k != var)
            held = f" ({held} fixed)" if held else ""
            figs = [_figure(f"profile_{name}_{var}_{metric}",
                            figures.save(figures.profile(res.profiles, name, var, metric, labels, p["memory_cap_gb"]),
                                         base, f"profile_{name}_{var}_{metric}"),
                            f"{name} {metric} vs {var}",
                            f"{metric.capitalize()} of one meta-update vs {var}{held}.")
                    for metric in ("memory", "time")]
            sweeps.append({"figures": figs, "table": tables.profile(res.profiles, name, var, labels)})
        profiles.append({"name": name, "dataset": p["dataset"], "setting": p["setting"], "sweeps": sweeps})
    accuracy = [{"name": name, "dataset": a["dataset"], "setting": a["setting"],
                 "figure": _figure(f"accuracy_{name}",
                                   figures.save(figures.accuracy(res.accuracy, name, labels), base, f"accuracy_{name}"),
                                   f"accuracy {name}", "Mean over meta-batches; bars ± one std."),
                 "table": tables.accuracy(res.accuracy, name, labels)} for name, a in params["accuracy"].items()]

    fs = params["fewshot"]
    fewshot = None  # the few-shot experiment while a published release has not run it yet
    if fs["estimators"]:
        fs_table = pd.read_csv(need(base / paths.FEWSHOT_TABLE))
        fewshot = {"fs": fs, "steps": fs["steps"], "eval_steps": fs["eval_steps"],
                   "seeds": len(params["meta"]["seeds"]),
                   "figure": _figure("fewshot_accuracy", figures.save(fewshot_section.figure(
                       pd.read_csv(need(base / paths.FEWSHOT_CURVES)), fs["steps"]), base, "fewshot_accuracy"),
                       "few-shot accuracy", "Test accuracy while fine-tuning from each learned initialization (mean "
                       f"over seeds, band ± one std over seeds; dotted line: step K = {fs['steps']}); dashed: "
                       "Prototypical Networks, which take no fine-tuning steps."),
                   "table": fewshot_section.table(fs_table, fs["reference"]),
                   "findings": fewshot_section.findings(fs_table, fs["reference"], params["preset"])}
    learned = None
    if paths.rate_experiments(params):
        learned = rates_section.section(params, base)
        learned.update(
            tables=[experiment(e) for e in learned["experiments"]],
            figure=_figure("learned_rates", figures.save(rates_section.figure(learned.pop("rates"),
                                                                              params["inner"]["alpha"]),
                                                         base, "learned_rates"),
                           "learned step sizes", "The learned inner step sizes over meta-training (mean over seeds; "
                           "log scale; per layer one line style; for one step size per parameter, each layer's "
                           "median). Dotted: the fixed alpha they start from."))
    ev = claims.evidence(params, res.profiles, base)
    judged = claims.judge_all(ev)
    verdicts = claims.rows(ev, judged)
    for row in verdicts:
        if row["key"] in pending_claims:
            row.update(verdict=NOT_YET_RUN, status="pending", evidence="", reasons="", breakdown=[],
                       comparisons=[], detail="its results are not all in yet")
    doc = render({
        "params": params, "verdicts": verdicts, "verdict_method": claims.method(),
        "generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "params_hash": provenance.params_hash(release_params or params), "commit": provenance.git_commit(),
        "trained_commit": trained_commit, "pending_units": list(pending_units),
        "discussion": {
            "tables": discussion.tables({e: res.tables[e] for e in with_paper}, judged["tables"][1]),
            "curves": discussion.curves(res.tables, others),
            "maml_tables": discussion.maml_variants({e: res.tables[e] for e in with_paper}, "Tables 1–2", True),
            "maml_figure2": discussion.maml_variants({e: res.tables[e] for e in others}, "Figure 2", False),
            "baselines": discussion.baselines({e: res.tables[e] for e in params["experiments"]}),
            "ablation": discussion.ablation(res.tables, ablations),
            "released_code": discussion.RELEASED_CODE,
            "profiles": discussion.profiles(res.profiles, params) if not res.profiles.empty else [],
            "accuracy": discussion.accuracy(res.accuracy) if not res.accuracy.empty else []},
        "experiments": {"with_paper": [experiment(e) for e in with_paper], "others": [experiment(e) for e in others],
                        "ablations": [experiment(e) for e in ablations]},
        "candidates": candidates.section(res.definitions, with_paper, params["evaluation"]["released_protocol"]),
        "profiles": profiles, "accuracy": accuracy, "fewshot": fewshot, "learned": learned,
        "datasets": [provenance.dataset(ds, s) for ds, s in res.summaries.items()],
        "data_files": [provenance.data_file(ds, s) for ds, s in res.summaries.items()],
        "job_times": provenance.job_times(params, res.bench),
        "jobs": [{"name": paths.cell_name(r), **r} for r in res.jobs.to_dict("records")],
        "jobs_hours": res.jobs["wall_seconds"].sum() / 3600,
        "versions": provenance.versions(), "paper_source": paper()["source"],
        "params_json": json.dumps(params, indent=1, sort_keys=True),
        "metrics_path": paths.METRICS, "metrics_json": json.dumps(res.metrics, indent=1, sort_keys=True),
    })
    write_text(out_html, doc)
    log.info("wrote %s", out_html)
    return verdicts
