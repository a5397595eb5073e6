"""Observed orders of convergence of A-MAML's continuous-adjoint variants (float64).

* Euler forward with h = alpha and a continuous backward scheme (heun or euler) is
  not MAML's gradient but converges to it at first order as alpha -> 0 at fixed T:
  the exact discrete adjoint of gradient descent uses Hess L(u_j) on the step
  j -> j+1 where the continuous schemes use Hess L(u_{j+1}) (euler) or the mean of
  both (heun), an O(h) difference in total.
* The authors' released variant (rk4 forward, explicit-Euler backward, proximal term
  reg = 1) converges to the exact gradient of the proximal gradient flow at first
  order (its backward scheme and its right-point sum of the theta term are first order).

References are plain autograd (tests/reference.py): through the unrolled gradient
descent, or through a tight dopri5 solve of the gradient flow.  The paper variant
(dopri5 forward, heun backward, reg = 0, observed order 2) is already covered by
``test_amaml_converges_to_the_flow_gradient`` in tests/test_estimators.py.
"""
from __future__ import annotations

import math

import pytest
import reference as ref
import torch

from adjoint_meta.estimators import InnerProblem, build
from adjoint_meta.model import MLP

D = torch.float64
SIZES = [2, 8, 8, 1]
T = 0.4
STEPS = (0.04, 0.02, 0.01, 0.005)  # alpha or h, halved three times


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tensors are tiny: a second intra-op thread only adds contention on a busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def setup():
    m = MLP(SIZES, "tanh")
    support, query = ref.problem_data(SIZES, B=3, n_support=8, n_query=10, seed=4)
    theta = m.init(torch.Generator().manual_seed(2), D)
    assert theta.dtype == D
    return m, InnerProblem(m, support, query), theta


def _orders(errors: list[float]) -> list[float]:
    return [math.log2(a / b) for a, b in zip(errors[:-1], errors[1:])]


@pytest.mark.parametrize("backward", ["heun", "euler"])
def test_euler_forward_continuous_adjoint_converges_to_maml_at_first_order(setup, backward):
    """Same K = T / alpha gradient-descent steps forward (euler, h = alpha); only the backward
    sweep differs from MAML's exact discrete adjoint, so the error is O(alpha)."""
    m, problem, theta = setup
    errors = []
    for alpha in STEPS:
        K = round(T / alpha)
        exact = ref.maml_grad(m, theta, problem.support, problem.query, K, alpha)
        cfg = dict(forward="euler", backward=backward, h=None, reg=0.0)
        r = build("amaml", cfg, K, alpha)(theta, problem)
        assert r.grad.dtype == D and r.stats["nfe"] == K and r.stats["states"] == K + 1
        # the forward pass is MAML's inner loop exactly: the final states (hence the query losses) agree
        expect_loss = ref.meta_loss(m, theta, problem.support, problem.query, K, alpha)
        assert torch.allclose(r.query_loss, expect_loss, rtol=1e-12, atol=0)
        errors.append(ref.rel(r.grad, exact))
    observed = _orders(errors)
    msg = f"backward={backward}: errors {errors}, observed orders {observed}"
    assert errors[0] < 0.1, msg                          # in the asymptotic range, not a different answer
    assert errors[-1] > 1e-6, msg                        # not the discrete adjoint in disguise
    assert all(0.8 < o < 1.3 for o in observed), msg


@pytest.fixture(scope="module")
def proximal_flow_reference(setup):
    m, problem, theta = setup
    return ref.flow_grad(m, theta, problem.support, problem.query, T, reg=1.0)


def test_proximal_flow_reference_agrees_with_a_second_order_solve(setup, proximal_flow_reference):
    """The autograd-through-dopri5 reference with the proximal term against rk4 + heun at a
    small h (error ~ h^2 there): two independent routes to the same gradient."""
    _, problem, theta = setup
    cfg = dict(forward="rk4", backward="heun", h=0.0025, reg=1.0)
    fine = build("amaml", cfg, 40, 0.01)(theta, problem).grad
    err = ref.rel(fine, proximal_flow_reference)
    assert err < 5e-5, err


def test_released_variant_converges_to_the_proximal_flow_gradient_at_first_order(setup, proximal_flow_reference):
    """rk4 forward, explicit-Euler backward, reg = 1 (docs/protocol.md §5) as a whole, T fixed."""
    _, problem, theta = setup
    errors = []
    for h in STEPS:
        cfg = dict(forward="rk4", backward="euler", h=h, reg=1.0)
        r = build("amaml", cfg, 40, 0.01)(theta, problem)  # T = 40 * 0.01
        assert r.stats["nfe"] == 4 * round(T / h) and r.stats["hvp"] == round(T / h)
        errors.append(ref.rel(r.grad, proximal_flow_reference))
    observed = _orders(errors)
    msg = f"errors {errors}, observed orders {observed}"
    assert errors[0] < 0.1, msg
    assert all(0.8 < o < 1.3 for o in observed), msg
    # the proximal problem's gradient, not the plain flow's: dropping reg changes the answer by far more
    plain = build("amaml", dict(forward="rk4", backward="euler", h=STEPS[-1], reg=0.0), 40, 0.01)(theta, problem)
    assert ref.rel(plain.grad, proximal_flow_reference) > 10 * errors[-1], msg
