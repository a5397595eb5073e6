"""Collect every evaluation, profile and accuracy record into tables, metrics and curves.

Outputs (all read by the report; the metrics also by ``dvc metrics``):
* ``reports/metrics.json``: experiment -> dataset -> setting -> estimator -> numbers;
* ``reports/tables/{experiment}.csv``: one row per (dataset, setting, estimator), with
  the paper's value beside ours and the paired test of the experiment's reference; ``role``
  says ``estimator`` (a meta-learner) or ``baseline`` (``kinds``): the initialization baselines
  the experiment trains (an ablation: those of its reference's experiment) and, on
  collaborative-filtering data, the predictor baselines (``adjoint_meta.baselines``, computed
  here from the task pool), below the estimators;
* ``reports/plots/{experiment}_curves.csv``: mean and std of nRMSE over test tasks per
  fine-tuning step;
* ``reports/profiles.csv``, ``reports/accuracy.csv``: all profiling and accuracy rows;
* ``reports/fewshot.csv``, ``reports/fewshot_curves.csv``: the few-shot experiment (``fewshot.summary``);
* ``reports/jobs.csv``: wall time, device and solver counters of every training job;
* ``reports/learned_rates.csv``: the step sizes of the jobs that learn them, over meta-steps;
* ``reports/tables/nrmse_definitions.csv``: every candidate definition of the paper's nRMSE
  (``adjoint_meta.nrmse``) for every cell each experiment trains, with the paper's value and
  ours / paper (``definitions_table``).

With several seeds, ``nrmse_mean`` is the mean over seeds of the mean over test tasks,
``nrmse_std`` the mean over seeds of the std over test tasks, and ``nrmse_seed_std``
the std over seeds of the per-seed means.  The paired test is the verdicts' own
(``verdicts.paired_interval``): the difference other - reference of per-task nRMSE over
training seeds and test tasks crossed, with its 95% interval and p-value.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from adjoint_meta import baselines, config, kinds, model_file, nrmse, paths, runtime, verdicts
from adjoint_meta.fewshot import summary as fewshot_summary
from adjoint_meta.io import read_json, write_csv, write_json
from adjoint_meta.reference import table_value
from adjoint_meta.results import MissingResultError, need
from adjoint_meta.tasks import TaskPool

FLOAT_FORMAT = "%.6g"  # the summaries' numbers, to six significant digits


def _seed_stats(values: list[dict]) -> dict:
    means = np.array([v["mean"] for v in values], dtype=float)
    stds = np.array([v["std"] for v in values], dtype=float)
    return {"mean": float(np.mean(means)), "std": float(np.mean(stds)),
            "seed_std": float(np.std(means, ddof=1)) if len(means) > 1 else math.nan}


def paired_test(ref: np.ndarray, other: np.ndarray) -> dict:
    """The reference against another estimator on the same test tasks, [seeds, tasks] each (a predictor
    baseline, which has no training seed, as one row set against every seed): the verdicts' interval of
    other - ref (``verdicts.paired_interval``) and its p-value, with the median per-task difference of the
    seed means and the share of tasks where the reference is better (descriptive)."""
    ref = np.atleast_2d(np.asarray(ref, dtype=float))
    other = np.broadcast_to(np.atleast_2d(np.asarray(other, dtype=float)), ref.shape)
    diff = (other - ref).mean(0)
    described = {"median_diff": float(np.median(diff)) if diff.size else math.nan,
                 "ref_better_share": float(np.mean(diff > 0)) if diff.size else math.nan}
    if np.allclose(other, ref):
        return {"p_value": 1.0, "diff": 0.0, "ci_low": 0.0, "ci_high": 0.0, **described}
    r = verdicts.paired_interval(ref, other)
    return {"p_value": r.p_tail, "diff": r.diff, "ci_low": r.lo, "ci_high": r.hi, **described}


class Evaluations:
    """Loads each cell's evaluation once: per-seed JSON, curves and train summaries."""

    def __init__(self, params: dict, root: Path):
        self.params, self.root = params, root
        self._cache: dict[tuple, list[dict]] = {}

    def files(self, experiment: str, dataset: str, setting: str, estimator: str) -> list[Path]:
        """The cell's evaluation files, one per seed."""
        return [self.root / paths.EVAL.format(experiment=experiment, dataset=dataset, setting=setting,
                                              estimator=estimator, seed=s) for s in self.params["meta"]["seeds"]]

    def cell(self, experiment: str, dataset: str, setting: str, estimator: str) -> list[dict]:
        key = (experiment, dataset, setting, estimator)
        if key not in self._cache:
            self._cache[key] = [read_json(need(f)) for f in self.files(*key)]
        return self._cache[key]

    def per_task(self, *key: str) -> np.ndarray:
        """nRMSE per test task, [seeds, tasks]."""
        return np.array([e["nrmse"]["per_task"] for e in self.cell(*key)], dtype=float)

    def predictors(self, dataset: str, setting: str) -> dict[str, dict]:
        """The predictor baselines of a collaborative-filtering cell (``baselines.evaluate``), from
        its task pool; none for synthetic data."""
        ds = self.params["datasets"][dataset]
        if ds["source"] == "synthetic":
            return {}
        key = ("predictors", dataset, setting)
        if key not in self._cache:
            pool = TaskPool.load(need(self.root / paths.TASKS.format(dataset=dataset)),
                                 need(self.root / paths.TASKS_SUMMARY.format(dataset=dataset)))
            self._cache[key] = baselines.evaluate(pool, int(self.params["settings"][setting]["shot"]), ds["source"])
        return self._cache[key]


def _row(evals: list[dict], experiment: str, dataset: str, setting: str, estimator: str, label: str,
         source: str, kind: str) -> dict:
    nr, rm = _seed_stats([e["nrmse"] for e in evals]), _seed_stats([e["rmse"] for e in evals])
    paper = None if kinds.is_baseline(kind) else table_value(experiment, dataset, setting, estimator)
    return {"dataset": dataset, "setting": setting, "estimator": estimator, "label": label, "from": source,
            "kind": kind, "role": kinds.role(kind),
            "nrmse_mean": nr["mean"], "nrmse_std": nr["std"], "nrmse_seed_std": nr["seed_std"],
            "rmse_mean": rm["mean"], "rmse_std": rm["std"], "units": evals[0].get("units", "target"),
            "n_test_tasks": evals[0]["n_test_tasks"], "report_step": evals[0]["report_step"],
            "inner_steps_trained": evals[0]["inner_steps_trained"], "seeds": len(evals),
            "paper_mean": paper[0] if paper else math.nan, "paper_std": paper[1] if paper else math.nan,
            "diff_vs_paper": nr["mean"] - paper[0] if paper else math.nan}


def _kind(params: dict, estimator: str) -> str:
    return params["estimators"][estimator]["kind"]


def experiment_table(params: dict, name: str, ev: Evaluations) -> pd.DataFrame:
    """The rows of one experiment: its estimators (and its reference, when trained elsewhere), then
    the baselines, each with the paired test of the reference against it."""
    exp = params["experiments"][name]
    label = lambda e: params["estimators"][e].get("label", e)  # noqa: E731
    pt = exp.get("paired_test")
    ref_exp = (pt or {}).get("experiment", name)
    rows = []
    for ds in exp["datasets"]:
        for st in exp["settings"]:
            ests = list(exp["estimators"])
            sources = {e: name for e in ests}
            if pt and pt["estimator"] not in ests:  # the reference comes from another experiment
                ests.insert(0, pt["estimator"])
                sources[pt["estimator"]] = ref_exp
            if ref_exp != name:  # an ablation shows the baselines of its reference's experiment
                for e in params["experiments"][ref_exp]["estimators"]:
                    if kinds.is_baseline(_kind(params, e)) and e not in sources:
                        ests.append(e)
                        sources[e] = ref_exp
            ests.sort(key=lambda e: kinds.is_baseline(_kind(params, e)))  # stable: estimators, then baselines
            ref = ev.per_task(ref_exp, ds, st, pt["estimator"]) if pt else None
            scored = [(est, ev.cell(sources[est], ds, st, est), label(est), sources[est], _kind(params, est))
                      for est in ests]
            scored += [(b, [rec], rec["estimator_label"], name, b) for b, rec in ev.predictors(ds, st).items()]
            for est, evals, lab, source, kind in scored:
                row = _row(evals, name, ds, st, est, lab, source, kind)
                if pt:
                    test = paired_test(ref, np.array([e["nrmse"]["per_task"] for e in evals], dtype=float))
                    row.update({"reference": pt["estimator"], **test} if est != pt["estimator"] else
                               {"reference": pt["estimator"], "p_value": math.nan, "diff": 0.0, "ci_low": math.nan,
                                "ci_high": math.nan, "median_diff": 0.0, "ref_better_share": math.nan})
                rows.append(row)
    return pd.DataFrame(rows)


def _number(record: dict, path: str | Path, key: str) -> float:
    value = record.get(key) if isinstance(record, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MissingResultError(f"{path}: {key} is missing or not a finite number; rerun the evaluate step")
    return float(value)


def definition_value(record: dict, path: str | Path, name: str, field: str = "value") -> float:
    """A candidate definition's number for one evaluation (``definitions.<name>.<field>`` of its file);
    a missing or non-finite one stops the summary, naming the file."""
    try:
        value = record["definitions"][name][field]
    except (KeyError, TypeError):
        raise MissingResultError(f"{path}: definitions.{name}.{field} is missing (written by an older evaluate "
                                 "step?); rerun the pipeline's evaluate step") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MissingResultError(f"{path}: definitions.{name}.{field} is not a finite number (got "
                                 f"{'null' if value is None else repr(value)}); rerun the evaluate step, and if "
                                 "fine-tuning diverged on every test task, lower evaluation.lr")
    return float(value)


def definitions_table(params: dict, ev: Evaluations) -> pd.DataFrame:
    """One row per (experiment, dataset, setting, estimator, definition) of the cells each experiment
    trains (an ablation's reference appears only under the experiment that trains it): ``ours`` is the mean over
    seeds of the definition's value (the mean over test tasks, or the pooled number), ``step`` the
    fine-tuning step it was read at (K; for the released protocol the median over seeds of the best
    step), ``paper`` the paper's nRMSE where it prints one and ``ratio`` = ours / paper."""
    rows = []
    for name, exp in params["experiments"].items():
        for ds in exp["datasets"]:
            for st in exp["settings"]:
                for est in exp["estimators"]:
                    key = (name, ds, st, est)
                    records, files = ev.cell(*key), ev.files(*key)
                    kind = _kind(params, est)
                    paper = None if kinds.is_baseline(kind) else table_value(*key)
                    for d in nrmse.DEFINITIONS:
                        ours = float(np.mean([definition_value(r, f, d) for r, f in zip(records, files)]))
                        step = np.median([definition_value(r, f, d, "step") if d == "released" else
                                          _number(r, f, "report_step") for r, f in zip(records, files)])
                        rows.append({"experiment": name, "dataset": ds, "setting": st, "estimator": est,
                                     "label": params["estimators"][est].get("label", est), "role": kinds.role(kind),
                                     "definition": d, "step": float(step), "seeds": len(records), "ours": ours,
                                     "paper": paper[0] if paper else math.nan,
                                     "ratio": ours / paper[0] if paper and paper[0] else math.nan})
                # the predictor baselines: every definition but the released protocol's (no fine-tuning)
                for b, rec in ev.predictors(ds, st).items():
                    for d, value in rec["definitions"].items():
                        rows.append({"experiment": name, "dataset": ds, "setting": st, "estimator": b,
                                     "label": rec["estimator_label"], "role": kinds.BASELINE, "definition": d,
                                     "step": 0.0, "seeds": 1, "ours": float(value["value"]), "paper": math.nan,
                                     "ratio": math.nan})
    return pd.DataFrame(rows, columns=["experiment", "dataset", "setting", "estimator", "label", "role",
                                       "definition", "step", "seeds", "ours", "paper", "ratio"])


def _curves(params: dict, name: str, root: Path) -> pd.DataFrame:
    exp, frames = params["experiments"][name], []
    for ds in exp["datasets"]:
        for st in exp["settings"]:
            for est in exp["estimators"]:
                cell = dict(experiment=name, dataset=ds, setting=st, estimator=est)
                curves = pd.concat([pd.read_csv(need(root / paths.EVAL_CURVE.format(**cell, seed=s))).assign(seed=s)
                                    for s in params["meta"]["seeds"]])
                per_seed = curves.groupby(["seed", "step"])["nrmse"].agg(["mean", "std"]).reset_index()
                mean = per_seed.groupby("step")[["mean", "std"]].mean().reset_index()
                frames.append(mean.rename(columns={"mean": "nrmse_mean", "std": "nrmse_std"})
                              .assign(dataset=ds, setting=st, estimator=est))
    return pd.concat(frames)[["dataset", "setting", "estimator", "step", "nrmse_mean", "nrmse_std"]]


def _jobs(params: dict, root: Path) -> pd.DataFrame:
    rows = []
    for c in config.cells(params):
        _, s = model_file.load(need(root / paths.MODEL.format(**c.as_dict())))
        rows.append({**c.as_dict(), "label": s["estimator_label"], "inner_steps": s["inner_steps"],
                     "wall_seconds": s["wall_seconds"], "device": s["device"], "dtype": s["dtype"],
                     "skipped_tasks": s["skipped_tasks"], "eligible_tasks": s["eligible_tasks"],
                     **{f"per_step_{k}": v for k, v in s["stats_per_step"].items()}})
    return pd.DataFrame(rows)


def _learned_rates(params: dict, root: Path) -> pd.DataFrame:
    """The learned step sizes of every training job that learned them, over its meta-steps: one row per
    (cell, seed, meta-step, rate column) as the training curve names the columns (``alpha``; per layer
    ``alpha_<l>``; per parameter the median ``alpha_<l>_median``; with ES also ``alpha_sigma``)."""
    rows = []
    for c in config.cells(params):
        _, s = model_file.load(need(root / paths.MODEL.format(**c.as_dict())))
        learned = s.get("learned_rates")
        if not learned:
            continue
        history = learned["history"]
        for column, values in history.items():
            if column == "meta_step":
                continue
            rows += [{**c.as_dict(), "label": s["estimator_label"], "learn": learned["learn"],
                      "method": learned["method"], "meta_step": step, "rate": column, "value": v}
                     for step, v in zip(history["meta_step"], values)]
    columns = ["experiment", "dataset", "setting", "estimator", "seed", "label", "learn", "method", "meta_step",
               "rate", "value"]
    return pd.DataFrame(rows, columns=columns)


def _concat(files: list[str]) -> pd.DataFrame:
    frames = [pd.read_csv(need(f)) for f in files]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def run(params: dict, root: str = ".", log_file: str | None = None) -> dict:
    log = runtime.logger("summarize", log_file)
    base = Path(root)
    ev = Evaluations(params, base)
    definitions = definitions_table(params, ev)  # first: a bad evaluation file stops before anything is written
    metrics: dict = {}
    for name in params["experiments"]:
        table = experiment_table(params, name, ev)
        for r in table[table["from"] == name].to_dict("records"):
            entry = {"nrmse_mean": r["nrmse_mean"], "nrmse_std": r["nrmse_std"], "rmse_mean": r["rmse_mean"]}
            if "p_value" in r and not (isinstance(r["p_value"], float) and math.isnan(r["p_value"])):
                entry["p_value"] = r["p_value"]
            metrics.setdefault(name, {}).setdefault(r["dataset"], {}).setdefault(r["setting"],
                                                                                 {})[r["estimator"]] = entry
        write_csv(table, base / paths.TABLE.format(experiment=name), FLOAT_FORMAT)
        write_csv(_curves(params, name, base), base / paths.CURVES.format(experiment=name), FLOAT_FORMAT)
    write_json(base / paths.METRICS, metrics)
    write_csv(definitions, base / paths.NRMSE_DEFINITIONS, FLOAT_FORMAT)
    write_csv(_jobs(params, base), base / paths.JOBS, FLOAT_FORMAT)
    write_csv(_concat([str(base / paths.PROFILE.format(**j)) for j in config.profile_jobs(params)]),
              base / paths.PROFILES, FLOAT_FORMAT)
    write_csv(_concat([str(base / paths.ACCURACY.format(**j)) for j in config.accuracy_jobs(params)]),
              base / paths.ACCURACY_TABLE, FLOAT_FORMAT)
    write_csv(_learned_rates(params, base), base / paths.LEARNED_RATES, FLOAT_FORMAT)
    fewshot_table, fewshot_curves = fewshot_summary.tables(params, base)
    write_csv(fewshot_table, base / paths.FEWSHOT_TABLE, FLOAT_FORMAT)
    write_csv(fewshot_curves, base / paths.FEWSHOT_CURVES, FLOAT_FORMAT)
    log.info("summarized %d training cells, %d profiling jobs and %d accuracy studies", len(config.cells(params)),
             len(config.profile_jobs(params)), len(config.accuracy_jobs(params)))
    return metrics
