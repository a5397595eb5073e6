"""Learned inner step sizes: dJ/dalpha by the reverse sweep and by forward mode against autograd
through the unrolled loop (float64), theta's meta-gradient unchanged, and selection ES on a
quadratic whose best step size is known in closed form."""
from __future__ import annotations

import pytest
import reference as ref
import torch

from adjoint_meta import backends
from adjoint_meta.estimators import InnerProblem, build
from adjoint_meta.interface import Data
from adjoint_meta.model import MLP
from adjoint_meta.rates import Layout, SelectionEs, forward_rate_grad

D = torch.float64
SIZES = [2, 6, 6, 1]
K, ALPHA = 25, 0.05


@pytest.fixture(scope="module")
def setup(small_mlp_problem):
    return small_mlp_problem


def _log_alpha(layout: Layout, seed: int = 3) -> torch.Tensor:
    """Rates spread around ALPHA (so that a wrong group shows)."""
    g = torch.Generator().manual_seed(seed)
    return (ALPHA * (0.5 + torch.rand(layout.n, generator=g, dtype=D))).log()


def _estimator(cfg, model, theta):
    est = build("maml_adjoint", cfg, K, ALPHA)
    return est, est.meta_init(theta, model)


@pytest.mark.parametrize("learn", ["scalar", "layer", "parameter"])
@pytest.mark.parametrize("store, keep_every", [("states", 1), ("linearizations", 1), ("states", "sqrt")])
def test_the_reverse_sweep_gives_the_exact_rate_gradient(setup, learn, store, keep_every):
    m, problem, theta = setup
    est, phi = _estimator({"learn_rate": learn, "store": store, "keep_every": keep_every}, m, theta)
    log_alpha = _log_alpha(est.layout)
    phi = torch.cat([theta, log_alpha])
    expect_theta, expect_rate = ref.rated_grads(m, theta, problem.support, problem.query, K, est.layout.group,
                                                log_alpha)
    grad = est(phi, problem).grad
    assert grad.shape == (3, m.n_params + est.layout.n)
    assert ref.rel(grad[:, :m.n_params], expect_theta) < 1e-10
    assert ref.rel(grad[:, m.n_params:], expect_rate) < 1e-10


@pytest.mark.parametrize("learn", ["scalar", "layer"])
def test_forward_mode_agrees_with_autograd_and_with_the_reverse_sweep(setup, learn):
    m, problem, theta = setup
    layout = Layout.of(learn, m)
    log_alpha = _log_alpha(layout)
    _, expect = ref.rated_grads(m, theta, problem.support, problem.query, K, layout.group, log_alpha)
    with torch.inference_mode():
        forward, loss = forward_rate_grad(problem, theta, K, layout, log_alpha)
    assert ref.rel(forward, expect) < 1e-10
    est, _ = _estimator({"learn_rate": learn, "rate_method": "forward"}, m, theta)
    by_estimator = est(torch.cat([theta, log_alpha]), problem).grad[:, m.n_params:]
    est_rev, _ = _estimator({"learn_rate": learn}, m, theta)
    reverse = est_rev(torch.cat([theta, log_alpha]), problem).grad[:, m.n_params:]
    assert ref.rel(by_estimator, forward) < 1e-14 and ref.rel(forward, reverse) < 1e-10


def test_theta_meta_gradient_is_unchanged_at_a_fixed_rate(setup):
    """Learning the rates adds columns; at alpha = the experiment's alpha the theta columns are the
    fixed-rate estimator's, and the layer and parameter layouts put each parameter in its layer."""
    m, problem, theta = setup
    fixed = build("maml_adjoint", {}, K, ALPHA)(theta, problem).grad
    for learn in ("scalar", "layer", "parameter"):
        est, phi = _estimator({"learn_rate": learn}, m, theta)
        assert phi.numel() == m.n_params + {"scalar": 1, "layer": 3, "parameter": m.n_params}[learn]
        assert ref.rel(est(phi, problem).grad[:, :m.n_params], fixed) < 1e-12
        assert est.rates(phi)["alpha"] == pytest.approx([ALPHA] * est.layout.n)
    assert m.layer_index().tolist() == [0] * 18 + [1] * 42 + [2] * 7


@pytest.mark.parametrize("method", ["reverse", "forward"])
def test_the_torch_func_backend_learns_the_same_rates(setup, method):
    m, problem, theta = setup
    fm = backends.build(SIZES[0], SIZES[1:-1], "tanh", "torch_func")
    assert torch.equal(fm.layer_index(), m.layer_index())
    func_problem = InnerProblem(fm, problem.support, problem.query)
    cfg = {"learn_rate": "layer", "rate_method": method}
    est, phi = _estimator(cfg, m, theta)
    phi = torch.cat([theta, _log_alpha(est.layout)])
    est_f, _ = _estimator(cfg, fm, theta)
    assert ref.rel(est_f(phi, func_problem).grad, est(phi, problem).grad) < 1e-10
    if method == "forward":  # the tangents went through torch.func.jvp of grad
        assert fm._forward_ok is True


def test_forward_mode_steps_agree_on_both_backends_with_and_without_jvp(setup, monkeypatch):
    """One forward-mode step (the gradient and the products with several tangents): the MLP's
    directional derivatives, torch.func's jvp of grad, and its fallback (a torch whose vmap cannot
    batch the jvp, forced here) give the same numbers, the proximal term included."""
    m, problem, theta = setup
    g = torch.Generator().manual_seed(5)
    u = theta + 0.1 * torch.randn(problem.n_tasks, m.n_params, generator=g, dtype=D)
    vs = [torch.randn(problem.n_tasks, m.n_params, generator=g, dtype=D) for _ in range(3)]
    prox = InnerProblem(m, problem.support, problem.query, reg=0.7, anchor=theta)
    lin = prox.linearize(u)
    expect = [lin.grad, *(prox.hvp_at(lin, v) for v in vs)]
    for fallback in (False, True):
        fm = backends.build(SIZES[0], SIZES[1:-1], "tanh", "torch_func")
        if fallback:
            monkeypatch.setattr(type(fm), "_batches_jvp", lambda self, probe=None: False)
        for model in (m, fm):
            got_g, got_hv = InnerProblem(model, problem.support, problem.query, reg=0.7,
                                         anchor=theta).grad_and_hvps(u, vs)
            for got, want in zip([got_g, *got_hv], expect):
                assert ref.rel(got, want) < 1e-12
        assert fm._forward_ok is (not fallback)


# ---------------------------------------------------------------- A-MAML
AMAML = dict(forward="euler", backward="discrete", h=None, rtol=1e-5, atol=1e-6, reg=0.0)


def _amaml(cfg, model, theta, log_alpha=None):
    est = build("amaml", {**AMAML, **cfg}, K, ALPHA)
    phi = est.meta_init(theta, model)
    return est, phi if log_alpha is None else torch.cat([theta, log_alpha])


@pytest.mark.parametrize("learn", ["scalar", "layer", "parameter"])
def test_amaml_with_an_euler_forward_and_the_discrete_adjoint_learns_the_rates_exactly(setup, learn):
    """Euler steps of h = alpha on the flow of D = a / alpha are gradient descent with rates a."""
    m, problem, theta = setup
    est, _ = _amaml({"learn_rate": learn}, m, theta)
    log_alpha = _log_alpha(est.layout)
    phi = torch.cat([theta, log_alpha])
    expect = torch.cat(ref.rated_grads(m, theta, problem.support, problem.query, K, est.layout.group, log_alpha), 1)
    assert ref.rel(est(phi, problem).grad, expect) < 1e-10


@pytest.mark.parametrize("forward, backward", [("rk4", "heun"), ("rk4", "euler"), ("dopri5", "heun")])
def test_amaml_rate_gradients_converge_to_the_flows(setup, forward, backward):
    """Against autograd through a tight solve of du/dt = -(a / alpha) grad L: the error shrinks as the
    grid h does, at the order of the backward scheme (Heun 2, Euler 1)."""
    m, problem, theta = setup
    layout = Layout.of("layer", m)
    log_alpha = _log_alpha(layout)
    T = K * ALPHA
    expect_theta, expect_rate = ref.flow_rated_grads(m, theta, problem.support, problem.query, T, layout.group,
                                                     log_alpha, ALPHA)
    errors = []
    for h in (ALPHA, ALPHA / 2):
        est, phi = _amaml({"learn_rate": "layer", "forward": forward, "backward": backward, "h": h,
                           "rtol": 1e-10, "atol": 1e-10}, m, theta, log_alpha)
        grad = est(phi, problem).grad
        errors.append((ref.rel(grad[:, :m.n_params], expect_theta), ref.rel(grad[:, m.n_params:], expect_rate)))
    order = 2 if backward == "heun" else 1
    for which in (0, 1):  # theta, then the rates
        assert errors[1][which] < errors[0][which] / 2 ** (order - 0.5), errors
    assert errors[1][1] < (3e-4 if order == 2 else 2e-2), errors


def test_amaml_refuses_learned_rates_with_the_proximal_term():
    from adjoint_meta.estimators.adjoint import Amaml
    hp = Amaml.hyper_of({"learn_rate": "scalar", "reg": 1.0})
    assert any("estimators.x.reg: learned step sizes" in msg for msg in Amaml.checks(hp, "estimators.x", {}, ALPHA))


# ---------------------------------------------------------------- selection ES
def _quadratic(h: float, n: int = 8) -> tuple[InnerProblem, torch.Tensor]:
    """A linear model y = w x + b on inputs +-1 (balanced, weights h / (2n)): its squared loss has
    Hessian h I, the targets are exactly linear, and the query set is the support set, so after K
    steps the query loss is (1 - alpha h)^(2K) times the initial one: smallest, zero, at alpha = 1/h."""
    m = MLP([1, 1])
    x = torch.tensor([1.0, -1.0] * (n // 2), dtype=D).view(1, n, 1)
    data = Data(x, 3.0 * x[..., 0] + 1.0, torch.full((1, n), h / (2 * n), dtype=D))
    return InnerProblem(m, data, data), torch.zeros(2, dtype=D)


def test_the_quadratic_has_its_best_rate_at_one_over_h():
    problem, theta = _quadratic(h=4.0)
    grid = torch.linspace(0.05, 0.45, 81, dtype=D)
    from adjoint_meta.rates import selection_losses
    with torch.inference_mode():
        losses = selection_losses(problem, theta, 3, grid)
    assert float(grid[losses.argmin()]) == pytest.approx(0.25, abs=0.006)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_selection_es_moves_the_mean_toward_the_best_rate(seed):
    """From alpha = 0.1 with a spread that reaches the best rate 0.25, fifteen generations bring the
    mean within a fifth of its starting distance; the spread collapses meanwhile (the elite's
    variance shrinks every generation), which is why a start far from the optimum with a narrow
    spread stalls short of it."""
    problem, theta = _quadratic(h=4.0)
    es = SelectionEs(mu=0.1, sigma=0.1, population=16, elite=4)
    gen = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        for _ in range(15):
            es.step(problem, theta, 3, gen)
    assert abs(es.mu - 0.25) < 0.2 * abs(0.1 - 0.25), es
    assert es.sigma < 1e-3


def test_the_es_estimator_takes_theta_gradients_at_its_mean(setup):
    m, problem, theta = setup
    est, phi = _estimator({"learn_rate": "scalar", "rate_method": "es", "es_population": 6, "es_elite": 2}, m, theta)
    assert phi.numel() == m.n_params
    mg = est(phi, problem)
    assert est.es.mu != ALPHA and est.rates(phi)["alpha"] == [est.es.mu]
    assert ref.rel(mg.grad, ref.maml_grad(m, theta, problem.support, problem.query, K, est.es.mu)) < 1e-10
    state = est.state_dict()
    again, _ = _estimator({"learn_rate": "scalar", "rate_method": "es", "es_population": 6, "es_elite": 2}, m, theta)
    again.load_state_dict(state)
    assert (again.es.mu, again.es.sigma) == (est.es.mu, est.es.sigma)
