"""Adjoint estimators: A-MAML, the exact discrete adjoint of MAML, and truncated backprop.

All three store the inner trajectory and sweep it backwards with one (Heun:
two) batched Hessian-vector product per step; memory is one parameter vector
per stored state and task, never an autograd graph.
"""
from __future__ import annotations

import torch

from adjoint_meta.estimators import flow
from adjoint_meta.estimators.base import Estimator, MetaGradient, register
from adjoint_meta.estimators.core import (InnerProblem, Trajectory, continuous_adjoint, descend,
                                          discrete_adjoint, gd_step, keep_every_for, stack)


@register
class Amaml(Estimator):
    """A-MAML: forward solve of the gradient flow to T = K alpha, states recorded every h,
    adjoint ODE solved backwards on them; the meta-gradient is lam(0).

    Paper: dopri5 forward, Heun backward, h = alpha, no proximal term.  The
    authors' released code: rk4 forward, Euler backward, reg = 1 (and SGD outside).
    ``backward: discrete`` with an euler forward and h = alpha is the exact adjoint
    of K gradient-descent steps, i.e. MAML's gradient.
    """
    name = "amaml"
    label = "A-MAML"

    def estimate(self, theta: torch.Tensor, problem: InnerProblem) -> MetaGradient:
        cfg = self.cfg
        h = float(cfg.get("h") or self.alpha)
        n = max(1, round(self.steps * self.alpha / h))
        reg = float(cfg.get("reg", 0.0))
        prob = InnerProblem(problem.model, problem.support, problem.query, reg, theta if reg else None)
        traj, nfe = flow.solve(prob, stack(theta, prob.n_tasks), n, h, cfg.get("forward", "dopri5"),
                               rtol=float(cfg.get("rtol", 1e-5)), atol=float(cfg.get("atol", 1e-6)),
                               store=cfg.get("store", "states"),
                               keep_every=keep_every_for(cfg.get("keep_every", 1), n + 1))
        loss, lam = prob.query_loss_and_grad(traj.state(n))
        backward = cfg.get("backward", "heun")
        if backward == "discrete":
            grad = discrete_adjoint(prob, traj, lam, h, steps=n)
        else:
            grad = continuous_adjoint(prob, traj, lam, h, backward)
        hvps = n * (2 if backward == "heun" else 1)
        return MetaGradient(grad, loss, {"nfe": nfe, "hvp": hvps, "states": n + 1, "stored_bytes": traj.nbytes()})


@register
class MamlAdjoint(Estimator):
    """MAML's exact gradient through K steps by the discrete adjoint (memory K x P, no graph)."""
    name = "maml_adjoint"
    label = "MAML (exact discrete adjoint)"

    def estimate(self, theta: torch.Tensor, problem: InnerProblem) -> MetaGradient:
        traj = Trajectory(problem, self.cfg.get("store", "states"),
                          keep_every_for(self.cfg.get("keep_every", 1), self.steps), gd_step(self.alpha))
        uK = descend(problem, stack(theta, problem.n_tasks), self.steps, self.alpha, traj)
        loss, lam = problem.query_loss_and_grad(uK)
        return MetaGradient(discrete_adjoint(problem, traj, lam, self.alpha), loss,
                            {"hvp": self.steps, "states": self.steps, "stored_bytes": traj.nbytes()})


@register
class Tbptt(Estimator):
    """Truncated backpropagation: differentiate only through the last M of K steps,
    i.e. the exact adjoint of the last M steps with d u_{K-M} / d theta taken as I."""
    name = "tbptt"
    label = "Truncated backprop"

    def estimate(self, theta: torch.Tensor, problem: InnerProblem) -> MetaGradient:
        window = min(int(self.cfg.get("window", 10)), self.steps)
        u = descend(problem, stack(theta, problem.n_tasks), self.steps - window, self.alpha)
        traj = Trajectory(problem, self.cfg.get("store", "states"),
                          keep_every_for(self.cfg.get("keep_every", 1), window), gd_step(self.alpha))
        uK = descend(problem, u, window, self.alpha, traj)
        loss, lam = problem.query_loss_and_grad(uK)
        return MetaGradient(discrete_adjoint(problem, traj, lam, self.alpha), loss,
                            {"hvp": window, "states": window, "stored_bytes": traj.nbytes()})
