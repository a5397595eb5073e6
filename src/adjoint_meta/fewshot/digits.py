"""N-way K-shot tasks from scikit-learn's handwritten digits (1,797 8x8 images, 10 classes, bundled).

A task draws ``ways`` of the allowed classes in a random order (label j of the task is the j-th
drawn class, so no label means the same digit in every task) and, for each, ``shot`` support and
``query`` query images without overlap.  The classes split into meta-training classes and
held-out test classes (``fewshot.test_classes``): no test task contains a digit seen in
meta-training.  Pixels are scaled from 0..16 to 0..1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from adjoint_meta.fewshot import CLASSES
from adjoint_meta.interface import Data

Tensor = torch.Tensor
SHAPE = (1, 8, 8)  # one channel, 8 x 8 pixels


class FewShotError(ValueError):
    """A few-shot setting the digits cannot serve; the message names the parameter."""


@dataclass(frozen=True)
class Digits:
    images: Tensor  # [n, 1, 8, 8] float64 in [0, 1]
    labels: Tensor  # [n] class 0..9

    @classmethod
    def load(cls) -> Digits:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = torch.from_numpy(np.asarray(bunch.images, dtype=np.float64) / 16.0).unsqueeze(1)
        return cls(images, torch.from_numpy(np.asarray(bunch.target, dtype=np.int64)))

    def of_class(self, c: int) -> Tensor:
        return torch.nonzero(self.labels == c).squeeze(1)


def split(test_classes: list[int]) -> tuple[list[int], list[int]]:
    """(meta-training classes, test classes), checked."""
    bad = [c for c in test_classes if not 0 <= int(c) < CLASSES]
    if bad or len(set(test_classes)) != len(test_classes):
        raise FewShotError(f"fewshot.test_classes {test_classes}: distinct digits 0..{CLASSES - 1} expected")
    test = sorted(int(c) for c in test_classes)
    return [c for c in range(CLASSES) if c not in test], test


class Episodes:
    """Tasks of ``ways`` classes drawn from ``classes``: ``shot`` support and ``query`` query images per class."""

    def __init__(self, digits: Digits, classes: list[int], ways: int, shot: int, query: int, role: str):
        if ways > len(classes):
            raise FewShotError(f"fewshot.ways = {ways}, but the {role} tasks have only {len(classes)} classes "
                               f"({classes}); lower ways or change fewshot.test_classes")
        self.members = [digits.of_class(c) for c in classes]
        fewest = min(m.numel() for m in self.members)
        if shot + query > fewest:
            raise FewShotError(f"fewshot.shot + fewshot.query = {shot + query} images per class, but a {role} class "
                               f"has only {fewest}; lower them")
        self.digits, self.classes, self.ways, self.shot, self.query = digits, list(classes), ways, shot, query

    def draw(self, gen: torch.Generator, n_tasks: int) -> tuple[Tensor, Tensor, Tensor]:
        """The digits of each task ``[T, ways]`` and the indices into ``Digits`` of its support ``[T, ways*shot]``
        and query ``[T, ways*query]`` images, ordered class by class."""
        chosen, sup, qry = [], [], []
        for _ in range(n_tasks):
            order = torch.randperm(len(self.classes), generator=gen)[:self.ways].tolist()
            chosen.append(torch.tensor([self.classes[i] for i in order]))
            picks = [self.members[i][torch.randperm(self.members[i].numel(), generator=gen)[:self.shot + self.query]]
                     for i in order]
            sup.append(torch.cat([p[:self.shot] for p in picks]))
            qry.append(torch.cat([p[self.shot:] for p in picks]))
        return torch.stack(chosen), torch.stack(sup), torch.stack(qry)

    def sample(self, gen: torch.Generator, n_tasks: int, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Data,
                                                                                                      Data]:
        """``n_tasks`` tasks: their digits ``[T, ways]``, support and query sets (label j = the j-th digit);
        every image of a set weighs 1/(images in the set)."""
        classes, sup, qry = self.draw(gen, n_tasks)
        return classes, self._data(sup, self.shot, dtype), self._data(qry, self.query, dtype)

    def _data(self, idx: Tensor, per_class: int, dtype: torch.dtype) -> Data:
        T, n = idx.shape
        y = torch.arange(self.ways).repeat_interleave(per_class).expand(T, n).to(dtype)
        return Data(self.digits.images[idx].to(dtype), y, torch.full((T, n), 1.0 / n, dtype=dtype))
