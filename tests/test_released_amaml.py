"""A-MAML as the authors released it, reproduced step for step in float64.

The reference below is the released meta-gradient loop written out in our words: per task,
plain autograd on a separate forward pass, torchdiffeq's ``rk4`` for the forward solve, an
explicit Euler sweep over all K + 1 grid points (the last at theta), the proximal integral as
the sum of all K + 2 adjoint rows times h, and the released sign convention (the adjoint is the
negative gradient).  ``amaml_released``'s switches must reproduce it; switching any one of them
off must not.
"""
from __future__ import annotations

import pytest
import reference as ref
import torch

from adjoint_meta.estimators import build

torchdiffeq = pytest.importorskip("torchdiffeq")

D = torch.float64
RELEASED = dict(forward="rk4_38", backward="euler", h=None, reg=1.0, half_mse=True, terminal_prox=True,
                extra_step=True, prox_rows=True)


def released_meta_gradient(m, theta, support, query, b: int, K: int, alpha: float, reg: float,
                           heun: bool = False) -> torch.Tensor:
    """The released loop for task ``b``; returns the gradient (the negated released adjoint)."""
    def half_mse(data):
        return lambda u: 0.5 * torch.mean((ref.forward(m.sizes, m.activation, u, data.x[b]) - data.y[b]) ** 2)

    def with_prox(f):
        return lambda u: f(u) + 0.5 * reg * torch.sum((u - theta) ** 2)

    train = with_prox(half_mse(support))
    T = alpha * K
    grid = torch.linspace(0, T, K + 1, dtype=D)
    states = torchdiffeq.odeint(lambda t, u: -torch.autograd.functional.jacobian(train, u), theta, grid,
                                method="rk4")
    uT = states[-1]
    lam = -torch.autograd.functional.jacobian(with_prox(half_mse(query)), uT)
    step = (0.0 - T) / K                      # the sweep's grid runs from T down to 0
    rows = [lam]
    for t in reversed(range(K + 1)):          # K + 1 steps: the last one at theta
        d = torch.autograd.functional.vhp(train, states[t], lam)[1]
        if heun:                              # index -1 wraps around to u_T
            d1 = torch.autograd.functional.vhp(train, states[t - 1], lam + step * d)[1]
            lam = lam + 0.5 * step * (d + d1)
        else:
            lam = lam + step * d
        rows.insert(0, lam)
    integral = torch.stack(rows).sum(0) * alpha   # K + 2 rows times h
    released = rows[0] + reg * integral - reg * (theta - uT)
    return -released


@pytest.mark.parametrize("backward", ["euler", "heun"])
def test_amaml_released_reproduces_the_released_loop(small_mlp_problem, backward):
    m, problem, theta = small_mlp_problem
    assert torch.allclose(problem.support.w, 1.0 / problem.support.w.shape[1] * torch.ones_like(problem.support.w))
    K, alpha, reg = 12, 0.05, 1.0
    expect = torch.stack([released_meta_gradient(m, theta, problem.support, problem.query, b, K, alpha, reg,
                                                 heun=backward == "heun") for b in range(problem.n_tasks)])
    got = build("amaml", dict(RELEASED, backward=backward), K, alpha).__call__(theta, problem)
    assert ref.rel(got.grad, expect) < 1e-11
    assert got.stats["hvp"] == (K + 1) * (2 if backward == "heun" else 1)


@pytest.mark.parametrize("switch", ["half_mse", "terminal_prox", "extra_step", "prox_rows", "forward"])
def test_each_switch_of_the_released_loop_matters(small_mlp_problem, switch):
    m, problem, theta = small_mlp_problem
    K, alpha, reg = 12, 0.05, 1.0
    expect = torch.stack([released_meta_gradient(m, theta, problem.support, problem.query, b, K, alpha, reg)
                          for b in range(problem.n_tasks)])
    cfg = dict(RELEASED, **{switch: "rk4" if switch == "forward" else False})
    got = build("amaml", cfg, K, alpha).__call__(theta, problem)
    assert ref.rel(got.grad, expect) > 1e-9


def test_torchdiffeq_rk4_is_the_three_eighths_rule(small_mlp_problem):
    """The forward solve alone: ``rk4_38`` against torchdiffeq's ``rk4`` on the inner loss."""
    from adjoint_meta.estimators import flow
    from adjoint_meta.estimators.core import stack

    m, problem, theta = small_mlp_problem
    K, h = 7, 0.1
    traj, nfe = flow.solve(problem, stack(theta, problem.n_tasks), K, h, "rk4_38")
    for b in range(problem.n_tasks):
        def rhs(t, u, b=b):
            return -torch.autograd.functional.jacobian(lambda v: ref.loss(m, v, problem.support, b), u)
        states = torchdiffeq.odeint(rhs, theta, torch.linspace(0, K * h, K + 1, dtype=D), method="rk4")
        assert ref.rel(traj.state(K)[b], states[-1]) < 1e-12
    assert nfe == 4 * K


def test_released_switches_are_refused_where_they_mean_nothing():
    from adjoint_meta.estimators.adjoint import Amaml

    hp = Amaml.Hyper(forward="euler", backward="discrete", extra_step=True)
    msgs = Amaml.checks(hp, "estimators.x", {}, 0.01)
    assert any("estimators.x.extra_step" in m and "backward" in m for m in msgs)
