"""Gradient accuracy: each estimator's meta-gradient against MAML's exact one.

For every meta-batch b (sampled from a generator seeded by (seed, 'accuracy',
study, b)) and every K of the study, the reference g* is the task-mean
meta-gradient of MAML through K gradient steps, computed in float64 by the
discrete adjoint (``maml_adjoint``, stored states) on float64 copies of theta
and the data: exact up to float64 round-off, with no autograd graph.  theta is
the initialization meta-training starts from (seed, 'init', dataset, 0), as in
``train.py``.  Each configuration listed by the study then computes its
task-mean meta-gradient g in the runtime dtype on the same tasks, with its own
inner steps K_e = ``config.inner_steps(kind, K)`` (MAML-1 takes one step,
unrolled MAML all K), and the row records

    rel_error = |g - g*| / |g*|,   cosine = g.g* / (|g| |g*|),   norm_ratio = |g| / |g*|,

and ``ms``, the wall time of that one call (CUDA synchronized).  A configuration
whose gradient is not finite is recorded with NaN figures and a warning; a
reference that is not finite or vanishes stops the study (no error is defined).
"""
from __future__ import annotations

import math
from functools import partial

import pandas as pd
import torch

from adjoint_meta import backends, config, runtime
from adjoint_meta.estimators import InnerProblem, build
from adjoint_meta.io import write_csv
from adjoint_meta.measure import sample_batch, timed
from adjoint_meta.seeding import derive_seed, torch_generator
from adjoint_meta.tasks import TaskPool

COLUMNS = ["study", "estimator", "kind", "label", "steps", "batch", "rel_error", "cosine", "norm_ratio", "ms",
           "dtype"]
REFERENCE = ("maml_adjoint", {"store": "states"})


class AccuracyError(RuntimeError):
    """The exact reference meta-gradient is unusable (non-finite or zero)."""


def compare(g: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """rel_error, cosine and norm_ratio of g against the reference (both [P], compared in float64)."""
    g, ref = g.to(torch.float64), ref.to(torch.float64)
    if not bool(torch.isfinite(g).all()):
        return {"rel_error": math.nan, "cosine": math.nan, "norm_ratio": math.nan}
    gn, rn = float(g.norm()), float(ref.norm())
    return {"rel_error": float((g - ref).norm()) / rn,
            "cosine": float(g @ ref) / (gn * rn) if gn > 0 else 0.0,
            "norm_ratio": gn / rn}


def reference_grad(problem64: InnerProblem, theta64: torch.Tensor, steps: int, alpha: float) -> torch.Tensor:
    """MAML's exact task-mean meta-gradient through ``steps`` steps, float64 discrete adjoint."""
    kind, cfg = REFERENCE
    ref = build(kind, cfg, steps, alpha)(theta64, problem64).grad.mean(0)
    norm = float(ref.norm())
    if not math.isfinite(norm) or norm == 0.0:
        raise AccuracyError(f"the exact float64 meta-gradient at K={steps} has norm {norm}: no relative error is "
                            "defined (the inner loop diverged, or the query loss is flat at theta)")
    return ref


def run(spec: dict, name: str, tasks_path: str, out_csv: str, log_file: str | None = None) -> pd.DataFrame:
    """Run accuracy study ``name``: one row per (batch, K, estimator configuration); write and return them."""
    log = runtime.logger("accuracy", log_file)
    device, dtype = runtime.setup(spec["runtime"])
    config.refuse_baselines(spec, "accuracy", name)
    study = spec["accuracy"][name]
    dataset = study["dataset"]
    ds_cfg = spec["datasets"][dataset]
    alpha, master = float(spec["inner"]["alpha"]), int(spec["seed"])
    missing = [e for e in study["estimators"] if e not in spec["estimators"]]
    if missing:
        raise config.ParamsError(f"accuracy.{name}.estimators: {missing} not defined under 'estimators'; "
                                 f"allowed values: {', '.join(sorted(spec['estimators']))}")

    pool = TaskPool.load(tasks_path)
    model = backends.of_dataset(ds_cfg, pool.input_dim)
    theta64 = model.init(torch_generator(master, "init", dataset, 0), torch.float64).to(device)
    theta = theta64.to(dtype)
    log.info("accuracy %s | %s %s | %d parameters | K in %s | %d batch(es) | %s | device %s %s (reference float64)",
             name, dataset, study["setting"], model.n_params, study["steps"], study["batches"],
             ", ".join(study["estimators"]), runtime.describe_device(device), runtime.dtype_name(dtype))

    rows = []
    for b in range(int(study["batches"])):
        support, query = sample_batch(pool, torch_generator(master, "accuracy", name, b), spec, study["setting"],
                                      torch.float64)
        problem64 = InnerProblem(model, support.to(device, torch.float64), query.to(device, torch.float64))
        problem = InnerProblem(model, support.to(device, dtype), query.to(device, dtype))
        for K in map(int, study["steps"]):
            ref, ref_ms = timed(partial(reference_grad, problem64, theta64, K, alpha), device)
            for est_name in study["estimators"]:
                cfg = spec["estimators"][est_name]
                kind = cfg["kind"]
                est = build(kind, cfg, config.inner_steps(kind, K), alpha,
                            seed=derive_seed(master, "estimator", "accuracy", name, est_name, b, K))
                mg, ms = timed(partial(est, theta, problem), device)
                figures = compare(mg.grad.mean(0), ref)
                if not math.isfinite(figures["rel_error"]):
                    log.warning("batch %d K=%d: %s gave a non-finite meta-gradient; recorded as NaN", b, K, est_name)
                rows.append({"study": name, "estimator": est_name, "kind": kind, "label": cfg.get("label") or est.label,
                             "steps": K, "batch": b, **figures, "ms": ms, "dtype": runtime.dtype_name(dtype)})
            done = rows[-len(study["estimators"]):]
            log.info("batch %d/%d K=%d  reference %.1f ms  rel. error: %s", b + 1, study["batches"], K, ref_ms,
                     "  ".join(f"{r['estimator']} {r['rel_error']:.3g}" for r in done))

    frame = pd.DataFrame(rows, columns=COLUMNS)
    write_csv(frame, out_csv)
    log.info("wrote %d row(s) to %s", len(frame), out_csv)
    return frame
