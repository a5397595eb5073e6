"""Everything the report reads, loaded once from the files the pipeline wrote; a missing file, a table
that lacks an estimator, or a per-task error that is missing or not finite stops the report
(MissingResultError, naming the file) instead of leaving a gap."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from adjoint_meta import nrmse, paths, timings
from adjoint_meta.io import read_json
from adjoint_meta.kinds import META_LEARNERS
from adjoint_meta.reference import paper
from adjoint_meta.results import InvalidResultError, MissingResultError, need


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
    """The experiments of the paper as the report orders them: those with the paper's tables (Tables
    1-2), the others (Figure 2), and the ablations (whose reference was trained in another
    experiment); the experiments with learned step sizes (``paths.rate_experiments``) are in none."""
    exps = {e: x for e, x in params["experiments"].items() if e not in paths.rate_experiments(params)}
    ablations = [e for e, x in exps.items() if (x.get("paired_test") or {}).get("experiment") not in (None, e)]
    with_paper = [e for e in exps if e in paper()["tables"] and e not in ablations]
    others = [e for e in exps if e not in ablations and e not in with_paper]
    return with_paper, others, ablations


def floats(column: pd.Series) -> np.ndarray:
    """A column as floats, missing values (nullable integers' NA too) as NaN."""
    return column.to_numpy(float, na_value=np.nan)


@dataclass(frozen=True)
class Cell:
    """Per-task nRMSE of every estimator of one (experiment, dataset, setting), from the per-seed curves
    (``paths.EVAL_CURVE``): ``nrmse[kind]`` is [seeds, recorded steps, test tasks], for the first
    configuration of each estimator kind in the experiment's list."""
    experiment: str
    dataset: str
    setting: str
    report_step: int                  # K: the step the tables report
    steps: np.ndarray                 # the recorded fine-tuning steps
    nrmse: dict[str, np.ndarray]

    @property
    def name(self) -> str:
        return f"{self.experiment} {self.dataset} {self.setting}"

    def at(self, kind: str, step: int) -> np.ndarray:
        """[seeds, tasks] at one recorded step."""
        return self.nrmse[kind][:, int(np.flatnonzero(self.steps == step)[0]), :]


def seed_curve(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(recorded steps, nRMSE [steps, tasks]) of one per-seed curve file; a file that is missing, empty,
    incomplete or holds a non-finite error stops the report naming it."""
    try:
        frame = pd.read_csv(need(path))
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise InvalidResultError(f"{path}: not a readable curve file ({exc})") from None
    if frame.empty or not {"step", "task", "nrmse"} <= set(frame.columns):
        raise InvalidResultError(f"{path}: no per-task errors (expected columns step, task, nrmse)")
    frame["nrmse"] = pd.to_numeric(frame["nrmse"], errors="coerce")
    bad = frame[~np.isfinite(frame["nrmse"].to_numpy(float))]
    if not bad.empty:
        first = bad.iloc[0]
        raise InvalidResultError(f"{path}: nRMSE is not finite in {len(bad)} of {len(frame)} rows (first at step "
                                 f"{int(first['step'])}, task {int(first['task'])}); the verdicts need every test "
                                 "task's error (did fine-tuning diverge? see evaluation.lr)")
    grid = frame.pivot_table(index="step", columns="task", values="nrmse", aggfunc="first")
    if grid.isna().any().any() or len(grid) * grid.shape[1] != len(frame):
        raise InvalidResultError(f"{path}: per-task errors are incomplete (not every task at every recorded step)")
    return grid.index.to_numpy(int), grid.to_numpy(float)


def cells(params: dict, base: Path, experiments: list[str]) -> list[Cell]:
    """Every (dataset, setting) of the experiments, with each meta-learner kind's per-task nRMSE over the seeds."""
    out = []
    for e in experiments:
        x = params["experiments"][e]
        kinds: dict[str, str] = {}
        for est in x["estimators"]:  # the paper's claims are about meta-learners: no baseline here
            if params["estimators"][est]["kind"] in META_LEARNERS:
                kinds.setdefault(params["estimators"][est]["kind"], est)
        for ds in x["datasets"]:
            for st in x["settings"]:
                steps, shape, nrmse = None, None, {}
                for kind, est in kinds.items():
                    per_seed = []
                    for seed in params["meta"]["seeds"]:
                        path = base / paths.EVAL_CURVE.format(experiment=e, dataset=ds, setting=st, estimator=est,
                                                              seed=seed)
                        s, grid = seed_curve(path)
                        steps, shape = (s, grid.shape) if steps is None else (steps, shape)
                        if not np.array_equal(s, steps) or grid.shape != shape:
                            raise InvalidResultError(f"{path}: recorded steps or test tasks differ from the other "
                                                     f"curves of {e} {ds} {st}")
                        per_seed.append(grid)
                    nrmse[kind] = np.stack(per_seed)
                if int(x["steps"]) not in steps:
                    raise InvalidResultError(f"{path}: step K = {x['steps']} of experiment {e} was not recorded")
                out.append(Cell(e, ds, st, int(x["steps"]), steps, nrmse))
    return out
