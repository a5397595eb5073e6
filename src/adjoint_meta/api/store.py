"""What an adjoint's forward sweep keeps when the user leaves it open (``store='auto'``).

Linearizations kept is the fast mode: the backward sweep reuses each step's linearization (on the
torch.func backend the gradient's graph) and computes one product per step, nothing else.  States
kept is the memory-lean mode: one parameter vector per step, re-linearized on the way back.  'auto'
keeps linearizations where the K + 1 of them fit in half the memory the device has free, measured
on one linearization of the call's own tasks at theta, and states otherwise; with checkpoints
(``keep_every`` other than 1) states are kept, since a checkpointed sweep recomputes its segments.
"""
from __future__ import annotations

import os

import torch

from adjoint_meta.estimators.core import stack
from adjoint_meta.interface import Data, TaskModel

AUTO = "auto"
SHARE = 0.5  # of the free memory the kept linearizations may take


def free_bytes(device: torch.device) -> int | None:
    """Memory free on ``device``: CUDA's free memory, or the host's available memory; None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def linearization_bytes(model: TaskModel, theta: torch.Tensor, support: Data) -> int:
    """Bytes one stored linearization of the B tasks at theta holds."""
    with torch.inference_mode():
        lin = model.linearize(stack(theta, support.n_tasks), support)
        return lin.for_storage().nbytes()


def choose(model: TaskModel, theta: torch.Tensor, support: Data, states: int, keep_every) -> str:
    """``linearizations`` or ``states`` for a sweep over ``states`` states (see the module docstring)."""
    if keep_every != 1:
        return "states"
    free = free_bytes(theta.device)
    if free is None:
        return "states"
    need = states * linearization_bytes(model, theta, support)
    return "linearizations" if need <= SHARE * free else "states"
