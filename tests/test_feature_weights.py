"""The feature-weights problem (docs/feature_weights.md) against its closed form, in float64.

One training point where the true feature and its alias take the same value p; orthonormal features
at test.  K gradient-descent steps from w = 0 with step sizes alpha_k = c_k^2 converge to the
minimum-norm fit w_k = c_k^2 / |c|^2, whose expected test error is E = c_1^4 / |c|^4, with

    dE/dc_0 = -4 c_0 c_1^4 / |c|^6,    dE/dc_1 = 4 c_0^2 c_1^3 / |c|^6,

and dE/dalpha_k = (dE/dc_k) / (2 c_k).  The exact adjoint's dJ/dlog(alpha_k) at large K, through the
public API with the initialization held at zero, must equal 2 alpha_k dE/dalpha_k = c_k dE/dc_k
(the query loss J, a mean squared error over two orthonormal test points, is 2 E)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from adjoint_meta.api import MetaLearner, Tasks

D = torch.float64
P = 0.1  # the features' value at the training point: (1 - 2 p^2 |c|^2)^K is below 1e-19 at K = 5,000


def closed_form(c0: float, c1: float) -> tuple[float, float, float]:
    r2 = c0 ** 2 + c1 ** 2
    return c1 ** 4 / r2 ** 2, -4 * c0 * c1 ** 4 / r2 ** 3, 4 * c0 ** 2 * c1 ** 3 / r2 ** 3


def feature_tasks(scale: float = 1.0) -> Tasks:
    support = (torch.tensor([[[P, P]]], dtype=D), torch.tensor([[scale * P]], dtype=D))
    query = (torch.tensor([[[2 ** 0.5, 0.0], [0.0, 2 ** 0.5]]], dtype=D), torch.tensor([[scale * 2 ** 0.5, 0.0]],
                                                                                       dtype=D))
    return Tasks(support, query)


@pytest.mark.parametrize("c,hyper", [((0.6, 0.3), {}), ((0.5, 0.75 ** 0.5), {"keep_every": "sqrt"}),
                                     ((1.2, 0.9), {"store": "states"})])
def test_exact_adjoint_meta_gradient_equals_the_closed_form(c, hyper):
    net = nn.Linear(2, 1, bias=False).to(D)
    nn.init.zeros_(net.weight)
    learner = MetaLearner(net, "mse", "maml_adjoint", steps=5000, alpha=1.0, learn_rate="parameter",
                          learn_init=False, **hyper)
    with torch.no_grad():
        learner.log_rates.copy_(2 * torch.tensor(c, dtype=D).log())  # alpha_k = c_k^2
    result = learner.meta_gradient(feature_tasks())
    E, dE_dc0, dE_dc1 = closed_form(*c)
    dE_dalpha = torch.tensor([dE_dc0 / (2 * c[0]), dE_dc1 / (2 * c[1])], dtype=D)
    alpha = torch.tensor(c, dtype=D) ** 2
    torch.testing.assert_close(result.loss, torch.tensor(2 * E, dtype=D), rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(result.rate_grad, 2 * alpha * dE_dalpha, rtol=1e-8, atol=1e-14)
    assert all(p.grad is None for p in net.parameters())


def test_a_short_horizon_is_not_the_minimum_norm_learner():
    """The agreement above needs the long horizon: at K = 20 the fit has not converged and the
    meta-gradient is far from the closed form (the test above can fail)."""
    net = nn.Linear(2, 1, bias=False).to(D)
    nn.init.zeros_(net.weight)
    learner = MetaLearner(net, "mse", "maml_adjoint", steps=20, alpha=1.0, learn_rate="parameter", learn_init=False)
    with torch.no_grad():
        learner.log_rates.copy_(2 * torch.tensor([0.6, 0.3], dtype=D).log())
    result = learner.meta_gradient(feature_tasks())
    _, dE_dc0, dE_dc1 = closed_form(0.6, 0.3)
    expected = torch.tensor([0.6 * dE_dc0, 0.3 * dE_dc1], dtype=D)
    assert float((result.rate_grad - expected).norm()) > 0.1 * float(expected.norm())
