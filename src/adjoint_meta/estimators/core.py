"""The shared core of every estimator: the inner problem of B stacked tasks,
gradient descent on it, and the backward (adjoint) sweeps over stored states.

Conventions: ``theta`` is ``[P]``; states ``u`` are ``[B, P]`` (one row per task);
``lam`` is the adjoint, lam(t) = dJ_b/du_b(t), also ``[B, P]``.

Inner objective with an optional proximal term (iMAML, the released A-MAML):
    L(u) = L_tr(u) + reg/2 |u - theta|^2 ,
so grad L = g(u) + reg (u - theta) and Hess L v = H(u) v + reg v.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from adjoint_meta.model import MLP, Data

Tensor = torch.Tensor


@dataclass
class InnerProblem:
    """Support (inner) and query (outer) losses of B tasks for one model."""
    model: MLP
    support: Data
    query: Data
    reg: float = 0.0
    anchor: Tensor | None = None  # theta, [P] or [B, P]; needed when reg > 0

    @property
    def n_tasks(self) -> int:
        return self.support.n_tasks

    def grad(self, u: Tensor) -> Tensor:
        g = self.model.grad(u, self.support)
        return g + self.reg * (u - self.anchor) if self.reg else g

    def loss_and_grad(self, u: Tensor) -> tuple[Tensor, Tensor]:
        loss, g = self.model.loss_and_grad(u, self.support)
        if self.reg:
            diff = u - self.anchor
            return loss + 0.5 * self.reg * (diff * diff).sum(1), g + self.reg * diff
        return loss, g

    def hvp(self, u: Tensor, v: Tensor) -> Tensor:
        hv = self.model.hvp(u, v, self.support)
        return hv + self.reg * v if self.reg else hv

    def query_loss_and_grad(self, u: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.loss_and_grad(u, self.query)

    def query_loss(self, u: Tensor) -> Tensor:
        return self.model.loss(u, self.query)

    def with_data(self, support: Data, query: Data, anchor: Tensor | None = None) -> "InnerProblem":
        return InnerProblem(self.model, support, query, self.reg,
                            self.anchor if anchor is None else anchor)


def stack(theta: Tensor, n: int) -> Tensor:
    """theta ``[P]`` as ``n`` task rows ``[n, P]`` (a copy, so states never alias theta)."""
    return theta.unsqueeze(0).expand(n, -1).clone()


def descend(problem: InnerProblem, u: Tensor, steps: int, alpha: float,
            states: list[Tensor] | None = None) -> Tensor:
    """``steps`` gradient-descent steps u <- u - alpha grad L(u); appends u_0..u_{K-1} to ``states``."""
    for _ in range(steps):
        if states is not None:
            states.append(u)
        u = u - alpha * problem.grad(u)
    return u


def discrete_adjoint(problem: InnerProblem, states: Sequence[Tensor], lam: Tensor,
                     alpha: float) -> Tensor:
    """Exact reverse sweep of K gradient-descent steps.

    u_{j+1} = u_j - alpha (g(u_j) + reg (u_j - theta)) gives
        lam_j = (I - alpha Hess L(u_j)) lam_{j+1},   dJ/dtheta = lam_0 + alpha reg sum_j lam_{j+1},
    one Hessian-vector product per step, memory K stored states.
    """
    direct = torch.zeros_like(lam) if problem.reg else None
    for u in reversed(states):
        if direct is not None:
            direct = direct + lam
        lam = lam - alpha * problem.hvp(u, lam)
    return lam + (alpha * problem.reg) * direct if direct is not None else lam


def continuous_adjoint(problem: InnerProblem, states: Sequence[Tensor], lam: Tensor,
                       h: float, scheme: str) -> Tensor:
    """Backward solve of the adjoint ODE  d lam/dt = Hess L(u(t)) lam  on states at t_j = j h.

    ``euler``:  lam_j = lam_{j+1} - h A_{j+1} lam_{j+1}                     (first order)
    ``heun``:   k1 = A_{j+1} lam_{j+1},  k2 = A_j (lam_{j+1} - h k1),
                lam_j = lam_{j+1} - h/2 (k1 + k2)                          (modified Euler, second order)
    with A_j = Hess L(u_j); for reg > 0 the theta-gradient adds reg * int_0^T lam dt
    (right-point sum for euler, trapezoid for heun).  ``states`` holds u_0..u_n.
    """
    direct = torch.zeros_like(lam) if problem.reg else None
    for j in range(len(states) - 2, -1, -1):
        k1 = problem.hvp(states[j + 1], lam)
        if scheme == "euler":
            new = lam - h * k1
            if direct is not None:
                direct = direct + lam
        elif scheme == "heun":
            k2 = problem.hvp(states[j], lam - h * k1)
            new = lam - 0.5 * h * (k1 + k2)
            if direct is not None:
                direct = direct + 0.5 * (lam + new)
        else:
            raise ValueError(f"unknown adjoint scheme {scheme!r}; allowed values: euler, heun")
        lam = new
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
