"""Shared set-up of the benchmarks: the 100-40-40-1 problem (docs/protocol.md §2-3) and careful timing."""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from adjoint_meta import config, kinds
from adjoint_meta.estimators import InnerProblem
from adjoint_meta.interface import Data
from adjoint_meta.model import MLP
from adjoint_meta.runtime import tune_allocator

ROOT = Path(__file__).resolve().parents[1]


def _variants() -> dict[str, tuple[str, dict]]:
    """name -> (kind, configuration) of every meta-learner configuration of params.yaml (the paper's
    A-MAML ``amaml``, the released code's ``amaml_released``, the MAMLs, ...), each complete with its
    kind's declared defaults; a configuration whose hyper-parameters repeat an earlier one's (one that
    differs only in its outer optimizer) is left out."""
    out, seen = {}, set()
    for name, cfg in config.load(ROOT / "params.yaml")["estimators"].items():
        hyper = json.dumps({k: v for k, v in cfg.items() if k not in ("label", "outer")}, sort_keys=True)
        if cfg["kind"] in kinds.META_LEARNERS and hyper not in seen:
            out[name] = (cfg["kind"], cfg)
            seen.add(hyper)
    return out


VARIANTS: dict[str, tuple[str, dict]] = _variants()


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


def steps_args(doc: str, steps: list[int], repeats: int):
    """The command line every K-sweeping benchmark takes: ``--steps`` (the K to run) and ``--repeats``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, nargs="+", default=steps)
    ap.add_argument("--repeats", type=int, default=repeats)
    return ap.parse_args()


def cf_setup() -> tuple[MLP, InnerProblem, torch.Tensor]:
    """One thread, the tuned allocator and ``cf_problem()``, with a header line saying so."""
    torch.set_num_threads(1)
    tune_allocator()
    model, problem, theta = cf_problem()
    print(f"# {model.sizes} tanh, {problem.n_tasks} tasks x {problem.support.x.shape[1]} examples, float32, 1 thread")
    return model, problem, theta


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
