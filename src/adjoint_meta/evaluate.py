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

Beside them, ``definitions`` holds every candidate definition of the paper's nRMSE
(``adjoint_meta.nrmse``) at step K, and under the released code's test protocol
(``evaluation.released_protocol``: Adam from theta for its own number of steps, the best
recorded step of the mean curve), so the summary can say which one, if any, gives the
paper's numbers.  Errors are computed in float64 whatever the training dtype.
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator

import torch

from adjoint_meta import backends, model_file, nrmse, optim, runtime
from adjoint_meta.estimators.core import stack
from adjoint_meta.interface import Data, TaskModel
from adjoint_meta.io import atomic_path, write_json
from adjoint_meta.rates import rate_for
from adjoint_meta.tasks import TaskPool

ADAM_WEIGHT_DECAY = 1e-6  # the released code's fine-tuning optimizer


def in_units(model: TaskModel, u: torch.Tensor, data: Data, shift: float = 0.0,
             scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Predictions, targets and the mask of existing examples, in the data's original units (float64)."""
    mask = (data.w > 0).to(torch.float64)
    pred = model.predict(u, data.x).to(torch.float64) * scale + shift
    return pred, data.y.to(torch.float64) * scale + shift, mask


def errors(model: TaskModel, u: torch.Tensor, data: Data, shift: float = 0.0,
           scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task (nRMSE, RMSE) over the examples with positive weight, in original units."""
    pred, y, mask = in_units(model, u, data, shift, scale)
    return nrmse.relative(pred, y, mask), nrmse.rmse(pred, y, mask)


def record_steps(eval_steps: int, every: int, marks: list[int]) -> list[int]:
    """0, every, 2*every, ..., eval_steps, plus the marked steps (K, MAML's K)."""
    steps = set(range(0, eval_steps + 1, every)) | {eval_steps} | {m for m in marks if 0 <= m <= eval_steps}
    return sorted(steps)


def finetune(model: TaskModel, theta: torch.Tensor, support: Data, steps: list[int], optimizer: str,
             lr: float | torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """Fine-tune every test task from theta on its support examples (all tasks stacked: one batched
    run) and yield ``(step, u)`` at each of the increasing ``steps``; ``u [T, P]`` is the live
    iterate (Adam updates it in place): copy it to keep it.  Gradient descent takes ``lr`` as a
    number or one step size per parameter ``[P]`` (learned step sizes)."""
    u = stack(theta, support.n_tasks)
    # Adam is elementwise, so one optimizer on [T, P] = T independent ones
    opt = optim.Adam(u, lr, weight_decay=ADAM_WEIGHT_DECAY) if optimizer == "adam" else None
    done = 0
    for stop in steps:
        with torch.inference_mode():  # no autograd anywhere: skip its bookkeeping
            for _ in range(stop - done):
                g = model.grad(u, support)
                if opt is None:
                    u = u - lr * g
                else:
                    opt.step(g)
        done = stop
        yield stop, u


def finetune_curve(model: TaskModel, theta: torch.Tensor, support: Data, evaluation: Data, steps: list[int],
                   optimizer: str, lr: float, target: dict | None = None) -> dict[int, tuple[torch.Tensor,
                                                                                             torch.Tensor]]:
    """Errors of all test tasks at each step in ``steps`` while fine-tuning from theta."""
    scaling = (float(target["shift"]), float(target["scale"])) if target else (0.0, 1.0)
    with torch.inference_mode():
        return {s: errors(model, u, evaluation, *scaling)
                for s, u in finetune(model, theta, support, steps, optimizer, lr)}


def _stats(x: list[float]) -> dict:
    t = torch.tensor(x, dtype=torch.float64)
    finite = t[torch.isfinite(t)]
    return {"mean": float(finite.mean()) if finite.numel() else math.nan,
            "std": float(finite.std(unbiased=True)) if finite.numel() > 1 else math.nan,
            "n": int(t.numel()), "n_finite": int(finite.numel())}


def _per_task(values: torch.Tensor, **extra) -> dict:
    """A per-task definition's record: its value for the cell (the mean over finite tasks), the
    statistics of ``_stats``, anything ``extra`` and the values themselves."""
    v = values.tolist()
    stats = _stats(v)
    return {"value": stats["mean"], **stats, **extra, "per_task": v}


def definitions_at(model: TaskModel, u: torch.Tensor, support: Data, evaluation: Data, shift: float, scale: float,
                   span: float) -> dict:
    """Every candidate definition (``nrmse.DEFINITIONS``) that reads the tasks' state after K steps
    ``u``, that is all but the released protocol's; ``span`` is definition 3's range."""
    return definitions_of(*in_units(model, u, evaluation, shift, scale), *in_units(model, u, support, shift, scale),
                          shift, scale, span)


def definitions_of(pred, y, mask, pred_s, y_s, mask_s, shift: float, scale: float, span: float) -> dict:
    """The definitions of ``definitions_at`` from predictions and targets in the data's units, on the
    held-out examples (``pred``, ``y``, ``mask``) and on the support set (``pred_s``, ...)."""
    pooled, n_finite = nrmse.pooled(pred, y, mask)
    return {
        "ours": _per_task(nrmse.relative(pred, y, mask)),
        "standardized": _per_task(nrmse.standardized(pred, y, mask, shift, scale), shift=shift, scale=scale),
        "range": _per_task(nrmse.over_range(pred, y, mask, span), range=span),
        "std": _per_task(nrmse.over_std(pred, y, mask)),
        "pooled": {"value": pooled, "n": int(mask.shape[0]), "n_finite": n_finite},
        "support": _per_task(nrmse.support(pred_s, y_s, mask_s)),
    }


def released_protocol(model: TaskModel, theta: torch.Tensor, support: Data, evaluation: Data, protocol: dict,
                      shift: float, scale: float) -> dict:
    """Definition 7: Adam (``protocol``'s lr, weight decay 1e-6) from theta for ``protocol['steps']``
    steps, definition 1 recorded every ``record_every`` steps (and at step 0); the per-task values at
    the recorded step whose mean over tasks is lowest (``nrmse.best_of_curve``), with that step and
    the mean curve."""
    steps = record_steps(int(protocol["steps"]), int(protocol["record_every"]), [])
    curve = {s: errors(model, u, evaluation, shift, scale)[0]
             for s, u in finetune(model, theta, support, steps, "adam", float(protocol["lr"]))}
    best, values = nrmse.best_of_curve(curve)
    return _per_task(values, step=best, steps=int(protocol["steps"]), lr=float(protocol["lr"]),
                     weight_decay=ADAM_WEIGHT_DECAY, record_every=int(protocol["record_every"]),
                     curve={"step": list(curve), "mean": [nrmse.finite_mean(v) for v in curve.values()]})


def run(spec: dict, cell: dict, model_path: str, tasks_path: str, out_json: str, out_curve: str,
        log_file: str | None = None) -> dict:
    log = runtime.logger("evaluate", log_file)
    device, dtype = runtime.setup(spec["runtime"])
    exp = spec["experiments"][cell["experiment"]]
    ds_cfg, setting, ev = spec["datasets"][cell["dataset"]], spec["settings"][cell["setting"]], spec["evaluation"]
    theta, train_summary = model_file.load(model_path)
    pool = TaskPool.load(tasks_path)
    model = backends.of_dataset(ds_cfg, pool.input_dim)
    if model.n_params != theta.numel():
        raise ValueError(f"{model_path}: theta has {theta.numel()} parameters, the model of "
                         f"datasets.{cell['dataset']} has {model.n_params}; retrain")
    support, evaluation = pool.test_split(int(setting["shot"]), dtype)
    learned = train_summary.get("learned_rates")  # gradient descent takes them (config.checks.learned_rates)
    K, K_maml = int(exp["steps"]), int(exp["maml_steps"])
    steps = record_steps(int(exp["eval_steps"]), int(ev["record_every"]), [K, K_maml])
    log.info("evaluate %s on %d test tasks, %d fine-tuning steps (%s, lr %g)",
             " ".join(f"{k}={v}" for k, v in cell.items()), support.n_tasks, steps[-1], ev["optimizer"], ev["lr"])
    target = pool.summary.get("target")
    shift, scale = (float(target["shift"]), float(target["scale"])) if target else (0.0, 1.0)
    theta, support, evaluation = theta.to(device, dtype), support.to(device, dtype), evaluation.to(device, dtype)
    curve: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    with torch.inference_mode():
        span = nrmse.value_range(ds_cfg["source"], evaluation.y.to(torch.float64) * scale + shift,
                                 (evaluation.w > 0).to(torch.float64))
        lr = rate_for(learned, model, float(ev["lr"]), theta)  # the learned step sizes, if any
        for s, u in finetune(model, theta, support, steps, ev["optimizer"], lr):
            curve[s] = errors(model, u, evaluation, shift, scale)
            if s == K:
                definitions = definitions_at(model, u, support, evaluation, shift, scale, span)
        definitions["released"] = released_protocol(model, theta, support, evaluation, ev["released_protocol"],
                                                    shift, scale)
    if set(definitions) != set(nrmse.DEFINITIONS):
        raise RuntimeError(f"definitions computed {sorted(definitions)} differ from nrmse.DEFINITIONS "
                           f"{sorted(nrmse.DEFINITIONS)}")

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
        "definitions": definitions,
    }
    write_json(out_json, result)
    log.info("nRMSE at step %d: %.4f +- %.4f", K, result["nrmse"]["mean"], result["nrmse"]["std"])
    log.info("candidate definitions: %s", ", ".join(f"{k} {v['value']:.4g}" for k, v in definitions.items()))
    rel = definitions["released"]
    log.info("released test protocol (Adam lr %g, %d steps): lowest mean nRMSE %.4g at step %d", rel["lr"],
             rel["steps"], rel["value"], rel["step"])
    return result
