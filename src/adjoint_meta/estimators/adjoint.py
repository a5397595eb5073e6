"""Adjoint estimators: A-MAML, the exact discrete adjoint of MAML, and truncated backprop.

All three store the inner trajectory and sweep it backwards with one (Heun:
two) batched Hessian-vector product per step; memory is one parameter vector
per stored state and task, never an autograd graph.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from adjoint_meta.estimators import flow
from adjoint_meta.estimators.base import Estimator, MetaGradient, Stored, hyper, register
from adjoint_meta.estimators.core import (
    InnerProblem,
    Preconditioned,
    Trajectory,
    continuous_adjoint,
    descend,
    discrete_adjoint,
    gd_step,
    keep_every_for,
    stack,
)
from adjoint_meta.estimators.learned_rates import LearnsRates, RateHyper, rate_checks


@dataclass(frozen=True)
class AmamlHyper(RateHyper, Stored):
    forward: str = hyper("dopri5", "forward solver of the gradient flow (dopri5: torchdiffeq's algorithm on "
                         "stacked states; dopri5_torchdiffeq: torchdiffeq itself)",
                         choices=("dopri5", "dopri5_torchdiffeq", "rk4", "rk4_38", "euler"))
    backward: str = hyper("heun", "adjoint scheme: heun (paper), euler (released code), discrete (exact adjoint "
                          "of an euler forward)", choices=("heun", "euler", "discrete"))
    h: float | None = hyper(None, "grid step of the recorded states (null = inner.alpha)", kind=float,
                            nullable=True, above=0)
    rtol: float = hyper(1e-5, "dopri5 relative tolerance", above=0)
    atol: float = hyper(1e-6, "dopri5 absolute tolerance", above=0)
    reg: float = hyper(0.0, "proximal weight of 0.5*reg*|u-theta|^2 (released code uses 1)", minimum=0)
    # the released code's arithmetic, each switchable (docs/protocol.md, section 5)
    half_mse: bool = hyper(False, "inner and validation losses are half the mean squared error (released code): "
                           "the same alpha moves half as far")
    terminal_prox: bool = hyper(False, "the validation objective carries the proximal term too (released code): "
                                "lam(T) = grad L_val(u_T) + reg (u_T - theta), plus its explicit theta-derivative")
    extra_step: bool = hyper(False, "the backward sweep takes K + 1 steps, one per grid point, the last at theta "
                             "(released code; its Heun partner there is u_T)")
    prox_rows: bool = hyper(False, "the proximal term's integral of the adjoint as the released code sums it: "
                            "every adjoint row of the sweep (K + 2 with extra_step) times h")


# evaluations of the model per grid step of each forward solver (dopri5: about 0.4 per step of
# h = alpha, adaptive), for scheduling
_FORWARD_COST = {"rk4": 4.0, "rk4_38": 4.0, "euler": 1.0, "dopri5": 0.4, "dopri5_torchdiffeq": 0.4}
_RELEASED_SWEEP = ("terminal_prox", "extra_step", "prox_rows")  # switches of the continuous sweep alone


@register
class Amaml(LearnsRates):
    """A-MAML: forward solve of the gradient flow to T = K alpha, states recorded every h,
    adjoint ODE solved backwards on them; the meta-gradient is lam(0).

    Paper: dopri5 forward, Heun backward, h = alpha, no proximal term.  The
    authors' released code: torchdiffeq's rk4 (the 3/8 rule) forward, Euler backward, reg = 1
    (and SGD outside), with the four departures of its arithmetic switched on (``half_mse``,
    ``terminal_prox``, ``extra_step``, ``prox_rows``).
    ``backward: discrete`` with an euler forward and h = alpha is the exact adjoint
    of K gradient-descent steps, i.e. MAML's gradient.

    With learned step sizes a the flow is du/dt = -(a / alpha) grad L(u) on the same grid
    (``core.Preconditioned``): its Euler steps of h = alpha are gradient descent with rates a, and
    dJ/da = -(1 / alpha) int_0^T lam * grad L dt, by the backward scheme's own quadrature.
    """
    name = "amaml"
    label = "A-MAML"
    Hyper = AmamlHyper
    paper = True

    @classmethod
    def cost_per_step(cls, hp: AmamlHyper) -> float:
        # forward solve, one linearization, one (Euler, discrete) or two (Heun) products a step backwards
        return _FORWARD_COST[hp.forward] + 0.8 + 1.3 * (2 if hp.backward == "heun" else 1)

    @classmethod
    def checks(cls, hp: AmamlHyper, key: str, experiments, alpha) -> list[str]:
        msgs = rate_checks(hp, key)
        if hp.learn_rate and hp.reg:
            msgs.append(f"{key}.reg: learned step sizes are implemented without the proximal term; set reg: 0 "
                        "(or learn_rate: null)")
        if alpha:
            h = hp.h or alpha
            for ename, exp in experiments.items():
                n = exp["steps"] * alpha / h
                if abs(n - round(n)) > 1e-6 or round(n) < 1:
                    msgs.append(f"{key}.h: T = experiments.{ename}.steps * inner.alpha = "
                                f"{exp['steps'] * alpha:g} is not a whole number of steps h = {h:g}")
        if hp.learn_rate:
            msgs += [f"{key}.{name}: the released code's sweep is implemented without learned step sizes; set "
                     f"{name}: false (or learn_rate: null)" for name in _RELEASED_SWEEP if getattr(hp, name)]
        if hp.backward == "discrete":
            msgs += [f"{key}.{name}: a switch of the continuous adjoint's sweep, not of the exact discrete one; "
                     f"set {name}: false (or backward: euler | heun)" for name in _RELEASED_SWEEP if getattr(hp, name)]
            if hp.forward != "euler":
                msgs.append(f"{key}.backward: 'discrete' is the exact adjoint of an euler forward; "
                            f"{key}.forward is {hp.forward!r} (allowed with it: euler)")
            if alpha is not None and hp.h not in (None, alpha):
                msgs.append(f"{key}.h: the discrete adjoint needs h = inner.alpha ({alpha}); got {hp.h}")
        return msgs

    def estimate_at(self, theta: torch.Tensor, problem: InnerProblem, rate, rate_grad) -> MetaGradient:
        hp = self.hp
        h = float(hp.h or self.alpha)
        n = max(1, round(self.steps * self.alpha / h))
        reg = float(hp.reg)
        support, query = problem.support, problem.query
        if hp.half_mse:  # 0.5 MSE: every weight halved, the proximal term untouched
            support, query = support.scaled(0.5), query.scaled(0.5)
        prob = InnerProblem(problem.model, support, query, reg, theta if reg else None)
        if isinstance(rate, torch.Tensor) or rate != self.alpha:  # learned step sizes: the flow of D = a / alpha
            prob = Preconditioned.of(prob, torch.as_tensor(rate / self.alpha, dtype=theta.dtype, device=theta.device))
        traj, nfe = flow.solve(prob, stack(theta, prob.n_tasks), n, h, hp.forward,
                               rtol=float(hp.rtol), atol=float(hp.atol), store=hp.store,
                               keep_every=keep_every_for(hp.keep_every, n + 1), keep_grads=rate_grad is not None)
        uT = traj.state(n)
        loss, lam = prob.query_loss_and_grad(uT)
        if hp.terminal_prox and reg:  # J = L_val(u_T) + 0.5 reg |u_T - theta|^2
            diff = uT - theta
            loss = loss + 0.5 * reg * (diff * diff).sum(1)
            lam = lam + reg * diff
        # a * dJ/da = D * dJ/dD (a = alpha D): what both backward sweeps add to rate_grad
        if hp.backward == "discrete":
            grad = discrete_adjoint(prob, traj, lam, h, steps=n, rate_grad=rate_grad)
        else:
            grad = continuous_adjoint(prob, traj, lam, h, hp.backward, rate_grad=rate_grad,
                                      extra_step=hp.extra_step, prox_rows=hp.prox_rows)
        if hp.terminal_prox and reg:
            grad = grad - reg * diff  # the objective's explicit theta-derivative
        hvps = (n + hp.extra_step) * (2 if hp.backward == "heun" else 1)
        return MetaGradient(grad, loss, {"nfe": nfe, "hvp": hvps, "states": n + 1, "stored_bytes": traj.nbytes()})


@dataclass(frozen=True)
class MamlAdjointHyper(RateHyper, Stored):
    pass


@register
class MamlAdjoint(LearnsRates):
    """MAML's exact gradient through K steps by the discrete adjoint (memory K x P, no graph); with
    learned step sizes the same sweep also gives dJ/dalpha (the trajectory then keeps each step's
    gradient as well: memory 2 K x P)."""
    name = "maml_adjoint"
    label = "MAML (exact discrete adjoint)"
    Hyper = MamlAdjointHyper
    maml_variant = 2  # after the paper's MAML and the first-order one
    step_cost = 3.1  # a gradient, a linearization again in the backward sweep and a product

    def estimate_at(self, theta: torch.Tensor, problem: InnerProblem, rate, rate_grad) -> MetaGradient:
        traj = Trajectory(problem, self.hp.store, keep_every_for(self.hp.keep_every, self.steps), gd_step(rate),
                          keep_grads=rate_grad is not None)
        uK = descend(problem, stack(theta, problem.n_tasks), self.steps, rate, traj)
        loss, lam = problem.query_loss_and_grad(uK)
        return MetaGradient(discrete_adjoint(problem, traj, lam, rate, rate_grad=rate_grad), loss,
                            {"hvp": self.steps, "states": self.steps, "stored_bytes": traj.nbytes()})


@dataclass(frozen=True)
class TbpttHyper(Stored):
    window: int = hyper(10, "inner steps differentiated through: the last M of the K (M > K: all K)", minimum=1)


@register
class Tbptt(Estimator):
    """Truncated backpropagation: differentiate only through the last M of K steps,
    i.e. the exact adjoint of the last M steps with d u_{K-M} / d theta taken as I."""
    name = "tbptt"
    label = "Truncated backprop"
    Hyper = TbpttHyper
    step_cost = 1.2

    @classmethod
    def checks(cls, hp: TbpttHyper, key: str, experiments, alpha) -> list[str]:
        return [f"{key}.window: {hp.window} exceeds experiments.{ename}.steps ({exp['steps']}), the steps it "
                "would truncate" for ename, exp in experiments.items() if hp.window > exp["steps"]]

    def estimate(self, theta: torch.Tensor, problem: InnerProblem) -> MetaGradient:
        window = min(int(self.hp.window), self.steps)
        u = descend(problem, stack(theta, problem.n_tasks), self.steps - window, self.alpha)
        traj = Trajectory(problem, self.hp.store, keep_every_for(self.hp.keep_every, window),
                          gd_step(self.alpha))
        uK = descend(problem, u, window, self.alpha, traj)
        loss, lam = problem.query_loss_and_grad(uK)
        return MetaGradient(discrete_adjoint(problem, traj, lam, self.alpha), loss,
                            {"hvp": window, "states": window, "stored_bytes": traj.nbytes()})
