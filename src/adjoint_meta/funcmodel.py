"""Any torch module and any differentiable loss as the inner problem's model, through torch.func.

``FuncModel(module, loss, input_shape)`` offers the interface of the hand-derived ``model.MLP`` on
flat task-stacked parameters ``u [B, P]``, so every estimator runs on it unchanged:

* task b's parameters are views of ``u[b]`` that ``torch.func.functional_call`` puts in place of the
  module's own (the module is a template; its parameters only give the layout and the initial values);
* ``torch.func.vmap`` maps the module's forward over the tasks; torch.autograd differentiates the
  sum of the tasks' losses, whose gradient with respect to ``u [B, P]`` is every task's own gradient;
* a Hessian-vector product is reverse over reverse by default (``hvp="double_backward"``: the
  gradient's graph, then its vector-Jacobian product with v, keeping no graph afterwards), or
  forward over reverse (``hvp="jvp"``: ``torch.func.jvp`` of ``torch.func.grad`` along v, vmapped,
  the way mixed-mode meta-gradient work computes it).  Both are exact; benchmarks/bench_backends.py
  times them (the double backward was the faster on this project's MLP and CNN:
  docs/performance.md), and a torch whose vmap cannot batch the jvp (2.11) gets the double backward;
* forward mode's step (learned step sizes, ``grad_and_hvps``) is always forward over reverse: one
  ``jvp`` of ``grad`` carrying every tangent gives the gradient and the products together.

A task's loss is ``loss(out, y, w)`` with the module's outputs ``out [N, ...]`` for its N examples,
their targets ``y [N]`` and weights ``w [N]`` (1/n on real examples, 0 on padding), and returns a
scalar.  ``squared_error`` is the MLP's loss; ``cross_entropy`` reads ``y`` as class indices.

A *linearization* (``FuncLinearization``) holds the state and, with double-backward products, the
graph of the gradient there: a product is then one backward pass through that graph.  It is built
when a gradient is asked for with the linearization (the forward sweep of ``store:
linearizations``, iMAML's solve: the products that follow cost one pass each; memory: what autograd
saves, counted in ``nbytes``), or on the first product at a bare state (the backward sweep of
``store: states``, which re-linearizes every state anyway).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.func import functional_call, grad, jvp, vmap

from adjoint_meta.interface import Data, linearized_grad_and_hvps
from adjoint_meta.memory import saved_tensor_bytes

Tensor = torch.Tensor
Loss = Callable[[Tensor, Tensor, Tensor], Tensor]


def squared_error(out: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """sum_n w_n (f_n - y_n)^2 for a module with one output (``model.MLP``'s loss)."""
    r = out.reshape(y.shape) - y
    return (w * r * r).sum()


def cross_entropy(out: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """sum_n w_n CE(logits_n, class y_n): the weighted mean cross-entropy of a classifier."""
    return (w * nn.functional.cross_entropy(out, y.long(), reduction="none")).sum()


HVP_METHODS = ("double_backward", "jvp")
# the shape of one example's target and its dtype (None: the outputs' dtype); what the probes of a
# module and loss pass as targets
Target = tuple[tuple[int, ...], torch.dtype | None]


def _probe_targets(target: Target, n: int, like: Tensor, tasks: tuple[int, ...] = ()) -> Tensor:
    """Zero targets of ``n`` examples (after the leading ``tasks`` dimensions) for a probe call."""
    shape, dtype = target
    return torch.zeros(*tasks, n, *shape, dtype=dtype or like.dtype, device=like.device)


class ModelError(ValueError):
    """A module or loss the torch.func backend cannot use; the message says what to change."""


@dataclass
class FuncLinearization:
    """What a product at ``u`` needs on this backend: the state, the gradient and loss there, and
    (double-backward products) ``graph``: the leaf and the gradient with its graph, ``graph_bytes``
    what autograd saved for it."""
    u: Tensor | None
    grad: Tensor | None
    loss: Tensor | None
    graph: tuple[Tensor, Tensor] | None = None
    graph_bytes: int = 0

    def nbytes(self) -> int:
        return (sum(t.numel() * t.element_size() for t in (self.u, self.grad) if t is not None)
                + (self.graph_bytes if self.graph is not None else 0))

    def without_grad(self) -> FuncLinearization:
        """The state without its gradient, and without the gradient's graph: what a recomputed segment
        of a checkpointed trajectory keeps (a state per step, not a graph; the first product at the
        state rebuilds the graph, one gradient pass, so that checkpoints keep their memory low)."""
        return replace(self, grad=None, graph=None, graph_bytes=0)

    def for_storage(self) -> FuncLinearization:
        return replace(self, grad=None, loss=None)

    def rows(self, start: int, stop: int) -> FuncLinearization:
        """Tasks start..stop-1 (without the graph, which spans every task: rebuilt at the first product)."""
        cut = lambda t: None if t is None else t[start:stop]  # noqa: E731
        return FuncLinearization(cut(self.u), cut(self.grad), cut(self.loss))


def _refuse(module: nn.Module, loss: Loss, input_shape: tuple[int, ...], target: Target) -> None:
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
        value = loss(out, _probe_targets(target, 2, out), torch.full((2,), 0.5, dtype=out.dtype))
    if not isinstance(value, Tensor) or value.dim() != 0:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ModelError(f"{name}: the loss returns {shape} for one task, not a scalar; sum or average it over "
                         "the task's examples (loss(out, y, w) -> a 0-dimensional tensor)")


def module_init(module: nn.Module, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
    """``module``'s own initialization (``reset_parameters`` of each submodule) from a seed drawn from
    ``generator`` (the global generator is left as it was), flattened in ``named_parameters`` order."""
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for sub in module.modules():
            if hasattr(sub, "reset_parameters"):
                sub.reset_parameters()
    with torch.no_grad():
        return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).to(dtype)


def _recordable(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors, those made in inference mode copied, so that autograd may save them."""
    return tuple(t.clone() if t.is_inference() else t for t in tensors)


class MLPModule(nn.Module):
    """``model.MLP`` as a module: the same network, its parameters in the same flat order (per layer
    ``W [n_in, n_out]`` then ``b [n_out]``), so both backends read the same theta the same way."""

    def __init__(self, sizes: list[int], activation: str = "tanh"):
        super().__init__()
        self.activation = getattr(torch, activation)
        self.layers = nn.ModuleList()  # one submodule per layer: its W and b are one layer (layer_index)
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layer = nn.Module()
            layer.W, layer.b = nn.Parameter(torch.zeros(n_in, n_out)), nn.Parameter(torch.zeros(n_out))
            self.layers.append(layer)

    def forward(self, x: Tensor) -> Tensor:
        for l, layer in enumerate(self.layers):
            x = x @ layer.W + layer.b
            if l < len(self.layers) - 1:
                x = self.activation(x)
        return x


class FuncModel:
    """``module`` (examples of shape ``input_shape``) and ``loss`` on task-stacked flat parameters.
    ``init(generator, dtype)``, when given, draws the initial theta instead of the module's own
    ``reset_parameters`` (``backends`` gives an MLP the hand-derived model's initialization).
    ``target_shape`` and ``target_dtype`` describe one example's target (by default a number of the
    parameters' dtype) for the calls that probe the module and the loss."""

    def __init__(self, module: nn.Module, loss: Loss = squared_error, input_shape: tuple[int, ...] = (1,),
                 init: Callable[[torch.Generator, torch.dtype], Tensor] | None = None, hvp: str = "double_backward",
                 target_shape: tuple[int, ...] = (), target_dtype: torch.dtype | None = None):
        self._target: Target = (tuple(target_shape), target_dtype)
        _refuse(module, loss, tuple(input_shape), self._target)
        self.module, self.loss_fn, self.input_shape, self._init = module, loss, tuple(input_shape), init
        named = list(module.named_parameters())
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.n_params = sum(self.numels)
        self.buffers = dict(module.named_buffers())
        self._loss = vmap(self._task_loss)
        self._graph_bytes: dict[tuple, int] = {}  # saved bytes of a gradient's graph, per shape
        if hvp not in HVP_METHODS:
            raise ModelError(f"hvp={hvp!r}; allowed values: {', '.join(HVP_METHODS)}")
        self._hvp, self.hvp_method = self._double_backward_hvp, "double backward"
        if hvp == "jvp":
            self._hvp, self.hvp_method = vmap(self._task_hvp), "jvp of grad"
            if not self._batches_jvp():
                self._hvp = self._double_backward_hvp
                self.hvp_method = "double backward (this torch cannot vmap the jvp)"
        self._keeps_graph = self.hvp_method.startswith("double backward")  # linearizations hold the gradient's graph
        # forward mode's step: the gradient and its jvp along each of n tangents [n, B, P] in one call
        self._grad_jvps = vmap(vmap(self._task_grad_jvp), in_dims=(None, 0, None, None, None), out_dims=(None, 0))
        self._forward_ok: bool | None = None  # whether this torch batches it (probed at the first use)

    def to(self, device: torch.device | str) -> FuncModel:
        """The template (and so its buffers) on ``device``; the parameters are always the caller's."""
        self.module.to(device)
        self.buffers = dict(self.module.named_buffers())
        return self

    # -- parameters -------------------------------------------------------
    def init(self, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
        """The module's own initialization (``reset_parameters`` of each submodule), drawn from a seed
        taken from ``generator``, flattened in the order of ``named_parameters``."""
        return self._init(generator, dtype) if self._init is not None else module_init(self.module, generator, dtype)

    def layer_index(self) -> Tensor:
        """The layer of each parameter ``[P]``: the submodule that owns it (a ``Linear``'s or
        ``Conv2d``'s weight and bias share one), numbered in the order of ``named_parameters``."""
        owners = [n.rpartition(".")[0] for n in self.names]
        number = {o: i for i, o in enumerate(dict.fromkeys(owners))}
        return torch.cat([torch.full((k,), number[o], dtype=torch.long) for o, k in zip(owners, self.numels)])

    def unflatten(self, u_b: Tensor) -> dict[str, Tensor]:
        """One task's parameters ``[P]`` as the module's named parameters (views)."""
        return {n: t.view(s) for n, t, s in zip(self.names, u_b.split(self.numels), self.shapes)}

    # -- one task ---------------------------------------------------------
    def _out(self, u_b: Tensor, x_b: Tensor) -> Tensor:
        return functional_call(self.module, (self.unflatten(u_b), self.buffers), (x_b,))

    def _task_loss(self, u_b: Tensor, x_b: Tensor, y_b: Tensor, w_b: Tensor) -> Tensor:
        return self.loss_fn(self._out(u_b, x_b), y_b, w_b)

    def _task_grad_jvp(self, u_b: Tensor, v_b: Tensor, x_b: Tensor, y_b: Tensor, w_b: Tensor) -> tuple[Tensor, Tensor]:
        """(grad, H v) of one task: the jvp of its gradient along v."""
        return jvp(lambda p: grad(self._task_loss)(p, x_b, y_b, w_b), (u_b,), (v_b,))

    def _task_hvp(self, u_b: Tensor, v_b: Tensor, x_b: Tensor, y_b: Tensor, w_b: Tensor) -> Tensor:
        return self._task_grad_jvp(u_b, v_b, x_b, y_b, w_b)[1]

    def _double_backward_hvp(self, u: Tensor, v: Tensor, x: Tensor, y: Tensor, w: Tensor) -> Tensor:
        """H v by reverse over reverse through the vmapped forward (also inside inference mode, where the
        estimators call it)."""
        with torch.inference_mode(False), torch.enable_grad():
            u = u.detach().clone().requires_grad_(True)
            g = torch.autograd.grad(self._loss(u, *_recordable(x, y, w)).sum(), u, create_graph=True)[0]
            return torch.autograd.grad(g, u, *_recordable(v))[0]

    def _batches_jvp(self, probe: Callable | None = None) -> bool:
        """Whether this torch's vmap batches the jvp of a gradient (``probe``, by default the product,
        tried once on a tiny batch)."""
        p = next(self.module.parameters())
        u = torch.zeros(1, self.n_params, dtype=p.dtype, device=p.device)
        x = torch.zeros(1, 2, *self.input_shape, dtype=p.dtype, device=p.device)
        y, w = _probe_targets(self._target, 2, p, (1,)), torch.full((1, 2), 0.5, dtype=p.dtype, device=p.device)
        try:
            (probe or self._hvp)(u, u, x, y, w)
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
        if torch.is_grad_enabled() and u.requires_grad:  # differentiated through (unrolled MAML)
            return torch.autograd.grad(self.loss(u, data).sum(), u, create_graph=True)[0]
        return self.loss_and_grad(u, data)[1]

    def loss_and_grad(self, u: Tensor, data: Data) -> tuple[Tensor, Tensor]:
        """Per-task losses [B] and gradients [B, P] (torch.autograd through the vmapped forward; the
        tasks' parameters are separate rows of u, so one backward pass gives every task's gradient)."""
        with torch.inference_mode(False), torch.enable_grad():
            leaf = u.detach().clone().requires_grad_(True)
            value = self._loss(leaf, *_recordable(data.x, data.y, data.w))
            (g,) = torch.autograd.grad(value.sum(), leaf)
        return value.detach(), g

    def linearize(self, u: Tensor, data: Data, with_loss: bool = False, with_grad: bool = True) -> FuncLinearization:
        if with_loss:
            value, g = self.loss_and_grad(u, data)
            return FuncLinearization(u, g if with_grad else None, value)
        if not with_grad or not self._keeps_graph:
            return FuncLinearization(u, self.grad(u, data) if with_grad else None, None)
        lin = FuncLinearization(u, None, None)
        self._build_graph(lin, data)
        lin.grad = lin.graph[1].detach()
        return lin

    def _build_graph(self, lin: FuncLinearization, data: Data) -> None:
        """The gradient at ``lin.u`` with its graph, kept in ``lin`` for the products that follow."""
        key = (tuple(lin.u.shape), tuple(data.x.shape), lin.u.dtype, lin.u.device)
        count = key not in self._graph_bytes
        with torch.inference_mode(False), torch.enable_grad():
            leaf = lin.u.detach().clone().requires_grad_(True)
            build = lambda: torch.autograd.grad(self._loss(leaf, *_recordable(data.x, data.y, data.w)).sum(),  # noqa: E731
                                                leaf, create_graph=True)[0]
            if count:  # the bytes depend only on the shapes: counted at the first graph of each
                g, self._graph_bytes[key], _ = saved_tensor_bytes(build)
            else:
                g = build()
        lin.graph, lin.graph_bytes = (leaf, g), self._graph_bytes[key]

    def hvp_at(self, lin: FuncLinearization, v: Tensor, data: Data) -> Tensor:
        if lin.u is None and lin.graph is None:
            raise LookupError("a stored linearization of the torch.func backend keeps its state; this one has none")
        if not self._keeps_graph:
            return self._hvp(lin.u, v, data.x, data.y, data.w)
        if lin.graph is None:
            self._build_graph(lin, data)
        leaf, g = lin.graph
        with torch.inference_mode(False), torch.enable_grad():
            return torch.autograd.grad(g, leaf, *_recordable(v), retain_graph=True)[0]

    def hvp(self, u: Tensor, v: Tensor, data: Data) -> Tensor:
        return self._hvp(u, v, data.x, data.y, data.w)

    def grad_and_hvps(self, u: Tensor, vs: list[Tensor], data: Data) -> tuple[Tensor, list[Tensor]]:
        """The gradient at u and the products with each of ``vs`` (forward mode's step): one
        ``torch.func.jvp`` of ``grad`` carrying all the tangents (vmapped over them and over the tasks),
        whose primal output is the gradient; a torch whose vmap cannot batch it gets the products of
        one linearization."""
        if self._forward_ok is None:
            self._forward_ok = self._batches_jvp(lambda u0, v0, *xyw: self._grad_jvps(u0, v0.unsqueeze(0), *xyw))
        if not vs or not self._forward_ok:
            return linearized_grad_and_hvps(self, u, vs, data)
        g, hvs = self._grad_jvps(u, torch.stack(vs), data.x, data.y, data.w)
        return g, list(hvs.unbind(0))

    def compile_passes(self) -> FuncModel:
        raise ModelError("runtime.compile applies to the hand-derived MLP only; the torch.func backend runs eagerly")
