"""Shared set-up of the benchmarks: the 100-40-40-1 problem (docs/protocol.md §2-3) and careful timing."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

from adjoint_meta.estimators import InnerProblem
from adjoint_meta.model import MLP, Data

# estimator name -> (params.yaml name, hyper-parameters); the variants the paper and released code run
VARIANTS: dict[str, tuple[str, dict]] = {
    "maml": ("maml", {}),
    "maml_adjoint": ("maml_adjoint", {}),
    "amaml_paper": ("amaml", dict(forward="dopri5", backward="heun", h=None, rtol=1e-5, atol=1e-6, reg=0.0)),
    "amaml_released": ("amaml", dict(forward="rk4", backward="euler", h=None, rtol=1e-5, atol=1e-6, reg=1.0)),
    "fomaml": ("fomaml", {}),
    "reptile": ("reptile", {}),
    "imaml": ("imaml", dict(lam=1.0, cg_steps=5)),
    "es": ("es", dict(directions=10, sigma=0.01)),
    "tbptt": ("tbptt", dict(window=10)),
    "maml1": ("maml1", {}),
}


def cf_problem(n_items: int = 100, hidden=(40, 40), tasks: int = 5, examples: int = 20,
               dtype=torch.float32, device="cpu", seed: int = 0) -> tuple[MLP, InnerProblem, torch.Tensor]:
    """One-hot item inputs (the collaborative-filtering workload), ratings-like targets."""
    g = torch.Generator().manual_seed(seed)
    m = MLP([n_items, *hidden, 1], "tanh")

    def data():
        items = torch.randint(0, n_items, (tasks, examples), generator=g)
        x = torch.nn.functional.one_hot(items, n_items).to(dtype)
        y = (torch.rand(tasks, examples, generator=g) * 4 - 2).to(dtype)
        return Data(x, y, torch.full((tasks, examples), 1.0 / examples, dtype=dtype), items).to(device, dtype)

    return m, InnerProblem(m, data(), data()), m.init(g, dtype).to(device)


def interleaved_ms(fns: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 1,
                   sync=None) -> dict[str, float]:
    """Median milliseconds of each function, timed in interleaved rounds so that drifts of the
    machine's speed (frequent on shared VMs) hit every candidate alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            if sync:
                sync()
            t0 = time.perf_counter()
            fn()
            if sync:
                sync()
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def median_ms(fn: Callable[[], object], repeats: int = 7, warmup: int = 2, sync=None) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)
