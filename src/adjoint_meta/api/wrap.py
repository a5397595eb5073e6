"""A user's ``nn.Module`` and loss as a model of stacked tasks, on one of two backends.

* ``mlp``: the hand-derived task-stacked MLP (``model.MLP``), for a module it can express: an
  ``nn.Sequential`` of ``nn.Linear`` layers (with biases) with one kind of activation between them
  (``nn.Tanh``, ``nn.Sigmoid`` or ``nn.ReLU``), one output, inputs ``[N, d]`` and the mean squared
  error as the loss;
* ``torch_func``: any module and loss through torch.func (``funcmodel.FuncModel``).

``backend='auto'`` takes the MLP where it can.  The flat parameter vector of a task follows the
module's ``named_parameters``; the MLP stores a layer's weight as ``[n_in, n_out]`` (``nn.Linear``
holds ``[n_out, n_in]``), so its vector is a permutation (``order``) of the module's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from adjoint_meta.api import losses
from adjoint_meta.api.errors import InputError
from adjoint_meta.funcmodel import FuncModel, ModelError
from adjoint_meta.interface import TaskModel
from adjoint_meta.model import MLP

Tensor = torch.Tensor
BACKENDS = ("auto", "mlp", "torch_func")
_ACTIVATIONS = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.ReLU: "relu"}


def check_module(module: nn.Module) -> None:
    """Refuse what no backend can differentiate: no parameters, or parameters that are not floats."""
    if not isinstance(module, nn.Module):
        raise InputError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    params = list(module.named_parameters())
    if not params:
        raise InputError(f"module: {type(module).__name__} has no parameters to meta-learn")
    for name, p in params:
        if not p.is_floating_point():
            raise InputError(f"module: parameter {name} is {p.dtype}, not floating point; the meta-gradient "
                             "differentiates every parameter (make it a buffer, or a float)")
    first = params[0][1]
    for name, p in params:
        if p.dtype != first.dtype or p.device != first.device:
            raise InputError(f"module: parameter {name} is {p.dtype} on {p.device}, {params[0][0]} is {first.dtype} "
                             f"on {first.device}; call module.to(device, dtype) first")


def mlp_sizes(module: nn.Module) -> tuple[list[int], str] | str:
    """(sizes, activation) of the hand-derived MLP that computes ``module``, or why there is none."""
    if type(module) is not nn.Sequential:
        return f"it is a {type(module).__name__}, not an nn.Sequential of nn.Linear layers and activations"
    layers = list(module)
    if not layers or not isinstance(layers[-1], nn.Linear):
        return "its last layer is not an nn.Linear"
    sizes, acts = [], set()
    for i, layer in enumerate(layers):
        want_linear = i % 2 == 0
        if want_linear:
            if type(layer) is not nn.Linear:
                return f"layer {i} is a {type(layer).__name__} where an nn.Linear must stand"
            if layer.bias is None:
                return f"layer {i} (nn.Linear) has no bias"
            if sizes and sizes[-1] != layer.in_features:
                return f"layer {i} takes {layer.in_features} inputs after {sizes[-1]} outputs"
            sizes = [layer.in_features] if not sizes else sizes
            sizes.append(layer.out_features)
        else:
            if type(layer) not in _ACTIVATIONS:
                return (f"layer {i} is a {type(layer).__name__}; the hand-derived MLP has "
                        f"{', '.join(a.__name__ for a in _ACTIVATIONS)}")
            acts.add(_ACTIVATIONS[type(layer)])
    if len(acts) > 1:
        return f"it mixes activations ({', '.join(sorted(acts))})"
    if sizes[-1] != 1:
        return f"it has {sizes[-1]} outputs; the hand-derived MLP has one"
    if list(module.buffers()) or module._forward_hooks or module._forward_pre_hooks:
        return "it has buffers or hooks"
    return sizes, acts.pop() if acts else "tanh"


@dataclass
class Wrapped:
    """The model of stacked tasks for one kind of data, with the map between its flat parameters and
    the module's: ``u = flat_module[order]``, ``flat_module = u[inverse]`` (None: the identity)."""
    model: TaskModel
    backend: str
    order: Tensor | None
    inverse: Tensor | None
    squeeze_targets: bool

    def to_task_layout(self, flat: Tensor) -> Tensor:
        """A vector in the module's layout ``[..., P]`` in the model's."""
        return flat if self.order is None else flat[..., self.order.to(flat.device)]

    def to_module_layout(self, u: Tensor) -> Tensor:
        return u if self.inverse is None else u[..., self.inverse.to(u.device)]


def _mlp_order(module: nn.Sequential, sizes: list[int]) -> Tensor:
    """Indices into the module's flat parameters that give the MLP's flat vector (W transposed)."""
    parts, off = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        weight = torch.arange(off, off + n_in * n_out).view(n_out, n_in)  # nn.Linear's [out, in], row-major
        parts += [weight.T.reshape(-1), torch.arange(off + n_in * n_out, off + n_in * n_out + n_out)]
        off += n_in * n_out + n_out
    return torch.cat(parts)


def wrap(module: nn.Module, loss, loss_kind: str, backend: str, x: Tensor, y: Tensor) -> Wrapped:
    """The model for inputs like ``x [B, N, ...]`` and targets like ``y [B, N, ...]``."""
    expressible = mlp_sizes(module)
    mlp_ok = (not isinstance(expressible, str) and loss_kind == losses.MSE and x.dim() == 3
              and x.shape[-1] == expressible[0][0] and y.is_floating_point()
              and (y.dim() == 2 or (y.dim() == 3 and y.shape[-1] == 1)))
    if backend == "mlp" and not mlp_ok:
        why = expressible if isinstance(expressible, str) else (
            "the loss is not the mean squared error" if loss_kind != losses.MSE else
            f"inputs of shape {tuple(x.shape[2:])} and targets of shape {tuple(y.shape[2:])} per example are not "
            f"[{expressible[0][0]}] -> one number")
        raise InputError(f"backend='mlp': the hand-derived MLP cannot compute this module and loss ({why}); "
                         "use backend='torch_func' or 'auto'")
    if backend in ("mlp", "auto") and mlp_ok:
        sizes, activation = expressible
        order = _mlp_order(module, sizes)
        return Wrapped(MLP(sizes, activation), "mlp", order, torch.argsort(order), True)
    try:
        fm = FuncModel(module, losses.weighted(loss, loss_kind), tuple(x.shape[2:]), target_shape=tuple(y.shape[2:]),
                       target_dtype=None if y.is_floating_point() else y.dtype)
    except ModelError as exc:
        raise InputError(f"module: {exc}") from None
    return Wrapped(fm, "torch_func", None, None, False)
