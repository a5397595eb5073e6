"""Forward solvers of the gradient flow  du/dt = -grad L(u),  u(0) = theta.

Each records the states on the grid t_j = j h (j = 0..n, n = T/h) in a
``Trajectory`` and counts the gradient evaluations (function evaluations, NFE).

* ``euler``: u_{j+1} = u_j - h grad L(u_j): gradient descent with step h (n NFE).
* ``rk4``:   classical fourth-order Runge-Kutta with fixed step h (4n NFE).
* ``rk4_38``: Kutta's 3/8 rule with fixed step h (4n NFE): what torchdiffeq's ``rk4``
             computes, and so what the authors' released code runs.
* ``dopri5``: adaptive Dormand-Prince 5(4) with rtol/atol, states read off its
             dense output on the grid (the paper's RK45): torchdiffeq's algorithm
             step for step, on the stacked states (``dopri5.py``; several times
             less overhead than torchdiffeq at these sizes).
* ``dopri5_torchdiffeq``: the same solve by torchdiffeq's ``odeint`` itself.
For both, tasks are solved jointly; the error norm is the largest per-task RMS
norm, so every task meets the tolerance on its own.

With checkpointing (``keep_every`` > 1) the same step function recomputes the
states a backward sweep needs (for dopri5: a solve over one grid interval).
"""
from __future__ import annotations

from collections.abc import Iterator

import torch

from adjoint_meta.estimators.core import InnerProblem, Trajectory
from adjoint_meta.estimators.dopri5 import Dopri5
from adjoint_meta.interface import Linearization

Tensor = torch.Tensor
METHODS = ("euler", "rk4", "rk4_38", "dopri5", "dopri5_torchdiffeq")


class FlowError(RuntimeError):
    """The forward solve failed (step size underflow, too many steps, a non-finite state)."""


def _max_task_rms(x: Tensor) -> Tensor:
    return x.pow(2).mean(dim=-1).sqrt().max()


class _Adaptive:
    """An adaptive dopri5 solve of the flow: ``solve(u0, times)`` gives the states at ``times``
    (a list of floats) and ``nfe`` counts gradient evaluations."""

    def __init__(self, problem: InnerProblem, rtol: float, atol: float, max_steps: int, backend: str):
        self.problem, self.rtol, self.atol, self.max_steps, self.backend = problem, rtol, atol, max_steps, backend
        self.native = Dopri5(problem.grad, rtol, atol, _max_task_rms, max_steps) if backend == "dopri5" else None
        self._nfe = 0

    @property
    def nfe(self) -> int:
        return self.native.nfe if self.native is not None else self._nfe

    def __call__(self, t: Tensor, u: Tensor) -> Tensor:  # torchdiffeq's right-hand side
        self._nfe += 1
        return -self.problem.grad(u)

    def solve(self, u0: Tensor, times: list[float]) -> Iterator[Tensor]:
        try:
            if self.native is not None:
                yield from self.native.solve(u0, times)
                return
            from torchdiffeq import odeint

            yield from odeint(self, u0, torch.tensor(times, dtype=torch.float64, device=u0.device),
                              rtol=self.rtol, atol=self.atol, method="dopri5",
                              options={"norm": _max_task_rms, "max_num_steps": self.max_steps}).unbind(0)
        except (AssertionError, RuntimeError) as exc:
            raise FlowError(f"{self.backend} forward solve failed after {self.nfe} evaluations: {exc}") from exc


def _step_fn(problem: InnerProblem, method: str, h: float, adaptive: _Adaptive | None):
    """u_{j+1} from u_j and its linearization (whose gradient is the first stage)."""
    if method == "euler":
        return lambda u, lin, j: torch.add(u, lin.grad, alpha=-h)
    if method == "rk4":
        def rk4(u: Tensor, lin: Linearization, j: int) -> Tensor:
            g = lin.grad
            k2 = problem.grad(torch.add(u, g, alpha=-0.5 * h))
            k3 = problem.grad(torch.add(u, k2, alpha=-0.5 * h))
            k4 = problem.grad(torch.add(u, k3, alpha=-h))
            return u - (h / 6.0) * (g + 2.0 * (k2 + k3) + k4)
        return rk4
    if method == "rk4_38":
        def rk4_38(u: Tensor, lin: Linearization, j: int) -> Tensor:
            g1 = lin.grad
            g2 = problem.grad(torch.add(u, g1, alpha=-h / 3.0))
            g3 = problem.grad(u - h * (g2 - g1 / 3.0))
            g4 = problem.grad(u - h * (g1 - g2 + g3))
            return u - (h / 8.0) * (g1 + 3.0 * (g2 + g3) + g4)
        return rk4_38
    return lambda u, lin, j: list(adaptive.solve(u, [j * h, (j + 1) * h]))[-1]


def solve(problem: InnerProblem, u0: Tensor, n: int, h: float, method: str, rtol: float = 1e-5,
          atol: float = 1e-6, store: str = "states", keep_every: int = 1,
          max_steps: int = 100_000, keep_grads: bool = False) -> tuple[Trajectory, int]:
    """States u_0..u_n on the grid (in a Trajectory) and the NFE of the forward solve.  With
    ``keep_grads`` the trajectory also keeps the gradient at each grid state: free for euler and
    rk4 (their first stage), one more evaluation per grid state for dopri5 (not counted in NFE)."""
    if method not in METHODS:
        raise ValueError(f"unknown forward solver {method!r}; allowed values: {', '.join(METHODS)}")
    adaptive = _Adaptive(problem, rtol, atol, max_steps, method) if method.startswith("dopri5") else None
    step = _step_fn(problem, method, h, adaptive)
    traj = Trajectory(problem, store, keep_every, step, keep_grads=keep_grads)
    if adaptive is not None:
        # the states are views into larger blocks; with checkpointing only the kept ones may stay alive
        for u in adaptive.solve(u0, [j * h for j in range(n + 1)]):
            traj.record(u if traj.keep_every == 1 else u.clone(), None, problem.grad(u) if keep_grads else None)
        return traj, adaptive.nfe
    keep = store == "linearizations" and keep_every == 1
    u = u0
    for j in range(n + 1):
        lin = problem.linearize(u) if keep else None
        g = lin.grad if lin is not None else (problem.grad(u) if j < n or keep_grads else None)
        traj.record(u, lin, g)
        if j < n:
            u = step(u, lin if lin is not None else _GradOnly(g), j)
    return traj, n * (1 if method == "euler" else 4)


class _GradOnly:
    """What a step needs of a linearization when only the gradient was computed."""

    def __init__(self, grad: Tensor):
        self.grad = grad
