"""Every meta-gradient estimator against an independent float64 reference.

References (tests/reference.py) use plain autograd on a separately written
forward pass, finite differences, closed forms, or autograd through a tight
torchdiffeq solve; none uses the project's hand-derived derivatives.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import reference as ref
import torch

from adjoint_meta.estimators import InnerProblem, available, build
from adjoint_meta.interface import Data
from adjoint_meta.model import MLP

D = torch.float64
SIZES = [2, 6, 6, 1]
AMAML = dict(forward="euler", backward="discrete", h=None, rtol=1e-5, atol=1e-6, reg=0.0)


@pytest.fixture(scope="module")
def setup(small_mlp_problem):
    return small_mlp_problem


def grad_of(name, cfg, steps, alpha, theta, problem, seed=0):
    return build(name, cfg, steps, alpha, seed).__call__(theta, problem)


# ---------------------------------------------------------------- exact MAML
def test_discrete_adjoint_equals_unrolled_autograd(setup):
    m, problem, theta = setup
    K, alpha = 30, 0.05
    expect = ref.maml_grad(m, theta, problem.support, problem.query, K, alpha)
    assert ref.rel(grad_of("maml_adjoint", {}, K, alpha, theta, problem).grad, expect) < 1e-10
    assert ref.rel(grad_of("maml", {}, K, alpha, theta, problem).grad, expect) < 1e-10
    # A-MAML with an Euler forward at h = alpha and the discrete adjoint *is* MAML
    am = grad_of("amaml", AMAML, K, alpha, theta, problem)
    assert ref.rel(am.grad, expect) < 1e-10 and am.stats["nfe"] == K


@pytest.mark.parametrize("name, cfg", [
    ("maml_adjoint", {}),
    ("tbptt", {"window": 16}),  # longer than a block of states linearized together
    ("amaml", AMAML),
    ("amaml", dict(AMAML, forward="rk4", backward="heun", reg=0.5)),
    ("amaml", dict(AMAML, forward="euler", backward="euler", reg=0.5)),
])
def test_storing_linearizations_changes_nothing_but_speed(setup, name, cfg):
    _, problem, theta = setup
    a = grad_of(name, {**cfg, "store": "states"}, 20, 0.05, theta, problem)
    b = grad_of(name, {**cfg, "store": "linearizations"}, 20, 0.05, theta, problem)
    assert ref.rel(b.grad, a.grad) < 1e-13
    assert b.stats["stored_bytes"] > a.stats["stored_bytes"]


def test_stored_linearizations_drop_the_gradient(setup):
    """A stored linearization keeps what the backward products read, not the step's gradient
    (which would be one more parameter vector per state), also in a recomputed segment."""
    from adjoint_meta.estimators.core import Trajectory, descend, gd_step, stack
    _, problem, theta = setup
    for keep_every in (1, 4):
        traj = Trajectory(problem, "linearizations", keep_every, gd_step(0.05))
        descend(problem, stack(theta, problem.n_tasks), 12, 0.05, traj)
        lins = [traj.linearization(j) for j in range(11, -1, -1)]
        assert all(lin.grad is None for lin in lins)
        assert all(lin.grad is None for lin in traj.items.values() if not isinstance(lin, torch.Tensor))


def test_stored_linearizations_free_the_states(setup):
    """A stored linearization keeps its own copy of the weights a product reads and no view into
    the state, so the states themselves are freed (only the last one is kept)."""
    from adjoint_meta.estimators.core import Trajectory, descend, gd_step, stack
    m, problem, theta = setup
    traj = Trajectory(problem, "linearizations", 1, gd_step(0.05))
    descend(problem, stack(theta, problem.n_tasks), 12, 0.05, traj)
    state_bytes = problem.n_tasks * m.n_params * theta.element_size()
    for lin in traj.items.values():
        assert lin.u is None and lin.params[0] == (None, None)
        for W, b in lin.params[1:]:
            assert b is None and W.untyped_storage().nbytes() == W.numel() * W.element_size() < state_bytes
    # the stored bytes are the full linearization's less the state, plus the copied weights
    kept = sum(n_in * n_out for _, _, _, n_in, n_out in m.layers[1:])
    full = problem.linearize(stack(theta, problem.n_tasks), with_grad=False)
    assert traj.items[0].nbytes() == full.nbytes() - problem.n_tasks * (m.n_params - kept) * theta.element_size()
    assert traj.nbytes() == sum(lin.nbytes() for lin in traj.items.values())
    assert torch.equal(traj.state(11), traj._last)
    with pytest.raises(LookupError, match="state 3: a trajectory that stores linearizations keeps only the last"):
        traj.state(3)


def test_maml_equals_central_finite_differences(setup):
    m, problem, theta = setup
    K, alpha, eps = 12, 0.05, 1e-5
    g = grad_of("maml", {}, K, alpha, theta, problem).grad  # [B, P]
    gen = torch.Generator().manual_seed(7)
    for _ in range(4):
        v = torch.randn(theta.shape, generator=gen, dtype=D)
        plus = ref.meta_loss(m, theta + eps * v, problem.support, problem.query, K, alpha)
        minus = ref.meta_loss(m, theta - eps * v, problem.support, problem.query, K, alpha)
        fd = (plus - minus) / (2 * eps)
        assert torch.allclose(g @ v, fd, rtol=1e-7, atol=1e-10), (g @ v, fd)


def test_maml1_is_one_unrolled_step(setup):
    m, problem, theta = setup
    expect = ref.maml_grad(m, theta, problem.support, problem.query, 1, 0.05)
    assert ref.rel(grad_of("maml1", {}, 50, 0.05, theta, problem).grad, expect) < 1e-12


# ---------------------------------------------------------------- A-MAML
def _orders(errors: list[float]) -> list[float]:
    return [math.log2(a / b) for a, b in zip(errors[:-1], errors[1:])]


@pytest.fixture(scope="module")
def flow_reference(setup):
    m, problem, theta = setup
    T = 0.4
    return T, ref.flow_grad(m, theta, problem.support, problem.query, T)


@pytest.mark.parametrize("forward, backward, order", [
    ("dopri5", "heun", 2.0),   # the paper's A-MAML
    ("rk4", "heun", 2.0),
    ("rk4", "euler", 1.0),     # the released code's backward scheme
])
def test_amaml_converges_to_the_flow_gradient(setup, flow_reference, forward, backward, order):
    """Relative error vs the exact gradient of the gradient flow shrinks like h^order."""
    m, problem, theta = setup
    T, expect = flow_reference
    errors = []
    for h in (0.04, 0.02, 0.01, 0.005):
        cfg = dict(forward=forward, backward=backward, h=h, rtol=1e-10, atol=1e-12, reg=0.0)
        r = grad_of("amaml", cfg, round(T / 0.01), 0.01, theta, problem)
        errors.append(ref.rel(r.grad, expect))
    observed = _orders(errors)
    assert errors[-1] < errors[0] / 2 ** (3 * order - 0.6)
    assert all(order - 0.25 < o < order + 0.3 for o in observed), (errors, observed)


def test_amaml_dopri5_counts_function_evaluations(setup):
    _, problem, theta = setup
    r = grad_of("amaml", dict(forward="dopri5", backward="heun", h=None, rtol=1e-6, atol=1e-8, reg=0.0),
                20, 0.01, theta, problem)
    assert r.stats["nfe"] >= 6 and r.stats["states"] == 21
    loose = grad_of("amaml", dict(forward="dopri5", backward="heun", h=None, rtol=1e-3, atol=1e-4, reg=0.0),
                    20, 0.01, theta, problem)
    assert loose.stats["nfe"] <= r.stats["nfe"]


def test_amaml_proximal_term_discrete_is_exact(setup):
    """reg > 0 (the released code): theta is both the start and the anchor; the discrete
    adjoint must include the anchor's direct contribution."""
    m, problem, theta = setup
    K, alpha, reg = 25, 0.04, 1.0
    expect = ref.maml_grad(m, theta, problem.support, problem.query, K, alpha, reg=reg)
    r = grad_of("amaml", {**AMAML, "reg": reg}, K, alpha, theta, problem)
    assert ref.rel(r.grad, expect) < 1e-10


def test_amaml_proximal_term_continuous_converges(setup):
    m, problem, theta = setup
    T, reg = 0.4, 1.0
    expect = ref.flow_grad(m, theta, problem.support, problem.query, T, reg=reg)
    errors = []
    for h in (0.04, 0.02, 0.01):
        cfg = dict(forward="rk4", backward="heun", h=h, rtol=1e-8, atol=1e-10, reg=reg)
        errors.append(ref.rel(grad_of("amaml", cfg, 40, 0.01, theta, problem).grad, expect))
    assert all(1.7 < o < 2.3 for o in _orders(errors)), errors


# ---------------------------------------------------------------- iMAML
def test_imaml_equals_closed_form_on_quadratic_inner_loss():
    """Linear model => L_tr(u) = (Xu - y)^T W (Xu - y) is quadratic with H = 2 X^T W X; at the
    minimizer phi* of L_tr + lam/2 |u - theta|^2 the implicit gradient is (I + H/lam)^{-1} grad L_val(phi*),
    which also equals the true derivative of L_val(phi*(theta))."""
    m = MLP([3, 1], "tanh")
    support, query = ref.problem_data([3, 1], B=2, n_support=6, n_query=9, seed=3)
    theta = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=D)
    lam = 1.0
    est = build("imaml", {"lam": lam, "cg_steps": 8}, 3000, 0.05)
    r = est(theta, InnerProblem(m, support, query))
    for b in range(2):
        X = torch.cat([support.x[b], torch.ones(6, 1, dtype=D)], 1)
        W = torch.diag(support.w[b])
        H = 2 * X.T @ W @ X
        A = H + lam * torch.eye(4, dtype=D)
        th = theta.clone().requires_grad_(True)
        phi = torch.linalg.solve(A, 2 * X.T @ W @ support.y[b] + lam * th)
        val = ref.loss(m, phi, query, b)
        (true_grad,) = torch.autograd.grad(val, th)
        closed = torch.linalg.solve(torch.eye(4, dtype=D) + H / lam, _val_grad(m, phi.detach(), query, b))
        assert ref.rel(r.grad[b], closed) < 1e-8
        assert ref.rel(r.grad[b], true_grad) < 1e-8


def _val_grad(m, phi, query, b):
    p = phi.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(ref.loss(m, p, query, b), p)
    return g


# ---------------------------------------------------------------- ES
def test_es_approaches_the_true_gradient():
    """Antithetic Gaussian ES is unbiased for the sigma-smoothed gradient; for a smooth J its error
    satisfies E|g_hat - g|^2 ~ (P + 1) |g|^2 / N, so the relative error is about sqrt((P+1)/N)."""
    sizes = [2, 3, 1]
    m = MLP(sizes, "tanh")
    support, query = ref.problem_data(sizes, B=1, n_support=8, n_query=8, seed=5)
    theta = m.init(torch.Generator().manual_seed(1), D)
    K, alpha = 5, 0.05
    true = ref.maml_grad(m, theta, support, query, K, alpha)
    P = theta.numel()
    errs = {}
    for N in (400, 40000):
        g = build("es", {"directions": N, "sigma": 1e-4}, K, alpha, seed=11)(theta, InnerProblem(m, support, query))
        errs[N] = ref.rel(g.grad, true)
        assert errs[N] < 3 * math.sqrt((P + 1) / N) + 1e-4, (N, errs[N])
    assert errs[40000] < errs[400]


# ---------------------------------------------------------------- first-order and truncated
def test_fomaml_reptile_tbptt_match_their_definitions(setup):
    m, problem, theta = setup
    K, alpha, M = 15, 0.05, 5
    for b in range(problem.n_tasks):
        th = theta.clone().requires_grad_(True)
        phi = ref.inner_loop(m, th, problem.support, b, K, alpha, create_graph=False).detach()
        fomaml = _val_grad(m, phi, problem.query, b)
        assert ref.rel(grad_of("fomaml", {}, K, alpha, theta, problem).grad[b], fomaml) < 1e-12
        assert ref.rel(grad_of("reptile", {}, K, alpha, theta, problem).grad[b], theta - phi) < 1e-12
        # truncated: exact gradient of L_val(phi_K) with respect to u_{K-M}
        mid = ref.inner_loop(m, th, problem.support, b, K - M, alpha, create_graph=False).detach()
        mid.requires_grad_(True)
        end = ref.inner_loop(m, mid, problem.support, b, M, alpha)
        (tb,) = torch.autograd.grad(ref.loss(m, end, problem.query, b), mid)
        assert ref.rel(grad_of("tbptt", {"window": M}, K, alpha, theta, problem).grad[b], tb) < 1e-10
    full = grad_of("tbptt", {"window": K}, K, alpha, theta, problem).grad
    assert ref.rel(full, ref.maml_grad(m, theta, problem.support, problem.query, K, alpha)) < 1e-10


def test_maml_fo_is_first_order_maml_through_maml_steps(setup):
    """maml_fo: K/10 plain GD steps from theta, then grad L_val at the end (a hand-written float64
    reference); the same as FOMAML at that step count, and not MAML's exact gradient, which has the
    second-order terms (I - alpha H) of every step."""
    from adjoint_meta import config
    m, problem, theta = setup
    K, alpha = 50, 0.05
    k = config.inner_steps("maml_fo", K, K // 10)
    assert k == 5 == config.inner_steps("maml", K, K // 10) and config.inner_steps("maml_adjoint", K, K // 10) == K
    expect = ref.first_order_maml_grad(m, theta, problem.support, problem.query, k, alpha)
    r = grad_of("maml_fo", {}, k, alpha, theta, problem)
    assert ref.rel(r.grad, expect) < 1e-12
    assert torch.equal(r.grad, grad_of("fomaml", {}, k, alpha, theta, problem).grad)
    exact = ref.maml_grad(m, theta, problem.support, problem.query, k, alpha)
    assert ref.rel(grad_of("maml", {}, k, alpha, theta, problem).grad, exact) < 1e-10
    assert ref.rel(r.grad, exact) > 1e-3  # the second-order terms matter
    # with no inner step the Jacobian is the identity and the two coincide
    assert ref.rel(grad_of("maml_fo", {}, 0, alpha, theta, problem).grad,
                   ref.maml_grad(m, theta, problem.support, problem.query, 0, alpha)) < 1e-12


# ---------------------------------------------------------------- one interface
@pytest.mark.parametrize("name", available())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_estimator_shares_the_interface(name, dtype):
    m = MLP([4, 5, 1], "tanh")
    g = torch.Generator().manual_seed(0)
    B = 3
    mk = lambda n: Data(torch.randn(B, n, 4, generator=g).to(dtype), torch.randn(B, n, generator=g).to(dtype),  # noqa: E731
                        torch.full((B, n), 1.0 / n, dtype=dtype))
    problem = InnerProblem(m, mk(5), mk(6))
    theta = m.init(g, dtype)
    r = build(name, {}, 6, 0.05, seed=1)(theta, problem)  # the hyper-parameters' declared defaults
    assert r.grad.shape == (B, m.n_params) and r.grad.dtype == dtype and torch.isfinite(r.grad).all()
    assert r.query_loss.shape == (B,) and torch.isfinite(r.query_loss).all()
    assert np.isfinite(list(r.stats.values())).all()


def test_unknown_estimator_names_allowed_values():
    with pytest.raises(ValueError, match="allowed values: amaml, es, fomaml"):
        build("maml2", {}, 1, 0.1)


# ---------------------------------------------------------------- checkpointing (memory ~ sqrt(K))
@pytest.mark.parametrize("name, cfg", [
    ("maml_adjoint", {"store": "states"}),
    ("maml_adjoint", {"store": "linearizations"}),
    ("tbptt", {"window": 17, "store": "states"}),
    ("amaml", AMAML),
    ("amaml", dict(AMAML, forward="rk4", backward="heun", reg=0.5)),
    ("amaml", dict(AMAML, forward="euler", backward="euler", reg=0.5)),
])
@pytest.mark.parametrize("keep_every", [3, 7, "sqrt"])
def test_checkpointed_trajectories_give_the_same_gradient(setup, name, cfg, keep_every):
    _, problem, theta = setup
    full = grad_of(name, {**cfg, "keep_every": 1}, 40, 0.05, theta, problem)
    ckpt = grad_of(name, {**cfg, "keep_every": keep_every}, 40, 0.05, theta, problem)
    assert ref.rel(ckpt.grad, full.grad) < 1e-12


def test_checkpointing_memory_grows_like_sqrt_k(setup):
    """Kept states K / c plus one recomputed segment of c linearizations: ~ sqrt(K) at c = sqrt(K)."""
    _, problem, theta = setup
    mem = {}
    for K in (100, 400, 1600):
        full = grad_of("maml_adjoint", {"store": "states", "keep_every": 1}, K, 0.01, theta, problem)
        ckpt = grad_of("maml_adjoint", {"store": "states", "keep_every": "sqrt"}, K, 0.01, theta, problem)
        assert ref.rel(ckpt.grad, full.grad) < 1e-12
        mem[K] = (full.stats["stored_bytes"], ckpt.stats["stored_bytes"])
    # linear: one parameter vector per task and stored state (plus a block of linearizations, constant in K)
    state_bytes = problem.n_tasks * theta.numel() * theta.element_size()
    assert (mem[1600][0] - mem[100][0]) / 1500 == pytest.approx(state_bytes, rel=1e-9)
    assert (mem[1600][0] - mem[400][0]) / 1200 == pytest.approx(state_bytes, rel=1e-9)
    assert 3.0 < mem[1600][1] / mem[100][1] < 5.0                              # ~ sqrt(16) = 4
    assert mem[1600][1] < mem[1600][0] / 3


def test_checkpointed_dopri5_is_within_its_tolerance(setup):
    _, problem, theta = setup
    cfg = dict(forward="dopri5", backward="heun", h=None, rtol=1e-9, atol=1e-11, reg=0.0)
    full = grad_of("amaml", {**cfg, "keep_every": 1}, 40, 0.01, theta, problem)
    ckpt = grad_of("amaml", {**cfg, "keep_every": "sqrt"}, 40, 0.01, theta, problem)
    assert ref.rel(ckpt.grad, full.grad) < 1e-6


# ---------------------------------------------------------------- inference mode
@pytest.mark.parametrize("name", available())
def test_inference_mode_changes_nothing_but_speed(name):
    """Estimators without autograd run in inference mode; their result is the one computed with
    autograd's bookkeeping on, and the data they used still serves unrolled MAML afterwards."""
    m = MLP(SIZES, "tanh")
    support, query = ref.problem_data(SIZES, B=3, n_support=10, n_query=12, seed=3)
    problem, theta = InnerProblem(m, support, query), m.init(torch.Generator().manual_seed(0), D)
    cfg = AMAML if name == "amaml" else {}
    fast = build(name, cfg, 8, 0.05, seed=2)(theta, problem)
    plain = build(name, cfg, 8, 0.05, seed=2).estimate(theta, problem)
    uses_autograd = build(name, cfg, 8, 0.05).uses_autograd
    assert fast.grad.is_inference() is not uses_autograd
    assert torch.equal(fast.grad, plain.grad) and torch.equal(fast.query_loss, plain.query_loss)
    after = build("maml", {}, 8, 0.05)(theta, problem).grad  # same Data, autograd through it
    assert ref.rel(after, ref.maml_grad(m, theta, support, query, 8, 0.05)) < 1e-10


# ---------------------------------------------------------------- one-hot inputs
@pytest.mark.parametrize("name", available())
def test_one_hot_lookups_give_every_estimator_the_dense_gradient(name):
    """Collaborative-filtering data carries its items, and the first layer then uses row lookups;
    every estimator gets the gradient it gets from the same one-hot rows as dense inputs.  The
    lookups are first made inside inference mode and then serve unrolled MAML with autograd."""
    sizes, g = [7, 5, 4, 1], torch.Generator().manual_seed(4)
    m = MLP(sizes, "tanh")

    def pair(n):
        items = torch.randint(0, sizes[0], (3, n), generator=g)
        x = torch.nn.functional.one_hot(items, sizes[0]).to(D)
        y, w = torch.randn(3, n, generator=g, dtype=D), torch.full((3, n), 1.0 / n, dtype=D)
        return Data(x, y, w), Data(x, y, w, items)

    (s_dense, s_items), (q_dense, q_items) = pair(9), pair(6)
    theta = m.init(torch.Generator().manual_seed(0), D)
    cfg = dict(AMAML, forward="dopri5", backward="heun") if name == "amaml" else {}
    with_items = build(name, cfg, 12, 0.05, seed=2)(theta, InnerProblem(m, s_items, q_items))
    dense = build(name, cfg, 12, 0.05, seed=2)(theta, InnerProblem(m, s_dense, q_dense))
    # equal outright (random_init's zero direction has no relative error) or to rounding
    assert torch.equal(with_items.grad, dense.grad) or ref.rel(with_items.grad, dense.grad) < 1e-12
    unrolled = build("maml", {}, 12, 0.05)(theta, InnerProblem(m, s_items, q_items)).grad
    assert ref.rel(unrolled, ref.maml_grad(m, theta, s_dense, q_dense, 12, 0.05)) < 1e-10
