"""A user's loss as the weighted per-task loss the models compute.

A task's loss is ``loss(pred, target)`` on its examples: one scalar, the mean over the examples.
Internally every task carries weights ``w_n`` (1/n on its n examples, 0 on padding), so that tasks
of different lengths stack, and the loss is evaluated as ``sum_n w_n loss(pred_n, target_n)`` (each
example as a batch of one); for a loss that averages over the examples this is the task's loss.
Mean squared error and cross-entropy are recognised and computed directly.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import vmap

from adjoint_meta.api.errors import InputError
from adjoint_meta.funcmodel import cross_entropy

Tensor = torch.Tensor
UserLoss = Callable[[Tensor, Tensor], Tensor]
WeightedLoss = Callable[[Tensor, Tensor, Tensor], Tensor]
MSE, CROSS_ENTROPY, OTHER = "mse", "cross_entropy", "other"
NAMES = (MSE, CROSS_ENTROPY)


def kind_of(loss: UserLoss | str) -> str:
    """``mse`` or ``cross_entropy`` for the losses recognised, else ``other``."""
    if isinstance(loss, str):
        if loss not in NAMES:
            raise InputError(f"loss={loss!r}: allowed names are {', '.join(NAMES)}; or pass a callable "
                             "loss(pred, target) -> scalar")
        return loss
    if loss is nn.functional.mse_loss:
        return MSE
    if loss is nn.functional.cross_entropy:
        return CROSS_ENTROPY
    if isinstance(loss, nn.MSELoss) and loss.reduction == "mean":
        return MSE
    if (isinstance(loss, nn.CrossEntropyLoss) and loss.reduction == "mean" and loss.weight is None
            and loss.label_smoothing == 0.0 and loss.ignore_index < 0):
        return CROSS_ENTROPY
    if not callable(loss):
        raise InputError(f"loss: expected a callable loss(pred, target) -> scalar or one of {', '.join(NAMES)}, "
                         f"got {type(loss).__name__}")
    return OTHER


def mean_squared_error(out: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """sum_n w_n mean_j (out_nj - y_nj)^2: ``F.mse_loss`` of a task, with weights."""
    r = out.reshape(y.shape) - y
    sq = r * r
    return (w * (sq if sq.dim() == 1 else sq.reshape(sq.shape[0], -1).mean(1))).sum()


def weighted(loss: UserLoss | str, kind: str) -> WeightedLoss:
    """The weighted form ``(out, y, w) -> scalar`` of a task's loss."""
    if kind == MSE:
        return mean_squared_error
    if kind == CROSS_ENTROPY:
        return cross_entropy

    def each(out_n: Tensor, y_n: Tensor) -> Tensor:
        return loss(out_n.unsqueeze(0), y_n.unsqueeze(0))

    per_example = vmap(each)

    def task_loss(out: Tensor, y: Tensor, w: Tensor) -> Tensor:
        return (w * per_example(out, y)).sum()
    return task_loss


def check(loss: UserLoss | str, kind: str, pred: Tensor, target: Tensor, where: str) -> None:
    """Refuse a loss that does not return one scalar for a task, or that is not the mean of its
    per-example values (then padding could not be left out), on one real task ``pred, target``."""
    if kind != OTHER:
        return
    with torch.no_grad():
        try:
            value = loss(pred, target)
        except Exception as exc:  # the user's code: say which call failed
            raise InputError(f"loss: calling loss(pred, target) on {where} failed: {exc}") from exc
        if not isinstance(value, Tensor) or value.dim() != 0:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise InputError(f"loss: returned {shape} for one task ({where}), not a scalar; reduce it over the "
                             "task's examples with a mean (e.g. reduction='mean')")
        n = pred.shape[0]
        per = torch.stack([loss(pred[i:i + 1], target[i:i + 1]) for i in range(n)])
        if per.dim() != 1:
            raise InputError(f"loss: returned {tuple(per.shape[1:])} for a single example, not a scalar")
        mean = per.mean()
        if not torch.allclose(value, mean, rtol=1e-4, atol=1e-6 * (1.0 + float(mean.abs()))):
            raise InputError(f"loss: on {where} it returns {float(value):.6g}, but the mean of its values on each "
                             f"example is {float(mean):.6g}; the loss of a task must be the mean over its examples "
                             "(reduction='mean', not 'sum'), so that tasks of different lengths can be padded")
