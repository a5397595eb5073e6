"""Tasks as a user holds them: a support and a query set per task, stacked or as a list.

Stacked: ``support = (x [B, N, ...], y [B, N, ...])`` and ``query = (x [B, M, ...], y [B, M, ...])``;
where tasks have fewer real examples than N (or M), ``support_counts`` (``query_counts``) gives each
task's count ``[B]`` and the examples after it are padding, never read.  A list of tasks
``[((x_s, y_s), (x_q, y_q)), ...]`` may have a different number of examples in every task
(``Tasks.from_list`` stacks and pads it).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from adjoint_meta.api.errors import InputError
from adjoint_meta.interface import Data

Tensor = torch.Tensor
Pair = tuple[Tensor, Tensor]


def _pair(value, name: str) -> Pair:
    if not (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(t, Tensor) for t in value)):
        raise InputError(f"{name}: expected a pair of tensors (inputs, targets), got {type(value).__name__}")
    return value[0], value[1]


def _counts(counts, B: int, N: int, name: str, device: torch.device) -> Tensor:
    """Each task's number of examples ``[B]`` (all N when not given), checked."""
    if counts is None:
        if N < 1:
            raise InputError(f"{name}: the tasks have no examples; every task needs at least one")
        return torch.full((B,), N, dtype=torch.long, device=device)
    c = torch.as_tensor(counts, device=device)
    if c.is_floating_point() or c.is_complex() or c.shape != (B,):
        raise InputError(f"{name}_counts: expected {B} integers (one per task), got {c.dtype} {tuple(c.shape)}")
    c = c.long()
    if bool((c < 1).any()):
        b = int(torch.nonzero(c < 1).flatten()[0])
        raise InputError(f"{name}_counts: task {b} has {int(c[b])} examples in its {name} set; every task needs at "
                         "least one (leave the task out)")
    if bool((c > N).any()):
        b = int(torch.nonzero(c > N).flatten()[0])
        raise InputError(f"{name}_counts: task {b} counts {int(c[b])} examples, but the stacked {name} tensors hold "
                         f"{N} per task")
    return c


@dataclass
class Tasks:
    """The support and query sets of B tasks (see the module docstring)."""
    support: Pair
    query: Pair
    support_counts: Tensor | Sequence[int] | None = None
    query_counts: Tensor | Sequence[int] | None = None

    def __post_init__(self):
        self.support = _pair(self.support, "support")
        self.query = _pair(self.query, "query")
        ref = self.support[0]
        for name, (x, y) in (("support", self.support), ("query", self.query)):
            if x.dim() < 2:
                raise InputError(f"{name}: inputs of shape {tuple(x.shape)}; stacked tasks are [tasks, examples, "
                                 "...] (use Tasks.from_list for a list of tasks)")
            if y.shape[:2] != x.shape[:2]:
                raise InputError(f"{name}: {tuple(x.shape[:2])} tasks x examples of inputs, but targets of shape "
                                 f"{tuple(y.shape)}; the targets' first two dimensions must match")
            if x.shape[0] != ref.shape[0]:
                raise InputError(f"query: {x.shape[0]} tasks, support: {ref.shape[0]}; give both sets of every task")
            for t, what in ((x, "inputs"), (y, "targets")):
                if t.device != ref.device:
                    raise InputError(f"{name}: {what} on {t.device}, support inputs on {ref.device}; move every "
                                     "tensor to one device")
            if not x.is_floating_point():
                raise InputError(f"{name}: inputs are {x.dtype}; give floating-point inputs")
            if x.dtype != ref.dtype:
                raise InputError(f"{name}: inputs are {x.dtype}, support inputs {ref.dtype}; use one dtype")
            if y.is_floating_point() and y.dtype != ref.dtype:
                raise InputError(f"{name}: targets are {y.dtype}, inputs {ref.dtype}; use one floating dtype "
                                 "(or integer class indices)")
            if y.is_complex() or y.dtype == torch.bool:
                raise InputError(f"{name}: targets are {y.dtype}; give real numbers or integer class indices")
        if self.support[1].dtype != self.query[1].dtype:
            raise InputError(f"query: targets are {self.query[1].dtype}, support targets {self.support[1].dtype}; "
                             "use one dtype")
        if self.support[0].shape[0] < 1:
            raise InputError("support: no tasks; give at least one")
        B = ref.shape[0]
        self.support_counts = _counts(self.support_counts, B, self.support[0].shape[1], "support", ref.device)
        self.query_counts = _counts(self.query_counts, B, self.query[0].shape[1], "query", ref.device)

    @classmethod
    def from_list(cls, tasks: Sequence[tuple[Pair, Pair]]) -> Tasks:
        """Tasks from a list of ``((x_support, y_support), (x_query, y_query))``, one per task, each set
        ``[n, ...]`` with its own n; stacked with zero padding and their counts."""
        if not isinstance(tasks, (list, tuple)) or not tasks:
            raise InputError("tasks: expected a non-empty list of ((x_support, y_support), (x_query, y_query))")
        sets = []
        for b, task in enumerate(tasks):
            if not (isinstance(task, (tuple, list)) and len(task) == 2):
                raise InputError(f"tasks[{b}]: expected ((x_support, y_support), (x_query, y_query))")
            sets.append((_pair(task[0], f"tasks[{b}] support"), _pair(task[1], f"tasks[{b}] query")))
        stacked = []
        for i, name in ((0, "support"), (1, "query")):
            pairs = [s[i] for s in sets]
            for b, (x, y) in enumerate(pairs):
                if x.dim() < 1 or x.shape[0] == 0:
                    raise InputError(f"tasks[{b}]: its {name} set is empty; every task needs at least one example")
                if y.shape[:1] != x.shape[:1]:
                    raise InputError(f"tasks[{b}]: {x.shape[0]} {name} inputs but {y.shape[0] if y.dim() else 0} "
                                     "targets")
                if x.shape[1:] != pairs[0][0].shape[1:] or y.shape[1:] != pairs[0][1].shape[1:]:
                    raise InputError(f"tasks[{b}]: {name} examples of shape {tuple(x.shape[1:])} -> "
                                     f"{tuple(y.shape[1:])}, task 0's are {tuple(pairs[0][0].shape[1:])} -> "
                                     f"{tuple(pairs[0][1].shape[1:])}")
            n = max(x.shape[0] for x, _ in pairs)
            xs = torch.stack([_pad(x, n) for x, _ in pairs])
            ys = torch.stack([_pad(y, n) for _, y in pairs])
            stacked.append(((xs, ys), [x.shape[0] for x, _ in pairs]))
        (support, ns), (query, nq) = stacked
        return cls(support, query, ns, nq)

    @property
    def n_tasks(self) -> int:
        return self.support[0].shape[0]

    @property
    def device(self) -> torch.device:
        return self.support[0].device

    @property
    def dtype(self) -> torch.dtype:
        return self.support[0].dtype

    def data(self, squeeze_targets: bool = False) -> tuple[Data, Data]:
        """The support and query sets as the models read them (weights 1/n on each task's examples,
        0 on padding); ``squeeze_targets``: targets ``[B, N, 1]`` as ``[B, N]``."""
        return (_data(*self.support, self.support_counts, squeeze_targets),
                _data(*self.query, self.query_counts, squeeze_targets))


def _pad(t: Tensor, n: int) -> Tensor:
    if t.shape[0] == n:
        return t
    return torch.cat([t, t.new_zeros(n - t.shape[0], *t.shape[1:])])


def _data(x: Tensor, y: Tensor, counts: Tensor, squeeze: bool) -> Data:
    N = x.shape[1]
    dtype = x.dtype
    real = torch.arange(N, device=x.device).unsqueeze(0) < counts.unsqueeze(1)
    w = real.to(dtype) / counts.to(dtype).unsqueeze(1)
    if squeeze and y.dim() == 3 and y.shape[-1] == 1:
        y = y.squeeze(-1)
    return Data(x, y, w)
