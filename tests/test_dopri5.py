"""The stacked-state dopri5 against torchdiffeq's own solver and a closed-form solution."""
from __future__ import annotations

import math

import pytest
import reference as ref
import torch

from adjoint_meta.estimators import InnerProblem, build, flow
from adjoint_meta.estimators.core import stack
from adjoint_meta.estimators.dopri5 import Dopri5, Dopri5Error
from adjoint_meta.model import MLP

D = torch.float64
SIZES = [2, 8, 8, 1]


@pytest.fixture(scope="module")
def problem():
    m = MLP(SIZES, "tanh")
    support, query = ref.problem_data(SIZES, B=4, n_support=15, n_query=10, seed=3)
    theta = m.init(torch.Generator().manual_seed(1), D)
    return InnerProblem(m, support, query), theta


@pytest.mark.parametrize("n, h, rtol, atol", [
    (200, 0.01, 1e-5, 1e-6),     # the paper's setting: T = 2 on the grid t_j = j alpha
    (50, 0.01, 1e-9, 1e-11),     # tight: many small steps, several grid points per step or none
    (40, 0.05, 1e-3, 1e-4),      # loose: few long steps
])
def test_same_steps_and_states_as_torchdiffeq(problem, n, h, rtol, atol):
    pr, theta = problem
    u0 = stack(theta, pr.n_tasks)
    ours, nfe = flow.solve(pr, u0, n, h, "dopri5", rtol, atol)
    theirs, nfe_td = flow.solve(pr, u0, n, h, "dopri5_torchdiffeq", rtol, atol)
    assert nfe == nfe_td                       # the same accepted and rejected steps
    assert len(ours) == len(theirs) == n + 1
    worst = max(ref.rel(ours.state(j), theirs.state(j)) for j in range(n + 1))
    assert worst < 1e-12


def test_amaml_gradient_is_the_same_with_either_solver(problem):
    pr, theta = problem
    cfg = dict(backward="heun", h=None, rtol=1e-6, atol=1e-8, reg=0.0)
    a = build("amaml", {**cfg, "forward": "dopri5"}, 60, 0.01).__call__(theta, pr)
    b = build("amaml", {**cfg, "forward": "dopri5_torchdiffeq"}, 60, 0.01).__call__(theta, pr)
    assert a.stats["nfe"] == b.stats["nfe"]
    assert ref.rel(a.grad, b.grad) < 1e-11


def test_dense_output_follows_the_exact_solution_of_a_linear_flow():
    """du/dt = -k u (gradient k u): u(t) = exp(-k t) u0 at every grid time, within the tolerance."""
    k = torch.tensor([[0.5, 2.0, 7.0]], dtype=D)
    u0 = torch.tensor([[1.0, -2.0, 0.5]], dtype=D)
    times = [0.013 * j for j in range(120)]           # grid times fall anywhere inside the steps
    solver = Dopri5(lambda u: k * u, 1e-8, 1e-10, lambda x: x.pow(2).mean(-1).sqrt().max())
    states = list(solver.solve(u0, times))
    assert len(states) == len(times)
    worst = max(float(((s - torch.exp(-k * t) * u0).abs()).max()) for s, t in zip(states, times))
    assert worst < 1e-7
    assert solver.nfe < 6 * len(times)                # far fewer steps than grid points


def test_failures_are_reported():
    norm = lambda x: x.pow(2).mean(-1).sqrt().max()  # noqa: E731
    u0 = torch.ones(2, 3, dtype=D)
    blowup = Dopri5(lambda u: torch.where(u < 0.5, torch.nan, u), 1e-6, 1e-8, norm)  # decays past 0.5
    with pytest.raises(Dopri5Error, match="non-finite"):
        list(blowup.solve(u0, [0.0, 1.0]))
    capped = Dopri5(lambda u: 50.0 * torch.sin(40.0 * u), 1e-10, 1e-12, norm, max_steps=3)
    with pytest.raises(Dopri5Error, match="more than 3 steps"):
        list(capped.solve(u0, [0.0, 5.0]))


def test_flow_wraps_solver_failures(problem):
    pr, theta = problem
    bad = InnerProblem(pr.model, pr.support, pr.query)
    u0 = stack(theta, pr.n_tasks)
    u0[1, 0] = math.nan
    for method in ("dopri5", "dopri5_torchdiffeq"):
        with pytest.raises(flow.FlowError, match=f"{method} forward solve failed"):
            flow.solve(bad, u0, 10, 0.01, method)
