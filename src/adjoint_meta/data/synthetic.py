"""Synthetic task families, generated from a seed.

CosMixture and Alpine (2-D inputs) are the paper's synthetic benchmarks; the
1-D sinusoid is the workload of the scaling study.  ``variant='paper'`` follows
the paper's text (with Alpine's domain read as [-10, 10]^2, docs/protocol.md §3);
``variant='released'`` follows the functions in the authors' released code:

* CosMixture: paper  f = -0.1 sum_i A cos(w x_i + p) - |x|^2,  A in [0.1, 1],
  w in [0.5pi, 2pi], p in [3, 6];  released  f = -c sum_i cos(k pi x_i + p) - |x|^2,
  c in [0.1, 1], p in [0.5, 2], k in [3, 6] (no 0.1 factor, other ranges).
* Alpine: paper  f = sum_i |x_i sin(x_i + p_i) + 0.1 x_i|, p_1, p_2 independent in
  [-5pi/12, 5pi/12];  released  one shared phase p in that range and
  sin(x_i + pi + p).
* Sinusoid: f = A sin(x + p) + b, A in [0.1, 5], p in [0, pi], b in [-1, 1],
  x in [-5, 5] (the seed document gives no ranges; these are the customary ones).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

Sampler = Callable[[np.random.Generator, int], np.ndarray]
Function = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Family:
    input_dim: int
    low: float
    high: float
    param_names: tuple[str, ...]
    sample_params: Sampler  # (rng, n_tasks) -> [n_tasks, n_params]
    f: Function  # (x [n, d], params [n_params]) -> y [n]


def _uniform(bounds: list[tuple[float, float]]) -> Sampler:
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    return lambda rng, n: lo + (hi - lo) * rng.random((n, len(bounds)))


def _cos_paper(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    A, w, phi = p
    return -0.1 * (A * np.cos(w * x + phi)).sum(1) - (x * x).sum(1)


def _cos_released(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    c, phi, k = p
    return -c * np.cos(k * math.pi * x + phi).sum(1) - (x * x).sum(1)


def _alpine_paper(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.abs(x * np.sin(x + p[None, :]) + 0.1 * x).sum(1)


def _alpine_released(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.abs(x * np.sin(x + math.pi + p[0]) + 0.1 * x).sum(1)


def _sinusoid(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    A, phi, b = p
    return A * np.sin(x[:, 0] + phi) + b


_PHASE = 5 * math.pi / 12
FAMILIES: dict[tuple[str, str], Family] = {
    ("cosmixture", "paper"): Family(2, -1.0, 1.0, ("A", "omega", "phi"),
                                    _uniform([(0.1, 1.0), (0.5 * math.pi, 2 * math.pi), (3.0, 6.0)]), _cos_paper),
    ("cosmixture", "released"): Family(2, -1.0, 1.0, ("c", "phi", "k"),
                                       _uniform([(0.1, 1.0), (0.5, 2.0), (3.0, 6.0)]), _cos_released),
    ("alpine", "paper"): Family(2, -10.0, 10.0, ("phi1", "phi2"),
                                _uniform([(-_PHASE, _PHASE), (-_PHASE, _PHASE)]), _alpine_paper),
    ("alpine", "released"): Family(2, -10.0, 10.0, ("phi",), _uniform([(-_PHASE, _PHASE)]), _alpine_released),
}
FAMILIES[("sinusoid", "paper")] = FAMILIES[("sinusoid", "released")] = Family(
    1, -5.0, 5.0, ("A", "phi", "b"), _uniform([(0.1, 5.0), (0.0, math.pi), (-1.0, 1.0)]), _sinusoid)


def build(cfg: dict, rng: np.random.Generator, **_job) -> tuple[pd.DataFrame, dict]:
    """The make-tasks step's builder (``data.sources.builder``): the tasks are generated from ``rng``
    alone, whatever the job (dataset name, raw directory, log)."""
    return generate(cfg, rng)


def generate(cfg: dict, rng: np.random.Generator) -> tuple[pd.DataFrame, dict]:
    """Tasks of one synthetic dataset as a long table, plus a summary.

    Columns: task, split ('train'/'test'), role ('pool' = may be drawn as support
    or query; 'eval' = fresh evaluation points of a test task), order (position
    within the task), x0..x{d-1}, y.  With ``standardize``, inputs and targets are
    shifted and scaled by the mean and std of the training tasks' points (the paper
    does not say; the authors' released code standardizes too, but fits its scalers on
    all tasks, test tasks and test grid included, which lets test data inform training:
    here test tasks stay unseen); the summary records the target's shift and scale so
    errors are reported in the function's own units.
    """
    fam = FAMILIES[(cfg["family"], cfg["variant"])]
    frames, params_out = [], {}
    layout = {"train": (cfg["n_train_tasks"], cfg["train_points"], 0),
              "test": (cfg["n_test_tasks"], cfg["test_support_points"], cfg["test_eval_points"])}
    task_id = 0
    for split, (n_tasks, n_pool, n_eval) in layout.items():
        params = fam.sample_params(rng, n_tasks)
        params_out[split] = [dict(zip(fam.param_names, map(float, p))) for p in params]
        for p in params:
            n = n_pool + n_eval
            x = fam.low + (fam.high - fam.low) * rng.random((n, fam.input_dim))
            y = fam.f(x, p)
            frame = pd.DataFrame({f"x{j}": x[:, j].astype(np.float32) for j in range(fam.input_dim)})
            frame.insert(0, "order", np.arange(n, dtype=np.int32))
            frame.insert(0, "role", ["pool"] * n_pool + ["eval"] * n_eval)
            frame.insert(0, "split", split)
            frame.insert(0, "task", np.int32(task_id))
            frame["y"] = y.astype(np.float32)
            frames.append(frame)
            task_id += 1
    table = pd.concat(frames, ignore_index=True)
    x_cols = [f"x{j}" for j in range(fam.input_dim)]
    x_shift, x_scale, y_shift, y_scale = [0.0] * fam.input_dim, [1.0] * fam.input_dim, 0.0, 1.0
    if cfg["standardize"]:
        train = table["split"] == "train"
        x_shift = table.loc[train, x_cols].astype(np.float64).mean().tolist()
        x_scale = table.loc[train, x_cols].astype(np.float64).std(ddof=0).tolist()
        y_shift = float(table.loc[train, "y"].astype(np.float64).mean())
        y_scale = float(table.loc[train, "y"].astype(np.float64).std(ddof=0))
        for col, m, sd in zip(x_cols, x_shift, x_scale):
            table[col] = ((table[col].astype(np.float64) - m) / sd).astype(np.float32)
        table["y"] = ((table["y"].astype(np.float64) - y_shift) / y_scale).astype(np.float32)
    summary = {
        "source": "synthetic",
        "family": cfg["family"],
        "variant": cfg["variant"],
        "input": {"kind": "dense", "dim": fam.input_dim, "domain": [fam.low, fam.high],
                  "shift": x_shift, "scale": x_scale},
        "target": {"mode": "standardized" if cfg["standardize"] else "raw", "shift": y_shift, "scale": y_scale},
        # a setting uses the first shot+val points of a training task (i.i.d. points)
        "train_pool": "first",
        # a test task is evaluated on its fresh 'eval' points only
        "test_eval": "eval_rows",
        "n_train_tasks": cfg["n_train_tasks"],
        "n_test_tasks": cfg["n_test_tasks"],
        "n_rows": int(len(table)),
        "task_params": params_out,
    }
    return table, summary
