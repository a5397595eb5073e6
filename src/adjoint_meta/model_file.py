"""The file a training job writes (``results/train/.../seed<N>.pt``) and later steps read:
the learned theta, the job's summary and the parameter slice it ran with.

Its own module so that evaluation and summaries, which only read it, do not import
(and so rerun with) the training code.
"""
from __future__ import annotations

from pathlib import Path

import torch

from adjoint_meta.io import atomic_path


def save(path: str | Path, theta: torch.Tensor, summary: dict, spec: dict) -> None:
    """Write atomically (a killed job leaves no file a later run would take for finished)."""
    with atomic_path(path) as tmp:
        torch.save({"theta": theta.cpu(), "summary": summary, "spec": spec}, tmp)


def load(path: str | Path) -> tuple[torch.Tensor, dict]:
    """(theta on the CPU, the training job's summary)."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    return blob["theta"], blob["summary"]
