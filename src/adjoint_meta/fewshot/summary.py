"""The few-shot experiment's table and curves, from every job's per-task records.

* ``reports/fewshot.csv``: one row per method (the estimators of ``fewshot.estimators``, then
  Prototypical Networks): accuracy before fine-tuning, at step K and at the last step (mean over
  seeds of the mean over test tasks, and the std over seeds of the per-seed means), the
  cross-entropy at the last step, and the reference's lead in accuracy at the last step with its
  95% interval over training seeds and test tasks that the verdicts use (``verdicts.paired_interval``:
  every method is tested on the same tasks for each seed).
  ProtoNet takes no fine-tuning steps: its one accuracy stands at every step.
* ``reports/fewshot_curves.csv``: per method (its label and role) and recorded step, the mean accuracy and
  cross-entropy, the std over seeds and the mean std over test tasks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from adjoint_meta import config, paths, verdicts
from adjoint_meta.fewshot import PROTONET
from adjoint_meta.io import read_json
from adjoint_meta.results import need


def _jobs(params: dict, root: Path) -> dict[str, list[tuple[dict, pd.DataFrame]]]:
    """method -> [(summary, per-task curve)] in seed order."""
    out: dict[str, list] = {}
    for j in config.fewshot_jobs(params):
        out.setdefault(j["estimator"], []).append(
            (read_json(need(root / paths.FEWSHOT.format(**j))),
             pd.read_csv(need(root / paths.FEWSHOT_CURVE.format(**j)))))
    for j in config.protonet_jobs(params):
        out.setdefault(PROTONET, []).append(
            (read_json(need(root / paths.PROTONET.format(**j))),
             pd.read_csv(need(root / paths.PROTONET_CURVE.format(**j)))))
    return out


def _at(curve: pd.DataFrame, step: int, column: str = "accuracy") -> np.ndarray:
    """Per-task values at ``step`` in task order; a curve of one step (ProtoNet's) stands for every step."""
    rows = curve[curve["step"] == (curve["step"].iloc[0] if curve["step"].nunique() == 1 else step)]
    return rows.sort_values("task")[column].to_numpy(dtype=float)


def tables(params: dict, root: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the table, the curves) of the few-shot experiment."""
    fs, root = params["fewshot"], Path(root)
    if not fs["estimators"]:  # a published release that has not run the few-shot experiment yet
        return pd.DataFrame(), pd.DataFrame()
    jobs = _jobs(params, root)
    K, last, ref = int(fs["steps"]), int(fs["eval_steps"]), fs["reference"]
    ref_last = np.stack([_at(c, last) for _, c in jobs[ref]])
    rows, curves = [], []
    for method, runs in jobs.items():
        first = runs[0][0]
        per_seed = {s: np.stack([_at(c, s) for _, c in runs]) for s in (0, K, last)}
        row = {"method": method, "label": first["label"], "role": first["role"], "seeds": len(runs),
               "tasks": per_seed[last].shape[1]}
        for name, s in (("step0", 0), ("K", K), ("final", last)):
            row[f"accuracy_{name}"] = float(per_seed[s].mean())
            row[f"accuracy_{name}_seed_std"] = float(per_seed[s].mean(1).std(ddof=1)) if len(runs) > 1 else np.nan
        row["cross_entropy_final"] = float(np.mean([_at(c, last, "cross_entropy").mean() for _, c in runs]))
        if method != ref:
            # the reference's lead: paired_interval's diff is "other - ref", so the reference goes in as "other"
            b = verdicts.paired_interval(per_seed[last], ref_last)
            row.update(ref_lead=b.diff, ref_lead_lo=b.lo, ref_lead_hi=b.hi, outcome=b.outcome)
        rows.append(row)
        for step in sorted(set().union(*(set(c["step"]) for _, c in runs))):
            acc = np.stack([_at(c, step) for _, c in runs])
            ce = np.stack([_at(c, step, "cross_entropy") for _, c in runs])
            curves.append({"method": method, "label": first["label"], "role": first["role"], "step": step,
                           "accuracy_mean": acc.mean(),
                           "accuracy_seed_std": acc.mean(1).std(ddof=1) if len(runs) > 1 else np.nan,
                           "accuracy_task_std": acc.std(1, ddof=1).mean() if acc.shape[1] > 1 else np.nan,
                           "cross_entropy_mean": ce.mean()})
    return pd.DataFrame(rows), pd.DataFrame(curves)
