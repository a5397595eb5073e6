"""Everything the report reads, loaded once from the files the pipeline wrote; a missing file or a
table that lacks an estimator stops the report (MissingResultError) instead of leaving a gap."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from adjoint_meta import nrmse, paths, timings
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
    definitions: pd.DataFrame         # every candidate nRMSE definition per cell (nrmse_definitions.csv)


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
    return Results(metrics, jobs, profiles, accuracy, tables, summaries, timings.read_benchmarks(base),
                   definitions=definitions(params, base))


def definitions(params: dict, base: Path) -> pd.DataFrame:
    """reports/tables/nrmse_definitions.csv, with a row for every definition of every cell each
    experiment trains and a finite value of ours in each; otherwise the report stops, naming the file."""
    path = base / paths.NRMSE_DEFINITIONS
    try:
        frame = pd.read_csv(need(path))
    except pd.errors.EmptyDataError:
        raise MissingResultError(f"{path}: empty; rerun the summarize step") from None
    columns = {"experiment", "dataset", "setting", "estimator", "label", "definition", "step", "ours", "paper",
               "ratio"}
    if not columns <= set(frame.columns):
        raise MissingResultError(f"{path}: lacks column(s) {sorted(columns - set(frame.columns))}; rerun the "
                                 "summarize step")
    have = set(frame[["experiment", "dataset", "setting", "estimator", "definition"]].itertuples(index=False,
                                                                                              name=None))
    wanted = [(e, d, s, est, defn) for e, x in params["experiments"].items() for d in x["datasets"]
              for s in x["settings"] for est in x["estimators"] for defn in nrmse.DEFINITIONS]
    missing = [w for w in wanted if w not in have]
    if missing:
        raise MissingResultError(f"{path}: no row for {len(missing)} (experiment, dataset, setting, estimator, "
                                 f"definition), e.g. {', '.join(missing[0])}; rerun the summarize step")
    ours = pd.to_numeric(frame["ours"], errors="coerce").to_numpy(dtype=float)
    bad = frame[~np.isfinite(ours)]
    if not bad.empty:
        r = bad.iloc[0]
        raise MissingResultError(f"{path}: ours is not a finite number in {len(bad)} row(s), e.g. {r['experiment']} "
                                 f"{r['dataset']} {r['setting']} {r['estimator']} {r['definition']} "
                                 f"({r['ours']!r}); rerun the summarize step")
    return frame


def experiment_groups(params: dict) -> tuple[list[str], list[str], list[str]]:
    """The experiments as the report orders them: those with the paper's tables (Tables 1-2), the
    others (Figure 2), and the ablations (whose reference was trained in another experiment)."""
    exps = params["experiments"]
    ablations = [e for e, x in exps.items() if (x.get("paired_test") or {}).get("experiment") not in (None, e)]
    with_paper = [e for e in exps if e in paper()["tables"] and e not in ablations]
    others = [e for e in exps if e not in ablations and e not in with_paper]
    return with_paper, others, ablations
