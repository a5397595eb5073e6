"""Task pools: the processed table of a dataset as padded per-task tensors, and task sampling.

One task = one function (synthetic) or one user (collaborative filtering).
Training tasks are sampled into meta-batches of ``shot`` support and ``val``
query examples drawn without overlap; a task with too few examples for the
setting is never drawn (it is "replaced" by an eligible one).  Test tasks are
split deterministically: the first ``shot`` examples of the task's pool (in
the stored order) train, and either its fresh 'eval' rows (synthetic) or all
its remaining examples (real data) evaluate.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from adjoint_meta.interface import Data
from adjoint_meta.io import read_json

Tensor = torch.Tensor


class TaskError(ValueError):
    """A task pool that cannot serve the requested setting."""


@dataclass
class Ragged:
    """Examples of several tasks, padded: ``x [T, M(, d)]``, ``y [T, M]``, counts ``n [T]``, and the
    tasks' ids in the table ``ids [T]`` (rows are in increasing id order)."""
    x: Tensor
    y: Tensor
    n: Tensor
    ids: Tensor

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, feature_cols: list[str], onehot: bool) -> Ragged:
        frame = frame.sort_values(["task", "order"], kind="stable")
        tasks, start, counts = np.unique(frame["task"].to_numpy(), return_index=True, return_counts=True)
        T, M = len(tasks), int(counts.max()) if len(counts) else 0
        pos = np.arange(len(frame)) - np.repeat(start, counts)
        row = np.repeat(np.arange(T), counts)
        if onehot:
            x = np.zeros((T, M), dtype=np.int64)
            x[row, pos] = frame[feature_cols[0]].to_numpy()
        else:
            x = np.zeros((T, M, len(feature_cols)), dtype=np.float64)
            x[row, pos] = frame[feature_cols].to_numpy(dtype=np.float64)
        y = np.zeros((T, M), dtype=np.float64)
        y[row, pos] = frame["y"].to_numpy(dtype=np.float64)
        return cls(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(counts.astype(np.int64)),
                   torch.from_numpy(tasks.astype(np.int64)))

    def take(self, rows: Tensor, cols: Tensor) -> tuple[Tensor, Tensor]:
        """Gather examples ``cols [R, K]`` (positions) of tasks ``rows [R]``."""
        r = rows.unsqueeze(1).expand_as(cols)
        return self.x[r, cols], self.y[r, cols]


class TaskPool:
    """All tasks of one processed dataset, ready to be batched on a device."""

    def __init__(self, table: pd.DataFrame, summary: dict, name: str = "dataset"):
        self.name = name
        self.summary = summary
        inp = summary["input"]
        self.onehot = inp["kind"] == "onehot"
        self.input_dim = int(inp["dim"])
        feats = ["item"] if self.onehot else [f"x{j}" for j in range(self.input_dim)]
        self.train_pool_mode = summary["train_pool"]  # 'first' | 'all'
        self.test_eval_mode = summary["test_eval"]  # 'eval_rows' | 'rest'
        train = table[table["split"] == "train"]
        test = table[table["split"] == "test"]
        self.train = Ragged.from_frame(train, feats, self.onehot)
        self.test_pool = Ragged.from_frame(test[test["role"] == "pool"], feats, self.onehot)
        self.test_eval = (Ragged.from_frame(test[test["role"] == "eval"], feats, self.onehot)
                          if self.test_eval_mode == "eval_rows" else None)
        if self.test_eval is not None and not torch.equal(self.test_eval.ids, self.test_pool.ids):
            lacking = sorted(set(self.test_pool.ids.tolist()) - set(self.test_eval.ids.tolist()))
            raise TaskError(f"{name}: test task(s) {lacking[:10]} have no evaluation rows (role 'eval'), or "
                            f"evaluation rows belong to no test task; rebuild the task table (make-tasks)")

    @classmethod
    def load(cls, table_path: str | Path, summary_path: str | Path | None = None) -> TaskPool:
        table_path = Path(table_path)
        summary_path = Path(summary_path) if summary_path else table_path.with_suffix(".json")
        for p in (table_path, summary_path):
            if not p.exists():
                raise TaskError(f"{p}: task file not found (run the make-tasks step first)")
        return cls(pd.read_parquet(table_path), read_json(summary_path), name=table_path.stem)

    @property
    def n_train_tasks(self) -> int:
        return int(self.train.n.numel())

    @property
    def n_test_tasks(self) -> int:
        return int(self.test_pool.n.numel())

    # -- features ---------------------------------------------------------
    def features(self, x: Tensor, dtype: torch.dtype) -> Tensor:
        if self.onehot:
            return torch.nn.functional.one_hot(x, self.input_dim).to(dtype)
        return x.to(dtype)

    def _data(self, x: Tensor, y: Tensor, n: Tensor, dtype: torch.dtype) -> Data:
        M = y.shape[1]
        valid = torch.arange(M).unsqueeze(0) < n.unsqueeze(1)
        w = valid.to(dtype) / n.clamp(min=1).unsqueeze(1).to(dtype)
        return Data(self.features(x, dtype), (y * valid).to(dtype), w, x if self.onehot else None)

    # -- training tasks ---------------------------------------------------
    def eligible(self, shot: int, val: int) -> Tensor:
        """Indices of training tasks with at least shot + val examples."""
        return torch.nonzero(self.train.n >= shot + val).squeeze(1)

    def sample(self, gen: torch.Generator, meta_batch: int, shot: int, val: int,
               dtype: torch.dtype = torch.float32) -> tuple[Tensor, Data, Data]:
        """Draw ``meta_batch`` distinct eligible tasks and split each into support and query."""
        pool = self.eligible(shot, val)
        if pool.numel() < meta_batch:
            raise TaskError(f"{self.name}: only {pool.numel()} training task(s) have shot + val = "
                            f"{shot + val} examples; meta_batch needs {meta_batch}")
        tasks = pool[torch.randperm(pool.numel(), generator=gen)[:meta_batch]]
        n = self.train.n[tasks]
        if self.train_pool_mode == "first":
            n = n.clamp(max=shot + val)
        M = self.train.y.shape[1]
        keys = torch.rand(meta_batch, M, generator=gen, dtype=torch.float64)
        keys[torch.arange(M).unsqueeze(0) >= n.unsqueeze(1)] = 2.0  # padding sorts last
        order = keys.argsort(dim=1)
        full = lambda k: torch.full((meta_batch,), k, dtype=torch.long)  # noqa: E731
        xs, ys = self.train.take(tasks, order[:, :shot])
        xq, yq = self.train.take(tasks, order[:, shot:shot + val])
        return tasks, self._data(xs, ys, full(shot), dtype), self._data(xq, yq, full(val), dtype)

    # -- test tasks -------------------------------------------------------
    def test_split(self, shot: int, dtype: torch.dtype = torch.float32,
                   limit: int | None = None) -> tuple[Data, Data]:
        """Support (the first ``shot`` pool examples) and evaluation examples of every test task."""
        pool = self.test_pool
        T = pool.n.numel() if limit is None else min(limit, pool.n.numel())
        need = shot + (1 if self.test_eval_mode == "rest" else 0)
        short = torch.nonzero(pool.n[:T] < need).squeeze(1)
        if short.numel():
            raise TaskError(f"{self.name}: {short.numel()} test task(s) have fewer than {need} examples "
                            f"for shot = {shot}")
        rows = torch.arange(T)
        cols = torch.arange(shot).unsqueeze(0).expand(T, shot)
        xs, ys = pool.take(rows, cols)
        support = self._data(xs, ys, torch.full((T,), shot, dtype=torch.long), dtype)
        if self.test_eval_mode == "eval_rows":
            ev = self.test_eval
            evaluation = self._data(ev.x[:T], ev.y[:T], ev.n[:T], dtype)
        else:
            M = pool.y.shape[1]
            n_rest = pool.n[:T] - shot
            cols = (torch.arange(M - shot).unsqueeze(0) + shot).expand(T, M - shot)
            xe, ye = pool.take(rows, cols)
            evaluation = self._data(xe, ye, n_rest, dtype)
        return support, evaluation
