"""Peak memory of one call, measured in-process.

``measure_peak(fn, device)`` runs ``fn()`` once and reports how far the memory in
use rose above what was in use just before the call, with the name of the method:

* ``cuda-allocator`` (CUDA devices): PyTorch's caching allocator counts the bytes
  of live tensors.  Its peak statistic is reset before the call, and the bytes
  allocated before the call (the baseline) are subtracted from the peak.  Only
  tensor memory is counted: the CUDA context, cuBLAS workspaces and the
  allocator's cached but unused blocks are not.
* ``rss-highwater`` (CPU on Linux): the process's resident set size (RSS).
  Before the call the garbage collector runs and glibc's ``malloc_trim(0)``
  returns the heap's free pages to the kernel, so that memory the call
  allocates has to fault in fresh pages (and is counted) instead of reusing
  pages that freed tensors left resident.  Writing ``5`` to
  ``/proc/self/clear_refs`` resets the kernel's high-water mark ``VmHWM`` to the
  current RSS; the peak is ``VmHWM`` after the call minus ``VmRSS`` before it.
  The package's ``runtime.tune_allocator`` keeps mid-sized tensors on the heap
  (instead of fresh mmaps per tensor); ``malloc_trim`` then releases them, so the
  measurement holds with it in force.
* ``unavailable``: anywhere else (other platforms, or a kernel that refuses the
  reset); the call still runs and its result is returned, with no figure.

Limits of ``rss-highwater``: RSS counts every allocation of the process (Python
objects, thread stacks and buffers of other threads, allocator bookkeeping), not
only tensors, and changes by whole pages; small measurements therefore have a
resolution of about a page (4 KiB) plus the process's own noise (tens of KiB).
Memory reserved but never touched is not resident and is not counted, which is
what "in use" means here.  Heap fragmentation the trim cannot release (free
chunks smaller than a page) may be reused without a fault, a bias of at most a
few pages.  Without glibc (no ``malloc_trim``) freed heap memory can be reused
silently and the figure may undercount.

``saved_tensor_bytes(fn)`` counts something else, independent of the device: the
bytes of the tensors autograd keeps for the backward pass while ``fn`` builds a
graph (see its docstring).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import torch

T = TypeVar("T")

CUDA = "cuda-allocator"
RSS = "rss-highwater"
UNAVAILABLE = "unavailable"

_CLEAR_REFS = "/proc/self/clear_refs"
_STATUS = "/proc/self/status"
_libc: Any = None


def _malloc_trim() -> bool:
    """glibc ``malloc_trim(0)``: give free heap pages of every arena back to the kernel."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            _libc = False
    trim = getattr(_libc, "malloc_trim", None) if _libc else None
    if trim is None:
        return False
    return bool(trim(0))


def _status_kib(field: str) -> int:
    """A ``kB`` field (``VmRSS``, ``VmHWM``) of /proc/self/status, in KiB."""
    with open(_STATUS) as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{_STATUS} has no {field} field")


def _reset_highwater() -> bool:
    """Reset VmHWM to the current RSS; False where the kernel does not allow it."""
    try:
        with open(_CLEAR_REFS, "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _measure_cuda(fn: Callable[[], T], device: torch.device) -> tuple[T, int, str]:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    result = fn()
    torch.cuda.synchronize(device)
    return result, max(0, int(torch.cuda.max_memory_allocated(device) - base)), CUDA


def _measure_rss(fn: Callable[[], T]) -> tuple[T, int | None, str]:
    gc.collect()
    _malloc_trim()
    if not _reset_highwater():
        return fn(), None, UNAVAILABLE
    base = _status_kib("VmRSS")
    result = fn()
    peak = _status_kib("VmHWM")
    return result, max(0, peak - base) * 1024, RSS


def measure_peak(fn: Callable[[], T], device: torch.device | str) -> tuple[T, int | None, str]:
    """Run ``fn()`` once; return (its result, peak bytes above the baseline or None, method).

    See the module docstring for the methods and their limits.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return _measure_cuda(fn, device)
    if device.type == "cpu" and sys.platform.startswith("linux"):
        return _measure_rss(fn)
    return fn(), None, UNAVAILABLE


def saved_tensor_bytes(fn: Callable[[], T]) -> tuple[T, int, int]:
    """Run ``fn()`` once; return (its result, bytes autograd saved for backward, number of storages).

    What it counts: every tensor that autograd saves for the backward pass of a graph built while
    ``fn`` runs passes through the pack hook of ``torch.autograd.graph.saved_tensors_hooks``; the
    hook records the tensor's *storage* (``untyped_storage()``), and the figure is the sum of the
    distinct storages' ``nbytes()``.  Storages are deduplicated by their data pointer, so a tensor
    saved by several nodes, or several views of one buffer, count once; a view counts its whole
    storage, which is what it keeps alive.  The hook returns the tensor unchanged (the graph and
    the gradient are those of a call without it); the recorded storages are held until ``fn``
    returns, so no pointer can be freed and reused by another storage during the count.

    Why it is device independent: it counts the bytes of what the graph holds (element counts
    times element sizes), not what an allocator or the operating system reports, so the same
    graph gives the same figure on a CPU and on a GPU, without allocator rounding, cached blocks,
    workspaces or page granularity.  It is a lower bound of the memory a backward pass needs:
    the tensors the forward keeps alive for other reasons (the result, the inputs) are counted
    only if autograd saves them, and the backward pass's own temporaries are not counted.
    Code that runs without a graph (inference mode, ``no_grad``) saves nothing and counts 0.
    """
    seen: dict[int, int] = {}
    held: list[Any] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        ptr = st.data_ptr()
        if ptr not in seen:
            seen[ptr] = int(st.nbytes())
            held.append(st)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = fn()
    total, count = sum(seen.values()), len(seen)
    held.clear()
    return result, total, count
