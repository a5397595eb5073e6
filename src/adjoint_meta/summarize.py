"""Collect every evaluation and training record into tables, metrics and mean curves.

Outputs (all read by the report, the metrics also by ``dvc metrics``):
* ``reports/metrics.json``: experiment -> dataset -> setting -> estimator -> numbers;
* ``reports/tables/{experiment}.csv``: one row per (dataset, setting, estimator);
* ``reports/plots/{experiment}_curves.csv``: mean and std of nRMSE over test tasks
  per fine-tuning step, one row per (step, dataset, setting, estimator);
* ``reports/jobs.csv``: wall time, device and solver counters of every training job.

With several seeds, ``nrmse_mean`` is the mean over seeds of the mean over test
tasks, ``nrmse_std`` the mean over seeds of the std over test tasks, and
``nrmse_seed_std`` the std over seeds of the per-seed means.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from adjoint_meta import config, paths, runtime
from adjoint_meta.io import atomic_path, read_json, write_json
from adjoint_meta.train import load_theta


class MissingResultError(FileNotFoundError):
    """An input the summary needs was not produced."""


def _need(path: str) -> str:
    if not Path(path).exists():
        raise MissingResultError(f"{path}: expected result is missing; run the pipeline's earlier steps")
    return path


def _seed_stats(values: list[dict]) -> dict:
    means = np.array([v["mean"] for v in values], dtype=float)
    stds = np.array([v["std"] for v in values], dtype=float)
    return {"mean": float(np.mean(means)), "std": float(np.mean(stds)),
            "seed_std": float(np.std(means, ddof=1)) if len(means) > 1 else math.nan}


def run(spec: dict, root: str = ".", log_file: str | None = None) -> dict:
    log = runtime.logger("summarize", log_file)
    grid = config.cells(spec)
    metrics: dict = {}
    table_rows: dict[str, list[dict]] = {}
    curve_frames: dict[str, list[pd.DataFrame]] = {}
    jobs = []
    groups: dict[tuple, list] = {}
    for cell in grid:
        d = cell.as_dict()
        groups.setdefault((cell.experiment, cell.dataset, cell.setting, cell.estimator), []).append(d)
    for (exp, ds, st, est), members in groups.items():
        evals = [read_json(_need(str(Path(root) / paths.EVAL.format(**m)))) for m in members]
        nr = _seed_stats([e["nrmse"] for e in evals])
        rm = _seed_stats([e["rmse"] for e in evals])
        entry = {"nrmse_mean": nr["mean"], "nrmse_std": nr["std"], "nrmse_seed_std": nr["seed_std"],
                 "rmse_mean": rm["mean"], "rmse_std": rm["std"],
                 "n_test_tasks": evals[0]["n_test_tasks"], "report_step": evals[0]["report_step"],
                 "inner_steps_trained": evals[0]["inner_steps_trained"], "seeds": len(evals)}
        metrics.setdefault(exp, {}).setdefault(ds, {}).setdefault(st, {})[est] = entry
        table_rows.setdefault(exp, []).append({"dataset": ds, "setting": st, "estimator": est,
                                               "label": evals[0]["estimator_label"], **entry})
        curves = pd.concat([pd.read_csv(_need(str(Path(root) / paths.EVAL_CURVE.format(**m)))).assign(seed=m["seed"])
                            for m in members])
        per_seed = curves.groupby(["seed", "step"])["nrmse"].agg(["mean", "std"]).reset_index()
        mean_curve = per_seed.groupby("step")[["mean", "std"]].mean().reset_index()
        curve_frames.setdefault(exp, []).append(
            mean_curve.rename(columns={"mean": "nrmse_mean", "std": "nrmse_std"})
            .assign(dataset=ds, setting=st, estimator=est))
        for m in members:
            _, summary = load_theta(_need(str(Path(root) / paths.MODEL.format(**m))))
            jobs.append({**m, "label": summary["estimator_label"], "inner_steps": summary["inner_steps"],
                         "wall_seconds": summary["wall_seconds"], "device": summary["device"],
                         "dtype": summary["dtype"], "skipped_tasks": summary["skipped_tasks"],
                         "eligible_tasks": summary["eligible_tasks"],
                         **{f"per_step_{k}": v for k, v in summary["stats_per_step"].items()}})

    write_json(Path(root) / paths.METRICS, metrics)
    for exp, rows in table_rows.items():
        with atomic_path(Path(root) / paths.TABLE.format(experiment=exp)) as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.6g")
        with atomic_path(Path(root) / paths.CURVES.format(experiment=exp)) as tmp:
            pd.concat(curve_frames[exp])[["dataset", "setting", "estimator", "step", "nrmse_mean", "nrmse_std"]] \
                .to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(Path(root) / paths.JOBS) as tmp:
        pd.DataFrame(jobs).to_csv(tmp, index=False, float_format="%.6g")
    log.info("summarized %d evaluations of %d experiment(s) into %s", len(grid), len(table_rows), paths.METRICS)
    return metrics
