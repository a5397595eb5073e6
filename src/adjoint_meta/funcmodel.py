"""Any torch module and any differentiable loss as the inner problem's model, through torch.func.

``FuncModel(module, loss, input_shape)`` offers the interface of the hand-derived ``model.MLP`` on
flat task-stacked parameters ``u [B, P]``, so every estimator runs on it unchanged:

* task b's parameters are views of ``u[b]`` that ``torch.func.functional_call`` puts in place of the
  module's own (the module is a template; its parameters only give the layout and the initial values);
* ``torch.func.vmap`` maps over the tasks, ``torch.func.grad`` differentiates a task's loss;
* a Hessian-vector product is forward-over-reverse, the ``jvp`` of the gradient along v (the way
  mixed-mode meta-gradient work computes it), so it costs about two gradients and keeps no graph.

A task's loss is ``loss(out, y, w)`` with the module's outputs ``out [N, ...]`` for its N examples,
their targets ``y [N]`` and weights ``w [N]`` (1/n on real examples, 0 on padding), and returns a
scalar.  ``squared_error`` is the MLP's loss; ``cross_entropy`` reads ``y`` as class indices.

A *linearization* here is the state itself: a product at u recomputes what it needs (torch.func
keeps nothing between calls), so storing linearizations saves no work on this backend.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, grad, grad_and_value, jvp, vmap

from adjoint_meta.model import Data

Tensor = torch.Tensor
Loss = Callable[[Tensor, Tensor, Tensor], Tensor]


def squared_error(out: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """sum_n w_n (f_n - y_n)^2 for a module with one output (``model.MLP``'s loss)."""
    r = out.reshape(y.shape) - y
    return (w * r * r).sum()


def cross_entropy(out: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """sum_n w_n CE(logits_n, class y_n): the weighted mean cross-entropy of a classifier."""
    return (w * nn.functional.cross_entropy(out, y.long(), reduction="none")).sum()


class ModelError(ValueError):
    """A module or loss the torch.func backend cannot use; the message says what to change."""


@dataclass
class FuncLinearization:
    """What a product at ``u`` needs on this backend: the state (and the gradient and loss there)."""
    u: Tensor | None
    grad: Tensor | None
    loss: Tensor | None

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.u, self.grad) if t is not None)

    def without_grad(self) -> "FuncLinearization":
        return replace(self, grad=None)

    def for_storage(self) -> "FuncLinearization":
        return replace(self, grad=None, loss=None)

    def rows(self, start: int, stop: int) -> "FuncLinearization":
        cut = lambda t: None if t is None else t[start:stop]  # noqa: E731
        return FuncLinearization(cut(self.u), cut(self.grad), cut(self.loss))


def _refuse(module: nn.Module, loss: Loss, input_shape: tuple[int, ...]) -> None:
    name = type(module).__name__
    for pname, p in module.named_parameters():
        if not p.is_floating_point():
            raise ModelError(f"{name}: parameter {pname} is {p.dtype}, not floating point; the meta-gradient "
                             "differentiates every parameter (make it a buffer, or a float)")
    for mname, sub in module.named_modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm) and sub.training and sub.track_running_stats:
            raise ModelError(f"{name}: {mname or type(sub).__name__} ({type(sub).__name__}) updates its running "
                             "statistics in the forward pass, so the inner loss would depend on the order of calls; "
                             "call .eval() on it, build it with track_running_stats=False, or use GroupNorm/LayerNorm")
    with torch.no_grad():
        out = module(torch.zeros(2, *input_shape, dtype=next(module.parameters()).dtype))
        value = loss(out, torch.zeros(2, dtype=out.dtype), torch.full((2,), 0.5, dtype=out.dtype))
    if not isinstance(value, Tensor) or value.dim() != 0:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ModelError(f"{name}: the loss returns {shape} for one task, not a scalar; sum or average it over "
                         "the task's examples (loss(out, y, w) -> a 0-dimensional tensor)")


class MLPModule(nn.Module):
    """``model.MLP`` as a module: the same network, its parameters in the same flat order (per layer
    ``W [n_in, n_out]`` then ``b [n_out]``), so both backends read the same theta the same way."""

    def __init__(self, sizes: list[int], activation: str = "tanh"):
        super().__init__()
        self.sizes, self.activation = list(sizes), getattr(torch, activation)
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.register_parameter(f"W{l}", nn.Parameter(torch.zeros(n_in, n_out)))
            self.register_parameter(f"b{l}", nn.Parameter(torch.zeros(n_out)))

    def forward(self, x: Tensor) -> Tensor:
        last = len(self.sizes) - 2
        for l in range(last + 1):
            x = x @ getattr(self, f"W{l}") + getattr(self, f"b{l}")
            if l < last:
                x = self.activation(x)
        return x


class FuncModel:
    """``module`` (examples of shape ``input_shape``) and ``loss`` on task-stacked flat parameters.
    ``init(generator, dtype)``, when given, draws the initial theta instead of the module's own
    ``reset_parameters`` (``backends`` gives an MLP the hand-derived model's initialization)."""

    def __init__(self, module: nn.Module, loss: Loss = squared_error, input_shape: tuple[int, ...] = (1,),
                 init: Callable[[torch.Generator, torch.dtype], Tensor] | None = None):
        _refuse(module, loss, tuple(input_shape))
        self.module, self.loss_fn, self.input_shape, self._init = module, loss, tuple(input_shape), init
        named = list(module.named_parameters())
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.n_params = sum(self.numels)
        self.buffers = dict(module.named_buffers())
        self._grad = vmap(grad(self._task_loss))
        self._grad_and_value = vmap(grad_and_value(self._task_loss))
        self._loss = vmap(self._task_loss)
        self._hvp, self.hvp_method = vmap(self._task_hvp), "jvp of grad"
        if not self._batches_jvp():
            self._hvp, self.hvp_method = self._double_backward_hvp, "double backward"

    def to(self, device: torch.device | str) -> "FuncModel":
        """The template (and so its buffers) on ``device``; the parameters are always the caller's."""
        self.module.to(device)
        self.buffers = dict(self.module.named_buffers())
        return self

    # -- parameters -------------------------------------------------------
    def init(self, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
        """The module's own initialization (``reset_parameters`` of each submodule), drawn from a seed
        taken from ``generator``, flattened in the order of ``named_parameters``."""
        if self._init is not None:
            return self._init(generator, dtype)
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for sub in self.module.modules():
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()
        with torch.no_grad():
            return torch.cat([p.detach().reshape(-1) for p in self.module.parameters()]).to(dtype)

    def unflatten(self, u_b: Tensor) -> dict[str, Tensor]:
        """One task's parameters ``[P]`` as the module's named parameters (views)."""
        return {n: t.view(s) for n, t, s in zip(self.names, u_b.split(self.numels), self.shapes)}

    # -- one task ---------------------------------------------------------
    def _out(self, u_b: Tensor, x_b: Tensor) -> Tensor:
        return functional_call(self.module, (self.unflatten(u_b), self.buffers), (x_b,))

    def _task_loss(self, u_b: Tensor, x_b: Tensor, y_b: Tensor, w_b: Tensor) -> Tensor:
        return self.loss_fn(self._out(u_b, x_b), y_b, w_b)

    def _task_hvp(self, u_b: Tensor, v_b: Tensor, x_b: Tensor, y_b: Tensor, w_b: Tensor) -> Tensor:
        return jvp(lambda p: grad(self._task_loss)(p, x_b, y_b, w_b), (u_b,), (v_b,))[1]

    def _double_backward_hvp(self, u: Tensor, v: Tensor, x: Tensor, y: Tensor, w: Tensor) -> Tensor:
        """H v by reverse over reverse through the vmapped forward: for a torch whose vmap cannot batch
        a jvp (2.11: no batching rule for _make_dual).  Exact like the jvp (the same derivatives)."""
        with torch.inference_mode(False), torch.enable_grad():
            u, v = u.clone().requires_grad_(True), v.clone()
            g = torch.autograd.grad(self._loss(u, x, y, w).sum(), u, create_graph=True)[0]
            return torch.autograd.grad(g, u, v)[0]

    def _batches_jvp(self) -> bool:
        """Whether this torch's vmap batches the jvp of a gradient (probed once on a tiny batch)."""
        p = next(self.module.parameters())
        u = torch.zeros(1, self.n_params, dtype=p.dtype, device=p.device)
        x = torch.zeros(1, 2, *self.input_shape, dtype=p.dtype, device=p.device)
        y, w = torch.zeros(1, 2, dtype=p.dtype, device=p.device), torch.full((1, 2), 0.5, dtype=p.dtype, device=p.device)
        try:
            self._hvp(u, u, x, y, w)
            return True
        except RuntimeError as exc:
            if "Batching rule not implemented" in str(exc):
                return False
            raise

    # -- the interface of model.MLP -----------------------------------------
    def predict(self, u: Tensor, x: Tensor) -> Tensor:
        """The outputs ``[B, N, ...]``; a single output is squeezed to ``[B, N]`` (as ``model.MLP``'s)."""
        out = vmap(self._out)(u, x)
        return out.squeeze(-1) if out.dim() == 3 and out.shape[-1] == 1 else out

    def loss(self, u: Tensor, data: Data) -> Tensor:
        return self._loss(u, data.x, data.y, data.w)

    def grad(self, u: Tensor, data: Data) -> Tensor:
        if torch.is_grad_enabled() and u.requires_grad:
            # differentiated through (unrolled MAML): torch.autograd with create_graph, since an outer
            # torch.autograd pass through torch.func.grad misses second-order terms of some operations
            # (measured: layer_norm under vmap, 2e-3 relative on tests/test_funcmodel.py's classifier)
            return torch.autograd.grad(self.loss(u, data).sum(), u, create_graph=True)[0]
        return self._grad(u, data.x, data.y, data.w)

    def loss_and_grad(self, u: Tensor, data: Data) -> tuple[Tensor, Tensor]:
        g, value = self._grad_and_value(u, data.x, data.y, data.w)
        return value, g

    def linearize(self, u: Tensor, data: Data, with_loss: bool = False, with_grad: bool = True) -> FuncLinearization:
        if with_loss:
            value, g = self.loss_and_grad(u, data)
            return FuncLinearization(u, g if with_grad else None, value)
        return FuncLinearization(u, self.grad(u, data) if with_grad else None, None)

    def hvp_at(self, lin: FuncLinearization, v: Tensor, data: Data) -> Tensor:
        if lin.u is None:
            raise LookupError("a stored linearization of the torch.func backend keeps its state; this one has none")
        return self._hvp(lin.u, v, data.x, data.y, data.w)

    def hvp(self, u: Tensor, v: Tensor, data: Data) -> Tensor:
        return self._hvp(u, v, data.x, data.y, data.w)

    def compile_passes(self) -> "FuncModel":
        raise ModelError("runtime.compile applies to the hand-derived MLP only; the torch.func backend runs eagerly")
