"""Per-task accuracy and cross-entropy of classifier logits on a weighted query set."""
from __future__ import annotations

import torch
from torch import nn

from adjoint_meta.interface import Data

Tensor = torch.Tensor


def scores(logits: Tensor, data: Data) -> tuple[Tensor, Tensor]:
    """(accuracy, cross-entropy) per task, float64, over the examples of positive weight; ``logits [T, N, C]``."""
    logits = logits.to(torch.float64)
    y, w = data.y.long(), data.w.to(torch.float64)
    mask = (w > 0).to(torch.float64)
    correct = (logits.argmax(-1) == y).to(torch.float64)
    ce = nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none")
    return (correct * mask).sum(1) / mask.sum(1), (w * ce).sum(1) / w.sum(1)
