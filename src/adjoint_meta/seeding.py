"""Reproducible seeds: every random stream is derived from the master seed and a name."""
from __future__ import annotations

import hashlib

import numpy as np
import torch


def derive_seed(master: int, *names: object) -> int:
    """A 63-bit seed that depends only on ``master`` and the names (stable across runs and machines)."""
    text = "/".join([str(int(master)), *map(str, names)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2**63 - 1)


def numpy_rng(master: int, *names: object) -> np.random.Generator:
    return np.random.default_rng(derive_seed(master, *names))


def torch_generator(master: int, *names: object) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(derive_seed(master, *names))
    return gen
