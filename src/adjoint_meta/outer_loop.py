"""The outer loop of meta-training, shared by every job that meta-trains: the training cells, the
few-shot experiment's models and the profile's trained theta.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from adjoint_meta import checkpoint, optim
from adjoint_meta.estimators import Estimator, InnerProblem
from adjoint_meta.estimators.flow import FlowError
from adjoint_meta.interface import TaskModel

# the training curve's columns before those of the learned step sizes; meta_train's rows follow them
CURVE_COLUMNS = ("meta_step", "query_loss", "grad_norm", "seconds", "skipped_tasks")


class NonFiniteError(RuntimeError):
    """A meta-gradient or query loss that is NaN or infinite."""


@dataclass
class Loop:
    """What the outer loop leaves: one CSV row per meta-step, the tasks it skipped, the estimator's
    counters summed over meta-steps, its seconds, the learned step sizes (None: fixed) and the names
    of the rows' columns after the standard ones (the learned step sizes)."""
    rows: list
    skipped: int
    extra: dict
    wall: float
    rates: dict | None = None
    columns: tuple[str, ...] = ()


def meta_train(estimator: Estimator, model: TaskModel, theta: torch.Tensor, gen: torch.Generator,
               sample: Callable[[], tuple], n_steps: int, *, what: str, outer: tuple[str, float], on_nonfinite: str,
               rt: dict, device: torch.device, dtype: torch.dtype, log: logging.Logger,
               ckpt_path: Path | None = None, owner: dict | None = None, alpha_key: str = "inner.alpha") -> Loop:
    """The outer loop of every meta-training job: ``n_steps`` updates of ``theta`` (in place) by the outer
    optimizer ``outer`` (name, learning rate) along the mean meta-gradient of the meta-batches
    ``sample()`` draws from ``gen`` (task ids, support, query); an estimator that learns its inner step
    sizes updates them with theta (``estimator.meta_init``).  A non-finite meta-gradient stops it, or
    with ``on_nonfinite = skip`` drops its tasks; an update that makes theta or a learned step size
    non-finite is undone and stops it.  Progress is logged every ``rt['log_every']`` steps; with a
    ``ckpt_path`` the whole state is checkpointed there every ``rt['checkpoint_every']`` steps for ``owner``
    (``checkpoint.owner_of``), and a rerun resumes from it.  ``what`` names the job, ``alpha_key`` the
    parameter of its inner step."""
    optimizer, lr = outer
    phi = estimator.meta_init(theta, model)  # theta, or theta and the log step sizes
    opt = optim.make(optimizer, phi, lr)
    columns = tuple(estimator.rate_columns(phi))
    rows: list[list] = []
    skipped_total, done, spent = 0, 0, 0.0
    extra: dict[str, float] = {}
    state = checkpoint.load(ckpt_path, owner) if ckpt_path is not None else None
    if state is not None:
        phi.copy_(state["theta"].to(device, dtype))
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        estimator.load_state_dict(state["estimator"])
        rows, skipped_total, extra = state["rows"], state["skipped"], state["extra"]
        done, spent = state["step"], state["seconds"]
        log.info("resuming from %s at meta-step %d", ckpt_path, done)

    every = int(rt["log_every"])
    ckpt_every = int(rt.get("checkpoint_every", 0)) if ckpt_path is not None else 0
    start = time.perf_counter() - spent
    for step in range(done + 1, n_steps + 1):
        task_ids, support, query = sample()
        problem = InnerProblem(model, support.to(device, dtype), query.to(device, dtype))
        try:
            mg = estimator(phi, problem)
        except FlowError as exc:
            raise NonFiniteError(f"forward solve failed at meta-step {step} for training task(s) "
                                 f"{task_ids.tolist()} of {what}: {exc}") from None
        ok = torch.isfinite(mg.grad).all(1) & torch.isfinite(mg.query_loss)
        if not bool(ok.all()):
            bad = [int(task_ids[i]) for i in torch.nonzero(~ok).flatten().tolist()]
            msg = (f"non-finite meta-gradient at meta-step {step} for training task(s) {bad} of {what}: the inner "
                   f"loop or its adjoint diverged; lower {alpha_key} or check the data" + _rates_said(estimator, phi))
            if on_nonfinite == "stop" or not bool(ok.any()):
                raise NonFiniteError(msg)
            log.warning("%s; skipping them (meta.on_nonfinite = skip)", msg)
            skipped_total += len(bad)
        grad = mg.grad[ok].mean(0)
        previous = phi.clone()
        try:
            opt.step(grad)
        except RuntimeError as exc:  # e.g. a learning rate that overflows the optimizer's arithmetic
            raise NonFiniteError(f"the outer update failed at meta-step {step} ({optimizer}, lr {lr:g}): {exc}; "
                                 "lower the outer learning rate") from None
        if not bool(torch.isfinite(phi).all()):
            phi.copy_(previous)
            raise NonFiniteError(f"theta became non-finite after the outer update at meta-step {step} "
                                 f"({optimizer}, lr {lr:g}); lower the outer learning rate")
        rate_problem = estimator.rate_problem(phi)
        if rate_problem:
            phi.copy_(previous)
            raise NonFiniteError(f"after the outer update at meta-step {step} of {what}, {rate_problem}; theta and "
                                 f"the step sizes are left as they were before it; lower the outer learning rate "
                                 f"({optimizer}, lr {lr:g})")
        for k, v in mg.stats.items():
            extra[k] = extra.get(k, 0.0) + float(v)
        loss = float(mg.query_loss[ok].mean())
        elapsed = time.perf_counter() - start
        rows.append([step, f"{loss:.8g}", f"{float(grad.norm()):.8g}", f"{elapsed:.4f}", skipped_total,
                     *(f"{v:.8g}" for v in estimator.rate_columns(phi).values())])
        if step % every == 0 or step == n_steps or step == 1:
            eta = elapsed / step * (n_steps - step)
            log.info("meta-step %d/%d  query loss %.5g  elapsed %.1fs  eta %.1fs", step, n_steps, loss, elapsed, eta)
        if ckpt_every and step % ckpt_every == 0 and step < n_steps:
            checkpoint.save(ckpt_path, {
                "step": step, "seconds": elapsed, "theta": phi.cpu(), "optimizer": opt.state_dict(),
                "generator": gen.get_state(), "estimator": estimator.state_dict(), "rows": rows,
                "skipped": skipped_total, "extra": extra}, owner)
    if phi is not theta:
        theta.copy_(estimator.theta_of(phi))
    return Loop(rows, skipped_total, extra, time.perf_counter() - start, estimator.rates(phi), columns)


def _rates_said(estimator: Estimator, phi: torch.Tensor) -> str:
    """The learned step sizes for a message about a diverged inner loop, the largest named."""
    rates = estimator.rate_columns(phi)
    if not rates:
        return ""
    largest = max((k for k in rates if k != "alpha_sigma"), key=rates.get)
    return ("; the learned step sizes (" + ", ".join(f"{k} {v:.4g}" for k, v in rates.items()) + f") are largest at "
            f"{largest}, the likely cause: lower its rate_init or the outer learning rate")


def rate_history(loop: Loop, points: int = 200) -> dict | None:
    """The learned step sizes at the end (``Loop.rates``) with their course over the meta-steps:
    ``history`` holds ``meta_step`` and each rate column at about ``points`` evenly spaced steps and the last."""
    if not loop.rates:
        return None
    rows = loop.rows
    every = max(1, len(rows) // points)
    picked = [r for i, r in enumerate(rows) if i % every == 0 or i == len(rows) - 1]
    values = {c: [float(r[len(CURVE_COLUMNS) + k]) for r in picked] for k, c in enumerate(loop.columns)}
    return {**loop.rates, "history": {"meta_step": [int(r[0]) for r in picked], **values}}
