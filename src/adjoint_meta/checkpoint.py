"""Checkpoints of a training run: written atomically, checksummed, and tied to the job they belong to.

A checkpoint holds everything the loop needs to continue exactly where it
stopped (theta, the optimizer's state, every random generator, the training
curve so far), so a run killed at any point and restarted ends with the same
theta, bit for bit on CPU, as one that was never interrupted.  A checkpoint that
is unreadable, fails its checksum, or was written for other parameters is
refused with a message saying so; it is never loaded silently.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch

from adjoint_meta.io import atomic_path

FORMAT = 2  # 2: the optimizer state of adjoint_meta.optim


class CheckpointError(RuntimeError):
    """A checkpoint that must not be used."""


def owner_of(spec: dict, cell: dict) -> dict:
    """What a checkpoint belongs to: the job and a hash of every parameter that shapes its results
    (how often to log or checkpoint does not)."""
    relevant = json.loads(json.dumps(spec))
    for key in ("log_every", "checkpoint_every"):
        relevant.get("runtime", {}).pop(key, None)
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()
    return {"cell": dict(cell), "params_sha256": digest}


def save(path: str | Path, state: dict, owner: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    blob = {"format": FORMAT, "owner": owner, "sha256": hashlib.sha256(payload).hexdigest(), "payload": payload}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load(path: str | Path, owner: dict) -> dict[str, Any] | None:
    """The state saved at ``path`` (None if there is none), after checking it belongs to ``owner``."""
    path = Path(path)
    if not path.exists():
        return None
    remedy = f"delete {path} to start this run from the beginning"
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
        payload, digest = blob["payload"], blob["sha256"]
    except Exception as exc:  # any unreadable file is refused the same way
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc}); {remedy}") from None
    if blob.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {blob.get('format')!r}, expected {FORMAT}; {remedy}")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"{path}: corrupt checkpoint (sha256 of its contents does not match); {remedy}")
    if blob.get("owner") != owner:
        theirs = blob.get("owner") or {}
        what = "another job" if theirs.get("cell") != owner["cell"] else "other parameters"
        raise CheckpointError(f"{path}: checkpoint was written for {what} "
                              f"(parameters sha256 {str(theirs.get('params_sha256'))[:12]}…, now "
                              f"{owner['params_sha256'][:12]}…); {remedy}, or restore the parameters it was made with")
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)


def path_for(out_model: str | Path) -> Path:
    out_model = Path(out_model)
    return out_model.with_name(out_model.name + ".ckpt")
