"""Dormand-Prince 5(4) on task-stacked states, step for step the algorithm of torchdiffeq's
``dopri5``: the same tableau, first-step heuristic (Hairer, Norsett & Wanner, II.4), error
norm, step-size controller (safety 0.9, growth at most 10x, shrinking at most 5x, exponent
1/5), first-same-as-last stages and fourth-order dense output.  As in torchdiffeq, steps
are not clipped at the grid: every grid time is read off the dense output of the first
accepted step that reaches it.

Why not call torchdiffeq on the hot path: it keeps the stages as one ``[..., 7]`` tensor,
reduces over that last axis for every stage combination, and evaluates its dense output
one grid point at a time with several tensor operations each.  On the small task-stacked
states of meta-learning that bookkeeping costs several times the gradient evaluations
themselves.  Here the stages are the rows of one ``[7, B*P]`` matrix, so each stage
combination, the error estimate and the dense output of all grid points inside a step
are one matrix product apiece.  ``tests/test_dopri5.py`` checks that both take the same
steps (same number of function evaluations) and agree to rounding in float64;
``forward: dopri5_torchdiffeq`` runs torchdiffeq itself.

The right-hand side of the gradient flow is f(u) = -g(u); the stage matrix holds the
gradients g, so every combination carries the minus sign in its coefficients.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

Tensor = torch.Tensor

# Butcher tableau: stage i (1..6) is evaluated at u0 + dt * sum_j A[i-1][j] k_j
_A = ((1 / 5,),
      (3 / 40, 9 / 40),
      (44 / 45, -56 / 15, 32 / 9),
      (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
      (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
      (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84))
# fifth-order solution minus the embedded fourth-order one (the last stage is f at the new state)
_ERR = (35 / 384 - 1951 / 21600, 0.0, 500 / 1113 - 22642 / 50085, 125 / 192 - 451 / 720,
        -2187 / 6784 - -12231 / 42400, 11 / 84 - 649 / 6300, -1 / 60)
_SOL = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
# Shampine's midpoint weights, from which the dense output is fitted
_MID = (6025192743 / 30085553152 / 2, 0.0, 51252292925 / 65400821598 / 2, -2691868925 / 45128329728 / 2,
        187940372067 / 1594534317056 / 2, -1776094331 / 19743644256 / 2, 11237099 / 235043384 / 2)


def _dense_weights() -> list[list[float]]:
    """Rows x^1..x^4 of the dense output written as u(t0 + x dt) = u0 + dt sum_j w_j(x) k_j.

    torchdiffeq fits p(x) = e + d x + c x^2 + b x^3 + a x^4 to u0, u1, u_mid, f0 = k_0 and
    f1 = k_6 (a = 2 dt (f1 - f0) - 8 (u1 + u0) + 16 u_mid, and so on); with u1 and u_mid
    themselves u0 plus dt times combinations of the stages, the u0 terms cancel in a, b
    and c, and each power of x multiplies a fixed combination of the stages.
    """
    d0 = [1.0 if j == 0 else 0.0 for j in range(7)]
    d6 = [1.0 if j == 6 else 0.0 for j in range(7)]
    return [d0,
            [d6[j] - 4 * d0[j] - 5 * _SOL[j] + 16 * _MID[j] for j in range(7)],
            [5 * d0[j] - 3 * d6[j] + 14 * _SOL[j] - 32 * _MID[j] for j in range(7)],
            [2 * d6[j] - 2 * d0[j] - 8 * _SOL[j] + 16 * _MID[j] for j in range(7)]]


_DENSE = _dense_weights()  # [4][7]


def _dense_row(x: float) -> list[float]:
    """Stage weights of the dense output at the fraction x of a step: sum_p x^p _DENSE[p-1]."""
    powers = (x, x * x, x ** 3, x ** 4)
    return [sum(p * row[j] for p, row in zip(powers, _DENSE)) for j in range(7)]


class Dopri5Error(RuntimeError):
    """The adaptive solve cannot go on (non-finite state, step-size underflow, too many steps)."""


class Dopri5:
    """Adaptive solve of du/dt = -grad(u) for states ``[B, P]``, counting gradient evaluations.

    ``norm`` maps a scaled error ``[B, P]`` to a number (the flow uses the largest per-task
    RMS, so that every task meets the tolerance on its own).
    """

    def __init__(self, grad: Callable[[Tensor], Tensor], rtol: float, atol: float,
                 norm: Callable[[Tensor], Tensor], max_steps: int = 100_000):
        self.grad, self.rtol, self.atol, self.norm, self.max_steps = grad, rtol, atol, norm, max_steps
        self.nfe = 0
        self._coef: dict = {}

    def _g(self, u: Tensor) -> Tensor:
        self.nfe += 1
        return self.grad(u)

    def _row(self, key: str, values, like: Tensor) -> Tensor:
        """A cached ``[1, len(values)]`` coefficient row in the states' dtype and device."""
        k = (key, like.dtype, like.device)
        if k not in self._coef:
            self._coef[k] = torch.tensor([list(values)], dtype=like.dtype, device=like.device)
        return self._coef[k]

    def _first_step(self, u0: Tensor, g0: Tensor) -> float:
        """torchdiffeq's initial step (order 4 in the exponent, 1/5)."""
        scale = torch.abs(u0).mul_(self.rtol).add_(self.atol)
        d0 = float(self.norm(u0 / scale))
        d1 = float(self.norm(g0 / scale))
        h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        g1 = self._g(torch.add(u0, g0, alpha=-h0))
        d2 = float(self.norm((g1 - g0) / scale)) / h0
        if d1 <= 1e-15 and d2 <= 1e-15:
            h1 = max(1e-6, h0 * 1e-3)
        else:
            h1 = (0.01 / max(d1, d2)) ** (1.0 / 5.0)
        return min(100 * h0, h1)

    def solve(self, u0: Tensor, times: list[float]) -> Iterator[Tensor]:
        """States at ``times`` (increasing, ``times[0]`` the start), yielded as they are reached."""
        shape = u0.shape
        flat0 = u0.reshape(1, -1)
        yield u0
        if len(times) < 2:
            return
        g0 = self._g(u0)
        dt = self._first_step(u0, g0)
        stages = torch.empty(7, flat0.shape[1], dtype=u0.dtype, device=u0.device)
        stages[0] = g0.reshape(-1)
        rows = [self._row(f"a{i}", _A[i - 1], flat0) for i in range(1, 7)]
        err_row = self._row("err", _ERR, flat0)
        zero = torch.zeros((), dtype=u0.dtype, device=u0.device)
        t, y, nxt, attempts = float(times[0]), flat0, 1, 0
        while nxt < len(times):
            attempts += 1
            if attempts > self.max_steps:
                raise Dopri5Error(f"more than {self.max_steps} steps before t = {times[nxt]:g}")
            if not t + dt > t:
                raise Dopri5Error(f"step size underflow at t = {t:g} (dt = {dt:g})")
            for i in range(1, 7):
                yi = torch.addmm(y, rows[i - 1], stages[:i], alpha=-dt)
                stages[i] = self._g(yi.view(shape)).reshape(-1)
            err = torch.mm(err_row, stages).mul_(dt)
            tol = torch.maximum(y.abs(), yi.abs()).mul_(self.rtol).add_(self.atol)
            # 0 * tol is NaN where either state is infinite or NaN (maximum propagates NaN): one
            # operation makes the ratio non-finite for a bad state as well as for a bad gradient,
            # instead of a separate check of the state (a reduction and a sync per step)
            ratio = float(self.norm(err.div_(tol).addcmul_(tol, zero).view(shape)))
            if not math.isfinite(ratio):
                raise Dopri5Error(f"non-finite state or gradient in the step from t = {t:g} to {t + dt:g}")
            if ratio <= 1.0:  # accepted: emit the grid times this step reached
                t1 = t + dt
                last = nxt
                while last < len(times) and times[last] <= t1:
                    last += 1
                if last > nxt:
                    w = torch.tensor([_dense_row((tj - t) / (t1 - t)) for tj in times[nxt:last]],
                                     dtype=y.dtype, device=y.device)
                    for state in torch.addmm(y, w, stages, alpha=-dt).unbind(0):
                        yield state.view(shape)
                    nxt = last
                t, y = t1, yi
                stages[0] = stages[6]
            # torchdiffeq's controller: grow by at most 10x, shrink by at most 5x (never on success)
            if ratio == 0.0:
                dt *= 10.0
            else:
                floor = 1.0 if ratio < 1.0 else 0.2
                dt *= min(10.0, max(0.9 / ratio ** 0.2, floor))
