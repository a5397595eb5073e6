"""Everything the report reads, loaded once from the files the pipeline wrote; a missing file or a
table that lacks an estimator stops the report (MissingResultError) instead of leaving a gap."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from adjoint_meta import paths, timings
from adjoint_meta.io import read_json
from adjoint_meta.reference import paper
from adjoint_meta.summarize import MissingResultError, need


@dataclass
class Results:
    metrics: dict
    jobs: pd.DataFrame                # training jobs (reports/jobs.csv)
    profiles: pd.DataFrame            # every profile row (empty without profiles)
    accuracy: pd.DataFrame            # every accuracy row (empty without accuracy studies)
    tables: dict[str, pd.DataFrame]   # experiment -> its table
    summaries: dict[str, dict]        # dataset -> its task summary
    bench: pd.DataFrame               # Snakemake's benchmark records (empty after a DVC run)


def load(params: dict, base: Path) -> Results:
    metrics = read_json(need(base / paths.METRICS))
    jobs = pd.read_csv(need(base / paths.JOBS))
    profiles = pd.read_csv(need(base / paths.PROFILES)) if params["profiles"] else pd.DataFrame()
    accuracy = pd.read_csv(need(base / paths.ACCURACY_TABLE)) if params["accuracy"] else pd.DataFrame()
    exps = params["experiments"]
    tables = {e: pd.read_csv(need(base / paths.TABLE.format(experiment=e))) for e in exps}
    for e, t in tables.items():
        if t.empty or not set(exps[e]["estimators"]) <= set(t["estimator"]):
            raise MissingResultError(f"table of experiment {e} lacks estimators "
                                     f"{sorted(set(exps[e]['estimators']) - set(t['estimator']))}")
    summaries = {ds: read_json(need(base / paths.TASKS_SUMMARY.format(dataset=ds))) for ds in params["datasets"]}
    return Results(metrics, jobs, profiles, accuracy, tables, summaries, timings.read_benchmarks(base))


def experiment_groups(params: dict) -> tuple[list[str], list[str], list[str]]:
    """The experiments as the report orders them: those with the paper's tables (Tables 1-2), the
    others (Figure 2), and the ablations (whose reference was trained in another experiment)."""
    exps = params["experiments"]
    ablations = [e for e, x in exps.items() if (x.get("paired_test") or {}).get("experiment") not in (None, e)]
    with_paper = [e for e in exps if e in paper()["tables"] and e not in ablations]
    others = [e for e in exps if e not in ablations and e not in with_paper]
    return with_paper, others, ablations
