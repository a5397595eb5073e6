"""In-process peak-memory measurement: right size, no false positives, resets between calls."""
from __future__ import annotations

import sys

import pytest
import torch

from adjoint_meta import memory
from adjoint_meta.runtime import tune_allocator

MiB = 2**20

linux_cpu = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RSS high-water mark is Linux-only")


def _allocate(nbytes: int):
    """A function that allocates and touches ``nbytes`` of float32 and drops them on return."""
    def fn():
        t = torch.ones(nbytes // 4)
        return float(t[-1])
    return fn


def _peak(fn) -> int:
    result, peak, method = memory.measure_peak(fn, "cpu")
    if method == memory.UNAVAILABLE:
        pytest.skip("this kernel does not allow resetting the RSS high-water mark")
    assert method == memory.RSS and isinstance(peak, int)
    return peak


@linux_cpu
@pytest.mark.parametrize("tuned", [False, True], ids=["allocator-as-found", "allocator-tuned"])
def test_known_buffer_is_measured_to_within_15_percent(tuned):
    if tuned:
        tune_allocator()  # what every job does: mid-sized tensors stay on the heap
    peak = _peak(_allocate(64 * MiB))
    print(f"64 MiB buffer ({'tuned' if tuned else 'as-found'} malloc): measured {peak / MiB:.2f} MiB")
    assert abs(peak - 64 * MiB) <= 0.15 * 64 * MiB, peak / MiB


@linux_cpu
def test_nothing_allocated_reports_well_under_a_buffer():
    _peak(_allocate(64 * MiB))  # leave freed memory behind in the heap
    idle = _peak(lambda: None)
    print(f"no allocation: measured {idle / MiB:.3f} MiB")
    assert idle < 4 * MiB


@linux_cpu
def test_reset_a_smaller_call_after_a_big_one_is_not_masked():
    tune_allocator()
    big = _peak(_allocate(256 * MiB))
    small = _peak(_allocate(32 * MiB))  # neither the old high-water mark nor reused heap pages hide it
    print(f"256 MiB then 32 MiB: measured {big / MiB:.2f} MiB, {small / MiB:.2f} MiB")
    assert abs(big - 256 * MiB) <= 0.15 * 256 * MiB, big / MiB
    assert abs(small - 32 * MiB) <= 0.15 * 32 * MiB, small / MiB


def test_result_is_returned_and_other_devices_are_unavailable(monkeypatch):
    result, _, _ = memory.measure_peak(lambda: 42, "cpu")
    assert result == 42
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.measure_peak(lambda: "x", torch.device("cpu")) == ("x", None, memory.UNAVAILABLE)


@linux_cpu
def test_refused_reset_is_reported_unavailable(monkeypatch):
    monkeypatch.setattr(memory, "_CLEAR_REFS", "/proc/nonexistent/clear_refs")
    assert memory.measure_peak(lambda: 7, "cpu") == (7, None, memory.UNAVAILABLE)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_allocator_peak():
    dev = torch.device("cuda")
    keep = torch.ones(16 * MiB // 4, device=dev)  # allocated before: not counted
    _, peak, method = memory.measure_peak(lambda: float(torch.ones(64 * MiB // 4, device=dev).sum()), dev)
    assert method == memory.CUDA and abs(peak - 64 * MiB) <= 0.15 * 64 * MiB
    del keep
