"""The shared core of every estimator: the inner problem of B stacked tasks,
gradient descent on it, and the backward (adjoint) sweeps over stored states.

Conventions: ``theta`` is ``[P]``; states ``u`` are ``[B, P]`` (one row per task);
``lam`` is the adjoint, lam(t) = dJ_b/du_b(t), also ``[B, P]``.

Inner objective with an optional proximal term (iMAML, the released A-MAML):
    L(u) = L_tr(u) + reg/2 |u - theta|^2 ,
so grad L = g(u) + reg (u - theta) and Hess L v = H(u) v + reg v.

An inner step ``rate`` is a number, or a tensor broadcast against the states: ``[P]`` (one rate per
parameter, shared by the tasks: learned rates, ``adjoint_meta.rates``) or ``[B, 1]`` (one per row).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from adjoint_meta.interface import Data, Linearization, TaskModel

Tensor = torch.Tensor
Rate = float | Tensor


@dataclass
class InnerProblem:
    """Support (inner) and query (outer) losses of B tasks for one model."""
    model: TaskModel
    support: Data
    query: Data
    reg: float = 0.0
    anchor: Tensor | None = None  # theta, [P] or [B, P]; needed when reg > 0
    _repeated: dict = field(default_factory=dict, repr=False, compare=False)  # support set stacked c times

    @property
    def n_tasks(self) -> int:
        return self.support.n_tasks

    def _prox(self, lin: Linearization) -> Linearization:
        if self.reg:
            diff = lin.u - self.anchor
            if lin.grad is not None:
                lin.grad = lin.grad + self.reg * diff
            if lin.loss is not None:
                lin.loss = lin.loss + 0.5 * self.reg * (diff * diff).sum(1)
        return lin

    def linearize(self, u: Tensor, with_grad: bool = True) -> Linearization:
        """Inner gradient at u (unless ``with_grad`` is false) plus what Hessian-vector products at u reuse."""
        return self._prox(self.model.linearize(u, self.support, with_grad=with_grad))

    def grad(self, u: Tensor) -> Tensor:
        g = self.model.grad(u, self.support)
        return g + self.reg * (u - self.anchor) if self.reg else g

    def loss_and_grad(self, u: Tensor) -> tuple[Tensor, Tensor]:
        lin = self._prox(self.model.linearize(u, self.support, with_loss=True))
        return lin.loss, lin.grad

    def linearize_many(self, states: list[Tensor]) -> list[Linearization]:
        """Linearizations (without gradients) of several states ``[B, P]`` in one pass: the
        states are stacked along the task axis against the support set repeated, so the
        fixed cost of each tensor operation is paid once for all of them."""
        c = len(states)
        if c not in self._repeated:
            self._repeated[c] = self.support.repeat(c)
        lin = self.model.linearize(torch.cat(states), self._repeated[c], with_grad=False)
        B = self.n_tasks
        return [lin.rows(k * B, (k + 1) * B) for k in range(c)]

    def hvp_at(self, lin: Linearization, v: Tensor) -> Tensor:
        hv = self.model.hvp_at(lin, v, self.support)
        return hv.add_(v, alpha=self.reg) if self.reg else hv

    def hvp(self, u: Tensor, v: Tensor) -> Tensor:
        return self.hvp_at(self.model.linearize(u, self.support), v)

    def grad_and_hvps(self, u: Tensor, vs: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """grad L(u) and Hess L(u) v for each of ``vs``, by the model's forward-mode step."""
        g, hvs = self.model.grad_and_hvps(u, vs, self.support)
        if self.reg:
            g = g + self.reg * (u - self.anchor)
            hvs = [hv.add_(v, alpha=self.reg) for hv, v in zip(hvs, vs)]
        return g, hvs

    def query_loss_and_grad(self, u: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.loss_and_grad(u, self.query)

    def query_loss(self, u: Tensor) -> Tensor:
        return self.model.loss(u, self.query)

    def with_data(self, support: Data, query: Data) -> InnerProblem:
        return InnerProblem(self.model, support, query, self.reg, self.anchor)


@dataclass
class Preconditioned(InnerProblem):
    """The inner problem of the flow du/dt = -D grad L(u) with a fixed positive diagonal ``D [P]``:
    its "gradient" is D grad L and its product Hess L (D v), the transposed Jacobian of the flow's
    right-hand side that the adjoint sweeps need.  A-MAML with learned step sizes a runs the flow of
    D = a / alpha on its usual time grid, so Euler steps of h = alpha are gradient descent with rates a.
    Linearizations carry the scaled gradient (the step the solvers take)."""
    scale: Tensor | None = None

    @classmethod
    def of(cls, problem: InnerProblem, scale: Tensor) -> Preconditioned:
        return cls(problem.model, problem.support, problem.query, problem.reg, problem.anchor, scale=scale)

    def linearize(self, u: Tensor, with_grad: bool = True) -> Linearization:
        lin = super().linearize(u, with_grad)
        if lin.grad is not None:
            lin.grad = lin.grad * self.scale
        return lin

    def grad(self, u: Tensor) -> Tensor:
        return super().grad(u) * self.scale

    def loss_and_grad(self, u: Tensor) -> tuple[Tensor, Tensor]:
        loss, g = super().loss_and_grad(u)
        return loss, g * self.scale

    def hvp_at(self, lin: Linearization, v: Tensor) -> Tensor:
        return super().hvp_at(lin, self.scale * v)

    def hvp(self, u: Tensor, v: Tensor) -> Tensor:
        return super().hvp(u, self.scale * v)

    def grad_and_hvps(self, u: Tensor, vs: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        g, hvs = super().grad_and_hvps(u, [self.scale * v for v in vs])
        return g * self.scale, hvs

    def with_data(self, support: Data, query: Data) -> Preconditioned:
        return Preconditioned(self.model, support, query, self.reg, self.anchor, scale=self.scale)


STORE_MODES = ("states", "linearizations")
# A backward sweep over stored states linearizes this many of them in one batched pass: the fixed
# cost of each tensor operation is paid once per block (the block size: docs/performance.md).
LINEARIZE_BLOCK = 8


def _nbytes(item) -> int:
    return item.nbytes() if not isinstance(item, Tensor) else item.numel() * item.element_size()


class Trajectory:
    """Inner states u_0, u_1, ... kept by a forward sweep and served to a backward sweep in reverse.

    ``store='states'``: one parameter vector per step (memory n x P); the backward sweep
    re-linearizes each state (one extra forward/backward pass per step).
    ``store='linearizations'``: instead of the state, the activations and deltas of the forward
    sweep's own gradient evaluation plus the weights a product reads (all but the first layer's;
    memory n x (P - P_0 + N x widths)); nothing is recomputed, and only the last state is kept.
    ``keep_every = c > 1`` (checkpointing): only every c-th state is kept; when the backward
    sweep reaches a segment it recomputes the segment's states from its checkpoint with
    ``step(u_i, lin_i, i) -> u_{i+1}``, linearizing each state once (which the sweep needs
    anyway).  Memory ~ (n / c + c) states, smallest at c = sqrt(n); for gradient descent and
    fixed-step solvers the result is identical, for dopri5 equal within its tolerance.
    ``keep_grads``: also each step's inner gradient, which the derivative in the step sizes
    needs (``grad(j)``; one more parameter vector per kept state, none recomputed).
    """

    def __init__(self, problem: InnerProblem, store: str = "states", keep_every: int = 1,
                 step: Callable[[Tensor, Linearization, int], Tensor] | None = None, keep_grads: bool = False):
        if store not in STORE_MODES:
            raise ValueError(f"store {store!r}; allowed values: {', '.join(STORE_MODES)}")
        if keep_every > 1 and step is None:
            raise ValueError("checkpointing (keep_every > 1) needs the step that recomputes states")
        self.problem, self.store, self.keep_every, self.step = problem, store, max(1, int(keep_every)), step
        self.items: dict[int, Tensor | Linearization] = {}
        self.keep_grads = keep_grads
        self.grads: dict[int, Tensor] = {}
        self._n = 0
        self._last: Tensor | None = None
        self._last_grad: Tensor | None = None
        self._segment: dict[int, Linearization] = {}
        self._segment_peak = 0
        self._ahead: dict[int, Linearization] = {}  # linearized together with a later state, not yet asked for

    def __len__(self) -> int:
        return self._n

    def record(self, u: Tensor, lin: Linearization | None = None, grad: Tensor | None = None) -> None:
        """State u_j (with its linearization when the trajectory keeps those, and the gradient the
        step took when it keeps gradients)."""
        j = self._n
        self._n += 1
        self._last = u
        self._last_grad = grad
        if j % self.keep_every == 0:
            keep_lin = lin is not None and self.store == "linearizations" and self.keep_every == 1
            self.items[j] = lin.for_storage() if keep_lin else u
            if self.keep_grads:
                self.grads[j] = grad

    def _lookup(self, j: int) -> Tensor | Linearization:
        if j in self.items:
            return self.items[j]
        if j == self._n - 1 and self._last is not None:
            return self._last
        if j not in self._segment:
            self._recompute(j)
        return self._segment[j]

    def _recompute(self, j: int) -> None:
        c = self.keep_every
        start = (j // c) * c
        end = min(start + c, self._n)
        self._segment = {}
        u = self.state(start)
        for i in range(start, end):
            lin = self.problem.linearize(u)
            if i + 1 < end:
                u = self.step(u, lin, i)
            self._segment[i] = lin if self.keep_grads else lin.without_grad()
        self._segment_peak = max(self._segment_peak, sum(_nbytes(v) for v in self._segment.values()))

    def state(self, j: int) -> Tensor:
        if j == self._n - 1 and self._last is not None:
            return self._last
        item = self._lookup(j)
        if isinstance(item, Tensor):
            return item
        if item.u is None:
            raise LookupError(f"state {j}: a trajectory that stores linearizations keeps only the last state")
        return item.u

    def linearization(self, j: int) -> Linearization:
        """The linearization at state j.  Backward sweeps ask for j, j-1, ..., 0: a stored state is
        linearized together with the stored states just below it (LINEARIZE_BLOCK at a time)."""
        if j in self._ahead:
            return self._ahead.pop(j)
        item = self._lookup(j)
        if not isinstance(item, Tensor):  # a stored linearization (of either model)
            return item
        block = [j]
        while len(block) < LINEARIZE_BLOCK and block[-1] - 1 >= 0 and isinstance(self.items.get(block[-1] - 1),
                                                                                  torch.Tensor):
            block.append(block[-1] - 1)
        if len(block) == 1:
            return self.problem.linearize(item, with_grad=False)
        lins = self.problem.linearize_many([item, *(self.items[i] for i in block[1:])])
        self._ahead = dict(zip(block[1:], lins[1:]))
        self._segment_peak = max(self._segment_peak, sum(lin.nbytes() for lin in lins))
        return lins[0]

    def grad(self, j: int) -> Tensor:
        """The inner gradient of step j (a trajectory made with ``keep_grads``)."""
        if j in self.grads:
            return self.grads[j]
        if not self.keep_grads:
            raise LookupError("this trajectory keeps no gradients (keep_grads=False)")
        if j == self._n - 1:
            return self._last_grad
        self._lookup(j)
        return self._segment[j].grad

    def nbytes(self) -> int:
        """Bytes the trajectory holds at its peak: kept states (and gradients) plus the largest
        recomputed or batch-linearized segment."""
        kept = [*self.items.values(), *self.grads.values()]
        return sum(_nbytes(v) for v in kept) + self._segment_peak


def keep_every_for(spec: int | str, n: int) -> int:
    """``keep_every`` from its parameter: an integer, or 'sqrt' for ceil(sqrt(n))."""
    return max(1, math.ceil(math.sqrt(n))) if spec == "sqrt" else max(1, int(spec))


def stack(theta: Tensor, n: int) -> Tensor:
    """theta ``[P]`` as ``n`` task rows ``[n, P]`` (a copy, so states never alias theta)."""
    return theta.unsqueeze(0).expand(n, -1).clone()


def take_step(u: Tensor, g: Tensor, rate: Rate) -> Tensor:
    """u - rate * g, for a number or a tensor of rates."""
    return torch.addcmul(u, rate, g, value=-1) if isinstance(rate, Tensor) else torch.add(u, g, alpha=-rate)


def gd_step(rate: Rate) -> Callable[[Tensor, Linearization, int], Tensor]:
    """One gradient-descent step from a linearization (what a checkpointed trajectory replays)."""
    return lambda u, lin, i: take_step(u, lin.grad, rate)


def descend(problem: InnerProblem, u: Tensor, steps: int, rate: Rate,
            trajectory: Trajectory | None = None) -> Tensor:
    """``steps`` gradient-descent steps u <- u - rate grad L(u); records u_0..u_{K-1} in ``trajectory``."""
    for _ in range(steps):
        if trajectory is None:
            g = problem.grad(u)
        else:
            keep = trajectory.store == "linearizations" and trajectory.keep_every == 1
            lin = problem.linearize(u) if keep else None
            g = lin.grad if lin is not None else problem.grad(u)
            trajectory.record(u, lin, g)
        u = take_step(u, g, rate)
    return u


def plain_training(problem: InnerProblem, theta: Tensor, steps: int, alpha: float) -> Tensor:
    """K gradient-descent steps from theta for every task and nothing else: the baseline every
    estimator's cost is quoted against, run in inference mode as the estimators are."""
    with torch.inference_mode():
        return descend(problem, stack(theta, problem.n_tasks), steps, alpha)


def discrete_adjoint(problem: InnerProblem, trajectory: Trajectory, lam: Tensor, rate: Rate,
                     steps: int | None = None, rate_grad: Tensor | None = None) -> Tensor:
    """Exact reverse sweep of K gradient-descent steps.

    u_{j+1} = u_j - a * (g(u_j) + reg (u_j - theta)), with a a number or one rate per parameter, gives
        lam_j = lam_{j+1} - Hess L(u_j) (a * lam_{j+1}),   dJ/dtheta = lam_0 + reg sum_j a * lam_{j+1},
        a * dJ/da = -sum_j (a * lam_{j+1}) * grad L(u_j)   (dJ/dlog a per parameter, added to
                ``rate_grad [B, P]`` when given; the trajectory must keep the gradients),
    one Hessian-vector product per step on the stored trajectory (u_0..u_{K-1}; ``steps``
    = K when the trajectory also holds the final state).  With one rate per parameter the sweep
    carries s_j = a * lam_j, which both the product and the rate gradient read:
    s_j = s_{j+1} - a * Hess L(u_j) s_{j+1}, and lam_0 = s_0 / a.
    """
    n = len(trajectory) if steps is None else steps
    direct = torch.zeros_like(lam) if problem.reg else None
    if not isinstance(rate, Tensor):
        for j in range(n - 1, -1, -1):
            if rate_grad is not None:
                rate_grad.addcmul_(lam, trajectory.grad(j), value=-rate)
            if direct is not None:
                direct += lam
            lam = torch.add(lam, problem.hvp_at(trajectory.linearization(j), lam), alpha=-rate)
        return lam if direct is None else lam + (rate * problem.reg) * direct
    s = rate * lam
    for j in range(n - 1, -1, -1):
        if rate_grad is not None:
            rate_grad.addcmul_(s, trajectory.grad(j), value=-1)
        if direct is not None:
            direct += s
        s = torch.addcmul(s, rate, problem.hvp_at(trajectory.linearization(j), s), value=-1)
    lam = s / rate
    return lam if direct is None else lam + problem.reg * direct


def continuous_adjoint(problem: InnerProblem, trajectory: Trajectory, lam: Tensor, h: float, scheme: str,
                       rate_grad: Tensor | None = None, extra_step: bool = False, prox_rows: bool = False) -> Tensor:
    """Backward solve of the adjoint ODE  d lam/dt = Hess L(u(t)) lam  on states at t_j = j h.

    ``euler``:  lam_j = lam_{j+1} - h A_{j+1} lam_{j+1}                     (first order)
    ``heun``:   k1 = A_{j+1} lam_{j+1},  k2 = A_j (lam_{j+1} - h k1),
                lam_j = lam_{j+1} - h/2 (k1 + k2)                          (modified Euler, second order)
    with A_j = Hess L(u_j); for reg > 0 the theta-gradient adds reg * int_0^T lam dt
    (right-point sum for euler, trapezoid for heun).  ``trajectory`` holds u_0..u_n;
    each state is linearized once and serves both products that use it.
    ``rate_grad [B, P]``, when given, gets -int_0^T lam * G(u) dt added with the same quadrature,
    G being the trajectory's kept gradients: for a ``Preconditioned`` flow G = D grad L, and the
    integral is D * dJ/dD, dJ/dlog D per parameter.

    The authors' released sweep, switch by switch: ``extra_step`` takes one step more, from t_0
    with A_0 (Heun's partner there is A_n, the index wrapping around); ``prox_rows`` sums every
    adjoint the sweep holds, lam_n included, times h as the integral (n + 2 rows with the extra step).
    """
    if scheme not in ("euler", "heun"):
        raise ValueError(f"unknown adjoint scheme {scheme!r}; allowed values: euler, heun")
    if rate_grad is not None and (extra_step or prox_rows):
        raise ValueError("the released code's sweep (extra_step, prox_rows) takes no learned step sizes")
    n = len(trajectory) - 1
    direct = torch.zeros_like(lam) if problem.reg else None
    upper = trajectory.linearization(n)
    for j in range(n - 1, -1 - extra_step, -1):  # j = -1: the extra step
        k1 = problem.hvp_at(upper, lam)
        if scheme == "euler":
            new = torch.add(lam, k1, alpha=-h)
            if direct is not None:
                direct += lam
            if rate_grad is not None:
                rate_grad.sub_(h * lam * trajectory.grad(j + 1))
            if j > 0 or (extra_step and j == 0):  # the extra step's product is at A_0
                upper = trajectory.linearization(j)
        else:
            upper = trajectory.linearization(j % (n + 1))
            k2 = problem.hvp_at(upper, torch.add(lam, k1, alpha=-h))
            new = lam - (0.5 * h) * (k1 + k2)
            if direct is not None:
                direct += lam if prox_rows else 0.5 * (lam + new)
            if rate_grad is not None:
                rate_grad.sub_((0.5 * h) * (lam * trajectory.grad(j + 1) + new * trajectory.grad(j)))
        lam = new
    if direct is not None and prox_rows:
        direct += lam
    return lam + (h * problem.reg) * direct if direct is not None else lam


def conjugate_gradient(matvec, b: Tensor, steps: int) -> Tensor:
    """Batched CG for symmetric positive-definite systems A_b x_b = b_b (rows solved independently)."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = (r * r).sum(1, keepdim=True)
    for _ in range(steps):
        Ap = matvec(p)
        pAp = (p * Ap).sum(1, keepdim=True)
        step = torch.where(pAp != 0, rs / torch.where(pAp != 0, pAp, torch.ones_like(pAp)),
                           torch.zeros_like(pAp))
        x = x + step * p
        r = r - step * Ap
        rs_new = (r * r).sum(1, keepdim=True)
        beta = torch.where(rs != 0, rs_new / torch.where(rs != 0, rs, torch.ones_like(rs)),
                           torch.zeros_like(rs))
        p = r + beta * p
        rs = rs_new
    return x
