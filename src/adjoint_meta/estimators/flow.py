"""Forward solvers of the gradient flow  du/dt = -grad L(u),  u(0) = theta.

Each returns the states on the grid t_j = j h (j = 0..n, n = T/h) and the number
of gradient evaluations (function evaluations, NFE) it spent.

* ``euler``: u_{j+1} = u_j - h grad L(u_j): gradient descent with step h (n NFE).
* ``rk4``:   classical fourth-order Runge-Kutta with fixed step h (4n NFE), as the
             authors' released code runs it.
* ``dopri5``: torchdiffeq's adaptive Dormand-Prince 5(4) with rtol/atol, states
             read off its dense output on the grid (the paper's RK45).  Tasks are
             solved jointly; the error norm is the largest per-task RMS norm, so
             every task meets the tolerance on its own.
"""
from __future__ import annotations

import torch
from torchdiffeq import odeint

from adjoint_meta.estimators.core import InnerProblem

Tensor = torch.Tensor


class FlowError(RuntimeError):
    """The forward solve failed (step size underflow, too many steps)."""


def _max_task_rms(x: Tensor) -> Tensor:
    return x.pow(2).mean(dim=-1).sqrt().max()


def solve(problem: InnerProblem, u0: Tensor, n: int, h: float, method: str,
          rtol: float = 1e-5, atol: float = 1e-6, max_steps: int = 100_000) -> tuple[list[Tensor], int]:
    if method == "euler":
        states = [u0]
        for _ in range(n):
            states.append(states[-1] - h * problem.grad(states[-1]))
        return states, n
    if method == "rk4":
        states = [u0]
        f = lambda u: -problem.grad(u)  # noqa: E731
        for _ in range(n):
            u = states[-1]
            k1 = f(u)
            k2 = f(u + 0.5 * h * k1)
            k3 = f(u + 0.5 * h * k2)
            k4 = f(u + h * k3)
            states.append(u + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4))
        return states, 4 * n
    if method == "dopri5":
        nfe = 0

        def f(t: Tensor, u: Tensor) -> Tensor:
            nonlocal nfe
            nfe += 1
            return -problem.grad(u)

        grid = torch.arange(n + 1, dtype=torch.float64) * h
        try:
            sol = odeint(f, u0, grid.to(u0.dtype).to(u0.device), rtol=rtol, atol=atol, method="dopri5",
                         options={"norm": _max_task_rms, "max_num_steps": max_steps})
        except (AssertionError, RuntimeError) as exc:
            raise FlowError(f"dopri5 forward solve failed after {nfe} evaluations: {exc}") from exc
        return list(sol.unbind(0)), nfe
    raise ValueError(f"unknown forward solver {method!r}; allowed values: euler, rk4, dopri5")
