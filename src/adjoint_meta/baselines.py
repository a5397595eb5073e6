"""The predictor baselines of collaborative filtering (``kinds.PREDICTORS``): no network, no
fine-tuning, fitted in closed form from the task pool and scored on exactly the test tasks,
support/evaluation split and metrics of the evaluate step (nRMSE and RMSE in rating units, and the
candidate nRMSE definitions of ``adjoint_meta.nrmse`` that apply without fine-tuning: all but the
released code's test protocol).

Notation, in rating units (targets mapped back through the pool's standardization,
rating = y * scale + shift): ``R`` the training users' ratings (every rating of every training
task, not only the ``shot + val`` a meta-batch draws), ``R_i`` those of item i, ``S_u`` the
``shot`` support ratings of test user u.

* ``item_mean``: r̂(u, i) = m_i = mean(R_i), the item's mean rating over the training users;
  an item no training user rated gets the global mean μ = mean(R).
* ``user_item_bias``: r̂(u, i) = mean(S_u) + b_i with b_i = m_i − μ (0 for an item no training
  user rated): the user's mean support rating plus the item's offset from the global mean.

The summarize step computes them per (dataset, setting) from ``data/tasks/<dataset>.parquet``
(they take milliseconds), so they need no training job; they are deterministic given the task
pool, hence the same for every seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from adjoint_meta import kinds, nrmse
from adjoint_meta.evaluate import _stats, definitions_of
from adjoint_meta.interface import Data
from adjoint_meta.tasks import TaskPool

Tensor = torch.Tensor
D = torch.float64


@dataclass
class ItemStats:
    """What the training users' ratings give the predictors: per-item means ``item_mean [I]``
    (the global mean where an item has no training rating), their counts and the global mean."""
    item_mean: Tensor
    counts: Tensor
    global_mean: float

    @property
    def bias(self) -> Tensor:
        """b_i = m_i − μ (0 for items without a training rating)."""
        return self.item_mean - self.global_mean


def _scaling(pool: TaskPool) -> tuple[float, float]:
    target = pool.summary.get("target")
    return (float(target["shift"]), float(target["scale"])) if target else (0.0, 1.0)


def fit(pool: TaskPool) -> ItemStats:
    """Item means and the global mean over every rating of the pool's training tasks (rating units)."""
    if not pool.onehot:
        raise ValueError(f"{pool.name}: the predictor baselines need one-hot item inputs (collaborative filtering)")
    shift, scale = _scaling(pool)
    train = pool.train
    valid = torch.arange(train.y.shape[1]).unsqueeze(0) < train.n.unsqueeze(1)
    items, ratings = train.x[valid], train.y.to(D)[valid] * scale + shift
    sums = torch.zeros(pool.input_dim, dtype=D).index_add_(0, items, ratings)
    counts = torch.zeros(pool.input_dim, dtype=D).index_add_(0, items, torch.ones_like(ratings))
    mu = float(ratings.mean())
    item_mean = torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, mu))
    return ItemStats(item_mean, counts, mu)


def _mask(data: Data) -> Tensor:
    return (data.w > 0).to(D)


def predict(name: str, stats: ItemStats, support: Data, items: Tensor, shift: float, scale: float) -> Tensor:
    """Predictions (rating units) of baseline ``name`` for the examples ``items [T, M]`` of the test
    tasks whose support examples are ``support``."""
    if name == "item_mean":
        return stats.item_mean[items]
    if name == "user_item_bias":
        mask = _mask(support)
        r = support.y.to(D) * scale + shift
        user_mean = (r * mask).sum(1) / mask.sum(1)
        return user_mean.unsqueeze(1) + stats.bias[items]
    raise ValueError(f"baseline {name!r}; allowed values: {', '.join(kinds.PREDICTORS)}")


def evaluate(pool: TaskPool, shot: int, source: str) -> dict[str, dict]:
    """Every predictor baseline on the pool's test tasks at ``shot``: name -> a record shaped like
    the evaluate step's (``nrmse``, ``rmse`` per task with their statistics, ``definitions``)."""
    stats = fit(pool)
    shift, scale = _scaling(pool)
    support, evaluation = pool.test_split(shot, D)
    y, mask = evaluation.y.to(D) * scale + shift, _mask(evaluation)
    y_s, mask_s = support.y.to(D) * scale + shift, _mask(support)
    span = nrmse.value_range(source, y, mask)
    out = {}
    for name, label in kinds.PREDICTORS.items():
        pred = predict(name, stats, support, evaluation.items, shift, scale)
        pred_s = predict(name, stats, support, support.items, shift, scale)
        nr, rm = nrmse.relative(pred, y, mask).tolist(), nrmse.rmse(pred, y, mask).tolist()
        out[name] = {
            "estimator_label": label, "kind": name, "inner_steps_trained": 0, "report_step": 0,
            "n_test_tasks": support.n_tasks, "units": "rating",
            "nrmse": {**_stats(nr), "per_task": nr}, "rmse": {**_stats(rm), "per_task": rm},
            "definitions": definitions_of(pred, y, mask, pred_s, y_s, mask_s, shift, scale, span),
        }
    return out
