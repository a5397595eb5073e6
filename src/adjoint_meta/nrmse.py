"""What the paper's nRMSE could have been: every candidate definition, in one place.

The paper never defines nRMSE.  Each function below is one candidate; ``evaluate`` computes all
of them for every evaluated cell and ``summarize`` sets each beside the paper's Tables 1-2.

Notation.  Task t has examples i (``mask`` 1 where an example exists, 0 on padding); ``pred``
ŷ_ti and ``y`` y_ti are in the data's own units (rating points for collaborative filtering:
rating = model output * scale + shift, the training users' standardization the task pool
records).  Norms run over one task's examples:

    ‖a‖ = sqrt(Σ_i a_i²),   RMSE_t = sqrt(mean_i (ŷ_ti − y_ti)²).

Each definition: its name (the key in results and tables), the function, the formula.

1. ``ours``, ``relative``: ‖ŷ − y‖ / ‖y‖ per task on the held-out examples (the workflow's primary
   figure), averaged over test tasks.
2. ``standardized``, ``standardized``: the same on standardized targets, ‖ŷ_s − y_s‖ / ‖y_s‖ with
   a_s = (a − shift) / scale.
3. ``range``, ``over_range``: RMSE_t / range, the range of the rating scale (Jester −10..10 → 20,
   MovieLens 1..5 → 4); synthetic data has no scale, so there it is max − min of the held-out
   targets of all test tasks (one constant per dataset, as a rating scale is).
4. ``std``, ``over_std``: RMSE_t / std_t, the population std of task t's own held-out targets.
5. ``pooled``, ``pooled``: sqrt(Σ_t ‖ŷ_t − y_t‖²) / sqrt(Σ_t ‖y_t‖²), one number over all test tasks.
6. ``support``, ``support``: definition 1 on the support set (the fine-tuning examples) instead of
   the held-out ones.
7. ``released``, ``best_of_curve`` (run by ``evaluate.released_protocol``): definition 1 under the
   released code's test protocol, Adam (lr 1e-3, weight decay 1e-6) for up to 5,000 steps
   (``evaluation.released_protocol``), at the recorded step whose mean over tasks is lowest instead
   of step K.

Definitions 1-4, 6 and 7 give one value per task, averaged over tasks; 5 gives one value per
seed.  A task whose value is not finite (fine-tuning diverged, or a task whose held-out targets
are all equal under definition 4) is left out of means and pools and counted (``n_finite``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from adjoint_meta.data.sources import SOURCES

Tensor = torch.Tensor


@dataclass(frozen=True)
class Definition:
    name: str       # the key in evaluation results and the ``definition`` column of the summary
    label: str      # a few words for tables
    formula: str    # plain text for the report
    per_task: bool  # one value per task (averaged over tasks) or one per seed


DEFINITIONS: dict[str, Definition] = {d.name: d for d in (
    Definition("ours", "ours: relative error, data's units",
               "‖ŷ − y‖₂ / ‖y‖₂ per task on the held-out examples, in the data's units (rating points), "
               "averaged over test tasks", True),
    Definition("standardized", "relative error, standardized targets",
               "‖ŷₛ − yₛ‖₂ / ‖yₛ‖₂ with aₛ = (a − mean) / std of the training users' ratings (the scaling "
               "the model is trained in), per task, averaged", True),
    Definition("range", "RMSE / rating range",
               "RMSE / (max − min of the rating scale: Jester 20, MovieLens 4; synthetic data: of all test "
               "tasks' held-out targets), per task, averaged", True),
    Definition("std", "RMSE / task's target std",
               "RMSE / std of the task's own held-out targets (population std), per task, averaged", True),
    Definition("pooled", "pooled over tasks",
               "√(Σₜ ‖ŷₜ − yₜ‖₂²) / √(Σₜ ‖yₜ‖₂²) over all test tasks at once, in the data's units", False),
    Definition("support", "on the support set",
               "‖ŷ − y‖₂ / ‖y‖₂ per task on the support (fine-tuning) examples instead of the held-out ones, "
               "averaged", True),
    Definition("released", "released code's test protocol",
               "‖ŷ − y‖₂ / ‖y‖₂ per task on the held-out examples after fine-tuning with Adam (weight decay "
               "1e-6) and taking the recorded step with the lowest mean over tasks instead of step K", True),
)}
REFERENCE = "ours"  # the definition the others are compared with (rankings)


def _sq(a: Tensor, mask: Tensor) -> Tensor:
    """Σ_i a_i² per task over the existing examples."""
    return ((a * mask) ** 2).sum(-1)


def relative(pred: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Definition 1, per task: ‖ŷ − y‖ / ‖y‖ (data's units)."""
    return _sq(pred - y, mask).sqrt() / _sq(y, mask).sqrt()


def standardized(pred: Tensor, y: Tensor, mask: Tensor, shift: float, scale: float) -> Tensor:
    """Definition 2, per task: ‖ŷ_s − y_s‖ / ‖y_s‖ with a_s = (a − shift) / scale.  With shift = 0
    and scale = 1 it is definition 1; the scale cancels, so only the shift changes the value."""
    return relative((pred - shift) / scale, (y - shift) / scale, mask)


def rmse(pred: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Per task: sqrt(mean_i (ŷ_i − y_i)²) over the existing examples (data's units)."""
    return (_sq(pred - y, mask) / mask.sum(-1)).sqrt()


def value_range(source: str, y: Tensor, mask: Tensor) -> float:
    """The range definition 3 divides by: the rating scale of a collaborative-filtering source, else
    max − min of the given targets over every task (synthetic data: all test tasks' held-out targets)."""
    if source in SOURCES:
        lo, hi = SOURCES[source].scale
        return float(hi - lo)
    present = y[mask > 0]
    return float(present.max() - present.min()) if present.numel() else math.nan


def over_range(pred: Tensor, y: Tensor, mask: Tensor, span: float) -> Tensor:
    """Definition 3, per task: RMSE / span (``value_range``)."""
    return rmse(pred, y, mask) / span


def over_std(pred: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Definition 4, per task: RMSE / std_t with std_t = sqrt(mean_i (y_i − mean_i y)²), the population
    std of the task's own targets (inf where they are all equal)."""
    n = mask.sum(-1)
    mean = (y * mask).sum(-1) / n
    std = (_sq(y - mean.unsqueeze(-1), mask) / n).sqrt()
    return rmse(pred, y, mask) / std


def pooled(pred: Tensor, y: Tensor, mask: Tensor) -> tuple[float, int]:
    """Definition 5: sqrt(Σ_t ‖ŷ_t − y_t‖²) / sqrt(Σ_t ‖y_t‖²) over the tasks whose error is finite,
    and how many those are.  Unlike the mean of definition 1 it weights a task by ‖y_t‖²."""
    num, den = _sq(pred - y, mask), _sq(y, mask)
    ok = torch.isfinite(num) & torch.isfinite(den)
    value = float(num[ok].sum().sqrt() / den[ok].sum().sqrt()) if ok.any() else math.nan
    return value, int(ok.sum())


def support(pred: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Definition 6, per task: definition 1's formula, called on the support examples the task was
    fine-tuned on (the training error) instead of its held-out ones."""
    return relative(pred, y, mask)


def finite_mean(values: Tensor) -> float:
    """The mean over the finite entries (NaN when there are none)."""
    ok = values[torch.isfinite(values)]
    return float(ok.double().mean()) if ok.numel() else math.nan


def best_of_curve(curve: dict[int, Tensor]) -> tuple[int, Tensor]:
    """Definition 7's selection: of the recorded steps (``curve``: step -> per-task values), the one
    whose mean over tasks is lowest, the earliest on a tie, and its per-task values.  Steps where
    every task is finite come first (a step where some task diverged does not win by leaving that
    task out of its mean); only if there is none, the mean over the finite tasks decides, and only if
    no step has a finite task, the first step is taken."""
    steps = sorted(curve)
    complete = [s for s in steps if bool(torch.isfinite(curve[s]).all())]
    means = {s: finite_mean(curve[s]) for s in steps}
    pool = complete or [s for s in steps if math.isfinite(means[s])]
    best = min(pool, key=lambda s: (means[s], s)) if pool else steps[0]
    return best, curve[best]
