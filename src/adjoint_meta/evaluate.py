"""Meta-test: fine-tune every held-out task from the learned theta and measure its error.

Each test task trains on its ``shot`` support examples (gradient descent with
``evaluation.lr``, or Adam as in the released code) for ``eval_steps`` steps;
the error on its evaluation examples is recorded along the way.  The tables
report step K (the experiment's ``steps``) for every estimator.

Metrics per task, over its evaluation examples, in the data's original units
(predictions and targets mapped back through the dataset's target scaling,
rating = y * scale + shift; definitions also in the report):
    nRMSE = ||y_hat - y||_2 / ||y||_2     (primary; the paper does not define it)
    RMSE  = sqrt(mean (y_hat - y)^2)      (in the data's own units, e.g. rating points)
"""
from __future__ import annotations

import csv
import io
import math

import torch

from adjoint_meta import model_file, optim, runtime
from adjoint_meta.estimators.core import stack
from adjoint_meta.io import atomic_path, write_json
from adjoint_meta.model import MLP, Data, build_model
from adjoint_meta.tasks import TaskPool


def errors(model: MLP, u: torch.Tensor, data: Data, shift: float = 0.0,
           scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task (nRMSE, RMSE) over the examples with positive weight, in original units."""
    mask = (data.w > 0).to(u.dtype)
    r = (model.predict(u, data.x) - data.y) * (mask * scale)  # y_hat - y is shift-free
    target = (data.y * scale + shift) * mask
    sq = (r * r).sum(1)
    nrmse = sq.sqrt() / target.pow(2).sum(1).sqrt()
    rmse = (sq / mask.sum(1)).sqrt()
    return nrmse, rmse


def record_steps(eval_steps: int, every: int, marks: list[int]) -> list[int]:
    """0, every, 2*every, ..., eval_steps, plus the marked steps (K, MAML's K)."""
    steps = set(range(0, eval_steps + 1, every)) | {eval_steps} | {m for m in marks if 0 <= m <= eval_steps}
    return sorted(steps)


def finetune_curve(model: MLP, theta: torch.Tensor, support: Data, evaluation: Data, steps: list[int],
                   optimizer: str, lr: float, target: dict | None = None) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Errors of all test tasks at each step in ``steps`` while fine-tuning from theta."""
    u = stack(theta, support.n_tasks)
    # Adam is elementwise, so one optimizer on [T, P] = T independent ones
    opt = optim.Adam(u, lr, weight_decay=1e-6) if optimizer == "adam" else None
    scaling = (float(target["shift"]), float(target["scale"])) if target else (0.0, 1.0)
    out, done = {}, 0
    with torch.inference_mode():  # no autograd anywhere: skip its bookkeeping
        for stop in steps:
            for _ in range(stop - done):
                g = model.grad(u, support)
                if opt is None:
                    u = u - lr * g
                else:
                    opt.step(g)
            done = stop
            out[stop] = errors(model, u, evaluation, *scaling)
    return out


def _stats(x: list[float]) -> dict:
    t = torch.tensor(x, dtype=torch.float64)
    finite = t[torch.isfinite(t)]
    return {"mean": float(finite.mean()) if finite.numel() else math.nan,
            "std": float(finite.std(unbiased=True)) if finite.numel() > 1 else math.nan,
            "n": int(t.numel()), "n_finite": int(finite.numel())}


def run(spec: dict, cell: dict, model_path: str, tasks_path: str, out_json: str, out_curve: str,
        log_file: str | None = None) -> dict:
    log = runtime.logger("evaluate", log_file)
    device, dtype = runtime.setup(spec["runtime"])
    exp = spec["experiments"][cell["experiment"]]
    ds_cfg, setting, ev = spec["datasets"][cell["dataset"]], spec["settings"][cell["setting"]], spec["evaluation"]
    theta, train_summary = model_file.load(model_path)
    pool = TaskPool.load(tasks_path)
    model = build_model(pool.input_dim, ds_cfg["hidden"], ds_cfg["activation"])
    if model.n_params != theta.numel():
        raise ValueError(f"{model_path}: theta has {theta.numel()} parameters, the model of "
                         f"datasets.{cell['dataset']} has {model.n_params}; retrain")
    support, evaluation = pool.test_split(int(setting["shot"]), dtype)
    K, K_maml = int(exp["steps"]), int(exp["maml_steps"])
    steps = record_steps(int(exp["eval_steps"]), int(ev["record_every"]), [K, K_maml])
    log.info("evaluate %s on %d test tasks, %d fine-tuning steps (%s, lr %g)",
             " ".join(f"{k}={v}" for k, v in cell.items()), support.n_tasks, steps[-1], ev["optimizer"], ev["lr"])
    curve = finetune_curve(model, theta.to(device, dtype), support.to(device, dtype),
                           evaluation.to(device, dtype), steps, ev["optimizer"], float(ev["lr"]),
                           pool.summary.get("target"))

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["step", "task", "nrmse", "rmse"])
    for s, (nr, rm) in curve.items():
        for t, (a, b) in enumerate(zip(nr.tolist(), rm.tolist())):
            w.writerow([s, t, f"{a:.8g}", f"{b:.8g}"])
    with atomic_path(out_curve) as tmp:
        tmp.write_text(buf.getvalue())

    for s, (nr_s, _) in curve.items():
        bad = torch.nonzero(~torch.isfinite(nr_s)).flatten().tolist()
        if bad:  # fine-tuning diverged: said once, at the first recorded step it shows
            log.warning("non-finite error from fine-tuning step %d on for test task(s) %s of %s (evaluation.lr "
                        "%g too large?); they are left out of means and counted in n_finite", s, bad,
                        cell["dataset"], ev["lr"])
            break
    nr, rm = (v.tolist() for v in curve[K])
    result = {
        "cell": cell,
        "estimator_label": train_summary["estimator_label"],
        "inner_steps_trained": train_summary["inner_steps"],
        "report_step": K,
        "n_test_tasks": support.n_tasks,
        "units": "rating" if pool.onehot else "target",
        "nrmse": {**_stats(nr), "per_task": nr},
        "rmse": {**_stats(rm), "per_task": rm},
        "at_maml_steps": {"step": K_maml, "nrmse": _stats(curve[K_maml][0].tolist())},
        "at_start": {"nrmse": _stats(curve[0][0].tolist())},
    }
    write_json(out_json, result)
    log.info("nRMSE at step %d: %.4f +- %.4f", K, result["nrmse"]["mean"], result["nrmse"]["std"])
    return result
