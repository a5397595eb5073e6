"""iMAML: implicit gradient at the (approximate) minimizer of the proximally regularized loss.

Inner: K gradient steps on  L_tr(u) + lam/2 |u - theta|^2  from theta, giving phi.
Outer: the implicit function theorem at a stationary point gives
    dJ/dtheta = (I + H(phi)/lam)^{-1} grad L_val(phi),
solved with ``cg_steps`` batched conjugate-gradient steps (H = Hessian of L_tr only).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from adjoint_meta.estimators.base import Estimator, MetaGradient, hyper, register
from adjoint_meta.estimators.core import InnerProblem, conjugate_gradient, descend, stack


@dataclass(frozen=True)
class ImamlHyper:
    lam: float = hyper(1.0, "weight of the proximal term lam/2 |u - theta|^2", above=0)
    cg_steps: int = hyper(5, "conjugate-gradient steps of the implicit solve", minimum=1)


@register
class Imaml(Estimator):
    name = "imaml"
    label = "iMAML"
    Hyper = ImamlHyper
    paper = True
    step_cost = 1.3  # the proximal gradient steps and, once, cg_steps products

    def estimate(self, theta: torch.Tensor, problem: InnerProblem) -> MetaGradient:
        lam, cg_steps = float(self.hp.lam), int(self.hp.cg_steps)
        prox = InnerProblem(problem.model, problem.support, problem.query, lam, theta)
        phi = descend(prox, stack(theta, problem.n_tasks), self.steps, self.alpha)
        loss, g = problem.query_loss_and_grad(phi)
        plain = InnerProblem(problem.model, problem.support, problem.query)
        lin = plain.linearize(phi)  # every CG step reuses it
        grad = conjugate_gradient(lambda v: v + plain.hvp_at(lin, v) / lam, g, cg_steps)
        return MetaGradient(grad, loss, {"hvp": cg_steps})
