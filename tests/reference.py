"""Independent float64 references for the estimator tests.

Nothing here uses the project's hand-derived gradients: the network is a plain
per-task forward pass and every derivative comes from torch.autograd.
"""
from __future__ import annotations

import torch

from adjoint_meta.interface import Data
from adjoint_meta.model import MLP

D = torch.float64


def forward(sizes: list[int], activation: str, u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Prediction of one task's network with flat parameters ``u`` on inputs ``x [N, d]``."""
    a, off = x, 0
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = u[off:off + n_in * n_out].view(n_in, n_out)
        b = u[off + n_in * n_out: off + n_in * n_out + n_out]
        off += n_in * n_out + n_out
        a = a @ W + b
        if i < len(sizes) - 2:
            a = getattr(torch, activation)(a)
    return a.squeeze(-1)


def loss(m: MLP, u: torch.Tensor, data: Data, b: int) -> torch.Tensor:
    r = forward(m.sizes, m.activation, u, data.x[b]) - data.y[b]
    return (data.w[b] * r * r).sum()


def inner_loop(m: MLP, theta: torch.Tensor, support: Data, b: int, steps: int, alpha: float,
               reg: float = 0.0, anchor: torch.Tensor | None = None, create_graph: bool = True) -> torch.Tensor:
    """K gradient steps on L_tr (+ reg/2 |u - anchor|^2) from theta, differentiable when create_graph."""
    u = theta
    for _ in range(steps):
        val = loss(m, u, support, b)
        if reg:
            val = val + 0.5 * reg * ((u - anchor) ** 2).sum()
        (g,) = torch.autograd.grad(val, u, create_graph=create_graph)
        u = u - alpha * g
        if not create_graph:
            u = u.detach().requires_grad_(True)
    return u


def maml_grad(m: MLP, theta: torch.Tensor, support: Data, query: Data, steps: int, alpha: float,
              reg: float = 0.0) -> torch.Tensor:
    """Per-task exact gradient of L_val(phi_K(theta)) by autograd through the unrolled loop, [B, P]."""
    out = []
    for b in range(support.n_tasks):
        th = theta.detach().clone().requires_grad_(True)
        phi = inner_loop(m, th, support, b, steps, alpha, reg, th)
        (g,) = torch.autograd.grad(loss(m, phi, query, b), th)
        out.append(g)
    return torch.stack(out)


def rated_grads(m: MLP, theta: torch.Tensor, support: Data, query: Data, steps: int, group: torch.Tensor,
                log_alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task (dJ/dtheta [B, P], dJ/dlog_alpha [B, R]) by autograd through K steps
    u <- u - exp(log_alpha)[group] * g(u)."""
    g_theta, g_rate = [], []
    for b in range(support.n_tasks):
        th = theta.detach().clone().requires_grad_(True)
        la = log_alpha.detach().clone().requires_grad_(True)
        a, u = la.exp()[group], th
        for _ in range(steps):
            (g,) = torch.autograd.grad(loss(m, u, support, b), u, create_graph=True)
            u = u - a * g
        dt, dl = torch.autograd.grad(loss(m, u, query, b), (th, la))
        g_theta.append(dt)
        g_rate.append(dl)
    return torch.stack(g_theta), torch.stack(g_rate)


def first_order_maml_grad(m: MLP, theta: torch.Tensor, support: Data, query: Data, steps: int,
                          alpha: float) -> torch.Tensor:
    """Per-task first-order MAML, [B, P]: ``steps`` plain gradient-descent steps on L_tr from theta
    (no graph through them), then the gradient of L_val at the adapted parameters."""
    out = []
    for b in range(support.n_tasks):
        u = theta.detach().clone()
        for _ in range(steps):
            u = u.requires_grad_(True)
            (g,) = torch.autograd.grad(loss(m, u, support, b), u)
            u = (u - alpha * g).detach()
        u.requires_grad_(True)
        (g,) = torch.autograd.grad(loss(m, u, query, b), u)
        out.append(g)
    return torch.stack(out)


def meta_loss(m: MLP, theta: torch.Tensor, support: Data, query: Data, steps: int, alpha: float) -> torch.Tensor:
    """Per-task J_b(theta) = L_val(phi_K(theta)), [B], without building a graph."""
    vals = []
    for b in range(support.n_tasks):
        th = theta.detach().clone().requires_grad_(True)
        phi = inner_loop(m, th, support, b, steps, alpha, create_graph=False)
        vals.append(loss(m, phi.detach(), query, b))
    return torch.stack(vals)


def flow_grad(m: MLP, theta: torch.Tensor, support: Data, query: Data, T: float, reg: float = 0.0,
              rtol: float = 1e-12, atol: float = 1e-12) -> torch.Tensor:
    """Gradient of L_val(u(T)) for the exact gradient flow, by autograd *through* a tight dopri5 solve."""
    from torchdiffeq import odeint

    out = []
    for b in range(support.n_tasks):
        th = theta.detach().clone().requires_grad_(True)

        def f(t, u, b=b, th=th):
            with torch.enable_grad():
                uu = u if u.requires_grad else u.requires_grad_(True)
                val = loss(m, uu, support, b)
                if reg:
                    val = val + 0.5 * reg * ((uu - th) ** 2).sum()
                (g,) = torch.autograd.grad(val, uu, create_graph=True)
            return -g

        sol = odeint(f, th, torch.tensor([0.0, T], dtype=D), rtol=rtol, atol=atol, method="dopri5")
        (g,) = torch.autograd.grad(loss(m, sol[-1], query, b), th)
        out.append(g)
    return torch.stack(out)


def flow_rated_grads(m: MLP, theta: torch.Tensor, support: Data, query: Data, T: float, group: torch.Tensor,
                     log_alpha: torch.Tensor, alpha: float, rtol: float = 1e-12,
                     atol: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task (dJ/dtheta, dJ/dlog_alpha) of L_val(u(T)) for the flow du/dt = -(a / alpha) g(u),
    a = exp(log_alpha)[group], by autograd through a tight dopri5 solve."""
    from torchdiffeq import odeint

    g_theta, g_rate = [], []
    for b in range(support.n_tasks):
        th = theta.detach().clone().requires_grad_(True)
        la = log_alpha.detach().clone().requires_grad_(True)
        scale = la.exp()[group] / alpha

        def f(t, u, b=b, scale=scale):
            with torch.enable_grad():
                uu = u if u.requires_grad else u.requires_grad_(True)
                (g,) = torch.autograd.grad(loss(m, uu, support, b), uu, create_graph=True)
            return -scale * g

        sol = odeint(f, th, torch.tensor([0.0, T], dtype=D), rtol=rtol, atol=atol, method="dopri5")
        dt, dl = torch.autograd.grad(loss(m, sol[-1], query, b), (th, la))
        g_theta.append(dt)
        g_rate.append(dl)
    return torch.stack(g_theta), torch.stack(g_rate)


def problem_data(sizes: list[int], B: int, n_support: int, n_query: int, seed: int = 0,
                 scale: float = 1.0) -> tuple[Data, Data]:
    g = torch.Generator().manual_seed(seed)

    def make(n):
        x = torch.randn(B, n, sizes[0], generator=g, dtype=D)
        y = scale * torch.sin(x.sum(-1)) + 0.1 * torch.randn(B, n, generator=g, dtype=D)
        return Data(x, y, torch.full((B, n), 1.0 / n, dtype=D))

    return make(n_support), make(n_query)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())
