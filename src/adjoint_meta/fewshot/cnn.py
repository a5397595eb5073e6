"""The small CNN of the few-shot experiment, and its trunk as the Prototypical Network's embedding.

Two 3x3 convolutions of ``channels`` filters, each followed by ReLU and 2x2 max pooling
(8x8 -> 4x4 -> 2x2), then a linear head to the ``ways`` classes.  No batch normalization: its
running statistics would make the inner loss depend on the order of calls (``funcmodel`` refuses it).
"""
from __future__ import annotations

from torch import nn


def trunk(channels: int) -> nn.Sequential:
    """Images [N, 1, 8, 8] -> embeddings [N, 4 * channels]."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten())


def classifier(channels: int, ways: int) -> nn.Sequential:
    """Images [N, 1, 8, 8] -> logits [N, ways]: the trunk and a linear head."""
    return nn.Sequential(trunk(channels), nn.Linear(4 * channels, ways))
