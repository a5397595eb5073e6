"""Meta-training: learn theta with one estimator on one dataset and setting.

Every estimator of a (dataset, seed) starts from the same theta and sees the
same sequence of meta-batches, so differences between them come from the
meta-gradient alone.
"""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import torch

from adjoint_meta import config, runtime
from adjoint_meta.estimators import InnerProblem, build
from adjoint_meta.io import atomic_path
from adjoint_meta.model import build_model
from adjoint_meta.seeding import derive_seed, torch_generator
from adjoint_meta.tasks import TaskPool


class NonFiniteError(RuntimeError):
    """A meta-gradient or query loss that is NaN or infinite."""


def make_optimizer(name: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"meta.optimizer {name!r}; allowed values: adam, sgd")


def run(spec: dict, cell: dict, tasks_path: str, out_model: str, out_log: str,
        log_file: str | None = None) -> dict:
    """Train and write ``out_model`` (theta and metadata) and ``out_log`` (one CSV row per meta-step)."""
    log = runtime.logger("train", log_file)
    device, dtype = runtime.setup(spec["runtime"])
    ds_cfg, setting = spec["datasets"][cell["dataset"]], spec["settings"][cell["setting"]]
    est_cfg = spec["estimators"][cell["estimator"]]
    meta, alpha = spec["meta"], float(spec["inner"]["alpha"])
    exp = spec["experiments"][cell["experiment"]]
    kind = est_cfg["kind"]
    steps = config.inner_steps(kind, exp["steps"], exp["maml_steps"])
    optimizer, lr = config.outer_optimizer(meta, est_cfg)
    master, seed = int(spec["seed"]), int(cell["seed"])

    pool = TaskPool.load(tasks_path)
    model = build_model(pool.input_dim, ds_cfg["hidden"], ds_cfg["activation"])
    theta = torch.nn.Parameter(model.init(torch_generator(master, "init", cell["dataset"], seed), dtype).to(device))
    estimator = build(kind, est_cfg, steps, alpha, seed=derive_seed(master, "estimator", *cell.values()))
    label = est_cfg.get("label") or estimator.label
    opt = make_optimizer(optimizer, [theta], lr)
    gen = torch_generator(master, "tasks", cell["dataset"], cell["setting"], seed)
    shot, val = int(setting["shot"]), int(setting["val"])
    eligible = int(pool.eligible(shot, val).numel())
    log.info("train %s | %s | %d parameters | K=%d alpha=%g | outer %s lr %g | %d/%d eligible training tasks "
             "| device %s %s", " ".join(f"{k}={v}" for k, v in cell.items()), label, model.n_params, steps, alpha,
             optimizer, lr, eligible, pool.n_train_tasks, runtime.describe_device(device),
             str(dtype).replace("torch.", ""))

    n_steps, every = int(meta["meta_epochs"]), int(spec["runtime"]["log_every"])
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["meta_step", "query_loss", "grad_norm", "seconds", "skipped_tasks"])
    skipped_total, start = 0, time.perf_counter()
    extra: dict[str, float] = {}
    for step in range(1, n_steps + 1):
        task_ids, support, query = pool.sample(gen, int(meta["meta_batch"]), shot, val, dtype)
        problem = InnerProblem(model, support.to(device, dtype), query.to(device, dtype))
        mg = estimator(theta.detach(), problem)
        ok = torch.isfinite(mg.grad).all(1) & torch.isfinite(mg.query_loss)
        if not bool(ok.all()):
            bad = [int(task_ids[i]) for i in torch.nonzero(~ok).flatten().tolist()]
            msg = (f"non-finite meta-gradient at meta-step {step} for training task(s) {bad} of "
                   f"{cell['dataset']} ({label}, K={steps}): the inner loop or its adjoint "
                   f"diverged; lower inner.alpha or check the data")
            if meta["on_nonfinite"] == "stop" or not bool(ok.any()):
                raise NonFiniteError(msg)
            log.warning("%s; skipping them (meta.on_nonfinite = skip)", msg)
            skipped_total += len(bad)
        grad = mg.grad[ok].mean(0)
        opt.zero_grad(set_to_none=True)
        theta.grad = grad
        opt.step()
        for k, v in mg.stats.items():
            extra[k] = extra.get(k, 0.0) + float(v)
        loss = float(mg.query_loss[ok].mean())
        elapsed = time.perf_counter() - start
        writer.writerow([step, f"{loss:.8g}", f"{float(grad.norm()):.8g}", f"{elapsed:.4f}", skipped_total])
        if step % every == 0 or step == n_steps or step == 1:
            eta = elapsed / step * (n_steps - step)
            log.info("meta-step %d/%d  query loss %.5g  elapsed %.1fs  eta %.1fs", step, n_steps, loss, elapsed, eta)

    wall = time.perf_counter() - start
    summary = {
        "cell": cell, "estimator_label": label, "kind": kind, "inner_steps": steps, "alpha": alpha,
        "outer": {"optimizer": optimizer, "lr": lr},
        "n_params": model.n_params, "sizes": model.sizes, "activation": model.activation,
        "meta_steps": n_steps, "wall_seconds": wall, "skipped_tasks": skipped_total,
        "eligible_tasks": eligible, "device": runtime.describe_device(device),
        "dtype": str(dtype).replace("torch.", ""),
        "stats_per_step": {k: v / n_steps for k, v in extra.items()},
    }
    with atomic_path(out_log) as tmp:
        tmp.write_text(rows.getvalue())
    with atomic_path(out_model) as tmp:
        torch.save({"theta": theta.detach().cpu(), "summary": summary, "spec": spec}, tmp)
    log.info("done in %.1fs; wrote %s", wall, out_model)
    return summary


def load_theta(path: str | Path) -> tuple[torch.Tensor, dict]:
    blob = torch.load(path, map_location="cpu", weights_only=False)
    return blob["theta"], blob["summary"]
