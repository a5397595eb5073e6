"""What the profile and the accuracy study measure on, and how a call is timed.

Both measure estimators on one meta-batch drawn from a task pool, and time single calls by the
wall clock with the device synchronized around them.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import torch

from adjoint_meta.interface import Data
from adjoint_meta.tasks import TaskPool

T = TypeVar("T")


def sample_batch(pool: TaskPool, gen: torch.Generator, spec: dict, setting: str,
                 dtype: torch.dtype) -> tuple[Data, Data]:
    """Support and query data of one meta-batch (``meta.meta_batch`` tasks of the setting's
    shot + val examples), on the CPU in ``dtype``."""
    st = spec["settings"][setting]
    _, support, query = pool.sample(gen, int(spec["meta"]["meta_batch"]), int(st["shot"]), int(st["val"]), dtype)
    return support, query


def sync_for(device: torch.device) -> Callable[[], None]:
    """What makes a timing honest on ``device``: CUDA synchronization, a no-op elsewhere."""
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def timed(fn: Callable[[], T], device: torch.device) -> tuple[T, float]:
    """(fn(), wall milliseconds of the call), the device synchronized before and after."""
    sync = sync_for(device)
    sync()
    t0 = time.perf_counter()
    result = fn()
    sync()
    return result, (time.perf_counter() - t0) * 1e3
