"""Forward solvers of the gradient flow  du/dt = -grad L(u),  u(0) = theta.

Each records the states on the grid t_j = j h (j = 0..n, n = T/h) in a
``Trajectory`` and counts the gradient evaluations (function evaluations, NFE).

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

from adjoint_meta.estimators.core import InnerProblem, Trajectory

Tensor = torch.Tensor
METHODS = ("euler", "rk4", "dopri5")


class FlowError(RuntimeError):
    """The forward solve failed (step size underflow, too many steps)."""


def _max_task_rms(x: Tensor) -> Tensor:
    return x.pow(2).mean(dim=-1).sqrt().max()


def solve(problem: InnerProblem, u0: Tensor, n: int, h: float, method: str, rtol: float = 1e-5,
          atol: float = 1e-6, store: str = "states", max_steps: int = 100_000) -> tuple[Trajectory, int]:
    """States u_0..u_n on the grid (in a Trajectory) and the NFE spent."""
    traj = Trajectory(problem, store)
    keep = store == "linearizations"
    if method in ("euler", "rk4"):
        u = u0
        for _ in range(n):
            lin = problem.linearize(u) if keep else None
            traj.record(u, lin)
            g = lin.grad if lin is not None else problem.grad(u)
            if method == "euler":
                u = torch.add(u, g, alpha=-h)
            else:
                k2 = problem.grad(torch.add(u, g, alpha=-0.5 * h))
                k3 = problem.grad(torch.add(u, k2, alpha=-0.5 * h))
                k4 = problem.grad(torch.add(u, k3, alpha=-h))
                u = u - (h / 6.0) * (g + 2.0 * (k2 + k3) + k4)
        traj.record(u, problem.linearize(u) if keep else None)
        return traj, n * (1 if method == "euler" else 4)
    if method == "dopri5":
        from torchdiffeq import odeint

        nfe = 0

        def f(t: Tensor, u: Tensor) -> Tensor:
            nonlocal nfe
            nfe += 1
            return -problem.grad(u)

        grid = (torch.arange(n + 1, dtype=torch.float64) * h).to(u0.device, u0.dtype)
        try:
            sol = odeint(f, u0, grid, rtol=rtol, atol=atol, method="dopri5",
                         options={"norm": _max_task_rms, "max_num_steps": max_steps})
        except (AssertionError, RuntimeError) as exc:
            raise FlowError(f"dopri5 forward solve failed after {nfe} evaluations: {exc}") from exc
        for u in sol.unbind(0):
            traj.record(u)
        return traj, nfe
    raise ValueError(f"unknown forward solver {method!r}; allowed values: {', '.join(METHODS)}")
