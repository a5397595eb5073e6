"""Device, precision, threads and logging of one job."""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform
import sys
from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def tune_allocator(threshold: int = 64 * 2**20) -> bool:
    """Keep glibc from unmapping and re-faulting memory for every mid-sized tensor.

    glibc serves allocations above M_MMAP_THRESHOLD (128 KiB at start) with fresh
    mmap'ed pages and unmaps them on free; the inner loops here allocate such
    tensors (a few task-stacked parameter vectors) thousands of times a second,
    and the page faults then cost more than the arithmetic (docs/performance.md).  Raising
    the threshold keeps them on the heap.  No-op off glibc; returns whether it applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, threshold)) and bool(libc.mallopt(m_trim_threshold, 2 * threshold))
    except (OSError, AttributeError):
        return False


def setup(runtime: dict) -> tuple[torch.device, torch.dtype]:
    """Apply ``runtime`` (device auto|cpu|cuda, dtype, threads) and return (device, dtype)."""
    tune_allocator()
    torch.set_num_threads(int(runtime.get("threads", 1)))
    want = runtime.get("device", "auto")
    if want == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    device = torch.device("cuda" if want == "cuda" or (want == "auto" and torch.cuda.is_available()) else "cpu")
    return device, DTYPES[runtime.get("dtype", "float32")]


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} ({torch.get_num_threads()} thread(s))"


def dtype_name(dtype: torch.dtype) -> str:
    """The name ``runtime.dtype`` gives ``dtype`` (a key of ``DTYPES``)."""
    return str(dtype).replace("torch.", "")


def logger(name: str, log_file: str | Path | None) -> logging.Logger:
    """A logger writing to stderr and, if given, to the job's log file."""
    log = logging.getLogger(f"adjoint_meta.{name}")
    log.handlers.clear()
    log.setLevel(logging.INFO)
    log.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    for h in handlers:
        h.setFormatter(fmt)
        log.addHandler(h)
    return log
