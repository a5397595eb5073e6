"""The interface every model of B stacked tasks meets, and the data it reads.

* :class:`Data`: the examples of B tasks, stacked (inputs, targets, weights 1/n_b or 0 on padding);
* :class:`TaskModel`: the contract of a model on task-stacked flat parameters ``u [B, P]`` (the
  gradient, the linearization and its Hessian-vector products, forward mode's step, the
  initialization and the parameter layout), which the hand-derived ``model.MLP`` and the torch.func
  ``funcmodel.FuncModel`` both meet and every estimator is written against;
* :class:`Linearization`: what the hand-derived MLP keeps of one forward and backward pass for the
  products that follow; :class:`Linearized`: the contract any model's linearization meets.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import torch

Tensor = torch.Tensor


# (gather index [B, N, width] of the items' rows of W_0, flat index [B, N * width] of the same
# entries in the flattened [B, n_items * width] weight gradient)
Lookup = tuple[Tensor, Tensor]


@dataclass
class Data:
    """Examples of B tasks: inputs ``x [B, N, d]`` (or ``[B, N, ...]``), targets ``y [B, N]`` (or
    ``[B, N, ...]`` for a model with several outputs), weights ``w [B, N]``.

    ``items [B, N]`` (optional) says that x is one-hot: row n of task b is the unit vector
    ``items[b, n]`` (the collaborative-filtering tasks).  The first layer's products with x
    are then row lookups: ``x W`` gathers rows of W and ``x^T d`` adds the rows of d into
    theirs, cheaper than batched matmuls with the one-hot rows (docs/performance.md).
    """
    x: Tensor
    y: Tensor
    w: Tensor
    items: Tensor | None = None
    y3: Tensor = field(init=False, repr=False, compare=False)  # targets as [B, N, 1], the output's shape
    w2: Tensor = field(init=False, repr=False, compare=False)  # 2 w as [B, N, 1]: d loss / d prediction = 2 w (f - y)
    _lookups: dict = field(init=False, repr=False, compare=False)  # first-layer width -> Lookup

    def __post_init__(self):
        # made with the data (not on first use), so that data made outside inference mode never
        # caches inference tensors that autograd (unrolled MAML) could not save
        self.y3 = self.y.unsqueeze(-1)
        self.w2 = (2.0 * self.w).unsqueeze(-1)
        self._lookups = {}
        if self.items is not None and (self.items.shape != self.x.shape[:2] or self.items.dtype != torch.long):
            raise ValueError(f"Data.items must be a long tensor of shape {tuple(self.x.shape[:2])} (one item per "
                             f"example), got {self.items.dtype} {tuple(self.items.shape)}")

    @property
    def n_tasks(self) -> int:
        return self.x.shape[0]

    def lookup(self, width: int) -> Lookup | None:
        """The index tensors of the first layer's row lookups for a layer of ``width`` units
        (None for dense inputs); made once per width."""
        if self.items is None:
            return None
        if width not in self._lookups:
            with torch.inference_mode(False):  # plain tensors: usable in and out of inference mode
                rows = self.items.unsqueeze(-1) * width + torch.arange(width, device=self.items.device)
                self._lookups[width] = (self.items.unsqueeze(-1).expand(*self.items.shape, width),
                                        rows.reshape(self.items.shape[0], -1))
        return self._lookups[width]

    def repeat(self, times: int) -> Data:
        """The same tasks stacked ``times`` times along the task axis (task-major blocks)."""
        items = None if self.items is None else self.items.repeat(times, 1)
        x = self.x.repeat(times, *[1] * (self.x.dim() - 1))  # inputs may be images: [B, N, C, H, W]
        y = self.y.repeat(times, *[1] * (self.y.dim() - 1))
        return Data(x, y, self.w.repeat(times, 1), items)

    def scaled(self, factor: float) -> Data:
        """The same examples with every weight times ``factor`` (the loss, its gradient and Hessian scale alike)."""
        return Data(self.x, self.y, self.w * factor, self.items)

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Data:
        items = None if self.items is None else self.items.to(device)
        return Data(self.x.to(device, dtype), self.y.to(device, dtype), self.w.to(device, dtype), items)


@dataclass
class Linearization:
    """What a Hessian-vector product at ``u`` reuses: activations a_l, s'(z), deltas d_l and c_l
    (and, to save a few tensor operations per product, the weight views and transposes)."""
    u: Tensor | None                   # None once stored (see for_storage)
    acts: list[Tensor]                 # a_0 = x, ..., a_{L-1}  (inputs of each layer)
    slopes: list[Tensor | None]        # slopes[l] = s'(z_{l-1}) as a function of a_l, l >= 1
    deltas: list[Tensor]               # d_l = dL/dz_l
    curv: list[Tensor | None]          # c_l = e_l s''(z_{l-1}), l >= 1 (None where s'' = 0)
    grad: Tensor | None                # [B, P]; None when not asked for (a product needs no gradient)
    loss: Tensor | None                # [B], when asked for
    params: list[tuple[Tensor, Tensor]] = field(default_factory=list, repr=False)  # (W_l, b_l) views of u
    weights_t: list[Tensor] = field(default_factory=list, repr=False)   # W_l^T
    acts_t: list[Tensor] = field(default_factory=list, repr=False)      # a_l^T

    def nbytes(self) -> int:
        ts = [*self.acts[1:], *self.deltas] + [t for t in self.slopes + self.curv if t is not None]
        ts += [self.u] if self.u is not None else [W for W, _ in self.params if W is not None]
        return sum(t.numel() * t.element_size() for t in ts)

    def without_grad(self) -> Linearization:
        """The same linearization without its gradient: what a recomputed segment keeps once the
        step that needed the gradient is taken (one parameter vector less per state)."""
        return replace(self, grad=None)

    def for_storage(self) -> Linearization:
        """What a trajectory keeps of this linearization for a product much later: no gradient,
        loss or state, and of the parameters only the weights a product reads (those of the layers
        after the first), copied so that the state itself is freed.  On wide inputs the first layer
        is most of P (100-40-40-1: 4,000 of 5,721 per task), and everything kept here is memory
        the backward sweep reads back from far outside the caches."""
        weights = [W.clone() for W, _ in self.params[1:]]
        return Linearization(None, self.acts, self.slopes, self.deltas, self.curv, None, None,
                             [(None, None), *((W, None) for W in weights)],
                             [None, *(W.transpose(1, 2) for W in weights)], self.acts_t)

    def rows(self, start: int, stop: int) -> Linearization:
        """The linearization of tasks ``start:stop`` (views, nothing copied)."""
        def cut(t):
            return None if t is None else t[start:stop]
        return Linearization(
            cut(self.u), [a[start:stop] for a in self.acts], [cut(t) for t in self.slopes],
            [d[start:stop] for d in self.deltas], [cut(t) for t in self.curv], cut(self.grad), cut(self.loss),
            [(cut(W), cut(b)) for W, b in self.params], [cut(t) for t in self.weights_t],
            [a[start:stop] for a in self.acts_t])


def linearized_grad_and_hvps(model: TaskModel, u: Tensor, vs: list[Tensor],
                             data: Data) -> tuple[Tensor, list[Tensor]]:
    """The gradient at u and the products with each of ``vs`` from one linearization of ``model``."""
    lin = model.linearize(u, data)
    return lin.grad, [model.hvp_at(lin, v, data) for v in vs]


@runtime_checkable
class Linearized(Protocol):
    """What a model's ``linearize`` returns: the state ``u`` (None once stored), the gradient and
    loss there when asked for, and what a trajectory does with it."""
    u: Tensor | None
    grad: Tensor | None
    loss: Tensor | None

    def nbytes(self) -> int:
        """Bytes it holds."""

    def without_grad(self) -> Linearized:
        """The same without its gradient."""

    def for_storage(self) -> Linearized:
        """What a trajectory keeps of it for a product much later."""

    def rows(self, start: int, stop: int) -> Linearized:
        """The linearization of tasks ``start:stop``."""


@runtime_checkable
class TaskModel(Protocol):
    """A model of B stacked tasks on flat parameters ``u [B, P]`` (one row per task): what every
    estimator, the training loop, the evaluation and the profile rely on.

    Per task b the loss is ``L_b(u_b)`` on the examples of ``data`` (weights 1/n_b, 0 on padding);
    every method acts on all B tasks at once and returns one row (or one value) per task."""
    n_params: int

    def init(self, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
        """An initial theta ``[P]`` drawn from ``generator``."""

    def layer_index(self) -> Tensor:
        """The layer of each parameter ``[P]`` (0, 1, ...), for per-layer step sizes."""

    def predict(self, u: Tensor, x: Tensor) -> Tensor:
        """The outputs ``[B, N, ...]`` (one output squeezed to ``[B, N]``)."""

    def loss(self, u: Tensor, data: Data) -> Tensor:
        """Per-task losses ``[B]``."""

    def grad(self, u: Tensor, data: Data) -> Tensor:
        """Per-task gradients ``[B, P]``; differentiable by autograd when u requires grad."""

    def loss_and_grad(self, u: Tensor, data: Data) -> tuple[Tensor, Tensor]:
        """Per-task losses ``[B]`` and gradients ``[B, P]``."""

    def linearize(self, u: Tensor, data: Data, with_loss: bool = False, with_grad: bool = True) -> Linearized:
        """The gradient at u (and the loss) with what Hessian-vector products at u reuse."""

    def hvp_at(self, lin: Linearized, v: Tensor, data: Data) -> Tensor:
        """Per-task Hessian-vector products ``H_b(u_b) v_b`` at a linearization."""

    def hvp(self, u: Tensor, v: Tensor, data: Data) -> Tensor:
        """Per-task Hessian-vector products at u."""

    def grad_and_hvps(self, u: Tensor, vs: list[Tensor], data: Data) -> tuple[Tensor, list[Tensor]]:
        """Forward mode's step: the gradient at u and the products with each of ``vs``."""

    def compile_passes(self) -> TaskModel:
        """The passes through ``torch.compile`` (or a ModelError where the model runs eagerly)."""
