"""The task-stacked MLP: hand-derived gradient and Hessian-vector product against autograd (float64)."""
from __future__ import annotations

import pytest
import torch

from adjoint_meta.backends import build as build_model
from adjoint_meta.interface import Data
from adjoint_meta.model import MLP

D = torch.float64


def _problem(sizes, B=4, N=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = MLP(sizes, "tanh")
    u = torch.randn(B, m.n_params, generator=g, dtype=D) * 0.5
    x = torch.randn(B, N, sizes[0], generator=g, dtype=D)
    y = torch.randn(B, N, generator=g, dtype=D)
    w = torch.rand(B, N, generator=g, dtype=D)
    w[:, -2:] = 0  # padding
    return m, u, Data(x, y, w)


def _reference(m: MLP, u: torch.Tensor, data: Data, v: torch.Tensor):
    """Per-task autograd through a plain forward pass written independently of model.py."""
    grads, hvps = [], []
    for b in range(u.shape[0]):
        ub = u[b].clone().requires_grad_(True)
        a, off = data.x[b], 0
        for i, (n_in, n_out) in enumerate(zip(m.sizes[:-1], m.sizes[1:])):
            W = ub[off:off + n_in * n_out].view(n_in, n_out)
            bias = ub[off + n_in * n_out: off + n_in * n_out + n_out]
            off += n_in * n_out + n_out
            a = a @ W + bias
            if i < len(m.sizes) - 2:
                a = getattr(torch, m.activation)(a)
        loss = (data.w[b] * (a.squeeze(-1) - data.y[b]) ** 2).sum()
        (g,) = torch.autograd.grad(loss, ub, create_graph=True)
        (hv,) = torch.autograd.grad(g @ v[b], ub)
        grads.append(g.detach())
        hvps.append(hv)
    return torch.stack(grads), torch.stack(hvps)


@pytest.mark.parametrize("sizes", [[2, 8, 8, 1], [3, 1], [5, 7, 1], [4, 6, 5, 3, 1]])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_grad_and_hvp_match_autograd(sizes, activation):
    m, u, data = _problem(sizes)
    m = MLP(sizes, activation)
    v = torch.randn_like(u)
    g_ref, hv_ref = _reference(m, u, data, v)
    loss, g = m.loss_and_grad(u, data)
    assert torch.allclose(g, g_ref, rtol=1e-12, atol=1e-12)
    assert torch.allclose(m.hvp(u, v, data), hv_ref, rtol=1e-11, atol=1e-11)
    assert torch.allclose(loss, m.loss(u, data))


def test_hvp_matches_double_backward_of_batched_loss():
    m, u, data = _problem([2, 16, 16, 1], B=6)
    v = torch.randn_like(u)
    uu = u.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(m.loss(uu, data).sum(), uu, create_graph=True)
    (hv,) = torch.autograd.grad((g * v).sum(), uu)
    assert torch.allclose(m.hvp(u, v, data), hv, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_autograd_through_the_gradient_pass_gives_the_hvp(activation):
    """Unrolled MAML differentiates the hand-written gradient pass, whose temporaries are partly
    updated in place: autograd through it must still give the Hessian-vector product."""
    m, u, data = _problem([3, 7, 6, 1], B=4)
    m = MLP([3, 7, 6, 1], activation)
    v = torch.randn_like(u)
    uu = u.clone().requires_grad_(True)
    (hv,) = torch.autograd.grad((m.grad(uu, data) * v).sum(), uu)
    assert torch.allclose(hv, m.hvp(u, v, data), rtol=1e-11, atol=1e-11)


def test_hvp_is_symmetric():
    m, u, data = _problem([3, 10, 10, 1])
    a, b = torch.randn_like(u), torch.randn_like(u)
    lhs = (a * m.hvp(u, b, data)).sum(1)
    rhs = (b * m.hvp(u, a, data)).sum(1)
    assert torch.allclose(lhs, rhs, rtol=1e-10)


def test_tasks_do_not_interact():
    m, u, data = _problem([2, 8, 1], B=3)
    g_all = m.grad(u, data)
    for b in range(3):
        one = Data(data.x[b:b + 1], data.y[b:b + 1], data.w[b:b + 1])
        assert torch.allclose(m.grad(u[b:b + 1], one), g_all[b:b + 1], rtol=1e-13)


def test_init_is_seeded_and_bounded():
    m = build_model(100, [40, 40], "tanh")
    assert m.n_params == 100 * 40 + 40 + 40 * 40 + 40 + 40 + 1
    a = m.init(torch.Generator().manual_seed(3))
    b = m.init(torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.dtype == torch.float32
    assert a[:4000].abs().max() <= 0.1 and a[4040:5640].abs().max() <= 40 ** -0.5


# -- one-hot inputs: the first layer as row lookups ------------------------------------------

def _onehot_problem(sizes, B=4, N=9, seed=1):
    m, u, dense = _problem(sizes, B, N, seed)
    items = torch.randint(0, sizes[0], (B, N), generator=torch.Generator().manual_seed(seed))
    items[0, :3] = 2  # an item seen several times by one task: its rows must add up
    x = torch.nn.functional.one_hot(items, sizes[0]).to(D)
    return m, u, Data(x, dense.y, dense.w), Data(x, dense.y, dense.w, items)


@pytest.mark.parametrize("sizes", [[12, 8, 8, 1], [10, 6, 1], [9, 5, 4, 3, 1]])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_one_hot_lookups_match_autograd(sizes, activation):
    m, u, dense, onehot = _onehot_problem(sizes)
    m = MLP(sizes, activation)
    assert m._lookup(onehot) is not None and m._lookup(dense) is None
    v = torch.randn_like(u)
    g_ref, hv_ref = _reference(m, u, dense, v)
    loss, g = m.loss_and_grad(u, onehot)
    assert torch.allclose(g, g_ref, rtol=1e-12, atol=1e-12)
    assert torch.allclose(loss, m.loss(u, dense), rtol=1e-13)
    assert torch.allclose(m.hvp(u, v, onehot), hv_ref, rtol=1e-11, atol=1e-11)
    with torch.inference_mode():
        lin = m.linearize(u, onehot)
        assert torch.allclose(m.hvp_at(lin.for_storage(), v, onehot), hv_ref, rtol=1e-11, atol=1e-11)
    # unrolled MAML differentiates through the pass with the lookups
    uu = u.clone().requires_grad_(True)
    (hv,) = torch.autograd.grad((m.grad(uu, onehot) * v).sum(), uu)
    assert torch.allclose(hv, hv_ref, rtol=1e-11, atol=1e-11)


def test_one_hot_items_travel_with_the_data_and_are_checked():
    m, u, dense, onehot = _onehot_problem([12, 8, 8, 1], B=3)
    twice = onehot.repeat(2)
    assert torch.equal(twice.items, onehot.items.repeat(2, 1))
    assert torch.allclose(m.grad(torch.cat([u, u]), twice), torch.cat([m.grad(u, dense)] * 2), rtol=1e-12)
    assert torch.equal(onehot.to("cpu", torch.float32).items, onehot.items)
    with pytest.raises(ValueError, match="Data.items must be a long tensor of shape \\(3, 9\\)"):
        Data(dense.x, dense.y, dense.w, onehot.items[:, :4])
    with pytest.raises(ValueError, match="Data.items must be a long tensor"):
        Data(dense.x, dense.y, dense.w, onehot.items.float())
