"""Task-stacked functional MLP with hand-derived batched gradient and Hessian-vector product.

Parameters of B tasks are one tensor ``u`` of shape ``[B, P]`` (a flat vector per
task); layer ``l`` reads its weight ``W_l [B, n_in, n_out]`` and bias ``b_l
[B, n_out]`` as views into it, and every layer runs as one batched matmul for
all tasks.  The loss of task b is the weighted squared error

    L_b(u) = sum_n w_bn (f(u_b, x_bn) - y_bn)^2 ,

with ``w_bn = 1 / n_b`` on real examples and 0 on padding (a mean squared error).

Notation for one task (layers l = 0..L-1, a_0 = x):
    z_l = a_l W_l + b_l,  a_{l+1} = s(z_l) for hidden layers,  f = z_{L-1}.
Backward: d_{L-1} = 2 w (f - y);  dW_l = a_l^T d_l;  db_l = sum_n d_l;
          e_l = d_l W_l^T (= dL/da_l);  d_{l-1} = e_l * s'(z_{l-1}).
The Hessian-vector product H v is the directional derivative R{.} of that
gradient along v (Pearlmutter's R-operator):
    R a_0 = 0;  R z_l = R a_l W_l + a_l V_l + Vb_l;  R a_{l+1} = s'(z_l) R z_l;
    R d_{L-1} = 2 w R f;  R dW_l = R a_l^T d_l + a_l^T R d_l;  R db_l = sum_n R d_l;
    R e_l = R d_l W_l^T + d_l V_l^T;  R d_{l-1} = R e_l s'(z_{l-1}) + e_l s''(z_{l-1}) R z_{l-1}.
s' and s'' are written in terms of the activation output a (cheaper than z).
Everything is built from differentiable torch ops, so autograd can also
differentiate *through* ``loss_and_grad`` (unrolled MAML uses that).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Tensor = torch.Tensor


def _tanh_d(a: Tensor) -> tuple[Tensor, Tensor]:
    d1 = 1.0 - a * a
    return d1, -2.0 * a * d1


def _sigmoid_d(a: Tensor) -> tuple[Tensor, Tensor]:
    d1 = a * (1.0 - a)
    return d1, d1 * (1.0 - 2.0 * a)


def _relu_d(a: Tensor) -> tuple[Tensor, Tensor]:
    d1 = (a > 0).to(a.dtype)
    return d1, torch.zeros_like(a)


# activation: (function, derivatives (s'(z), s''(z)) expressed through a = s(z))
ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], tuple[Tensor, Tensor]]]] = {
    "tanh": (torch.tanh, _tanh_d),
    "sigmoid": (torch.sigmoid, _sigmoid_d),
    "relu": (torch.relu, _relu_d),
}


@dataclass
class Data:
    """Examples of B tasks: inputs ``x [B, N, d]``, targets ``y [B, N]``, weights ``w [B, N]``."""
    x: Tensor
    y: Tensor
    w: Tensor

    @property
    def n_tasks(self) -> int:
        return self.x.shape[0]

    def repeat(self, times: int) -> "Data":
        """The same tasks stacked ``times`` times along the task axis (task-major blocks)."""
        return Data(self.x.repeat(times, 1, 1), self.y.repeat(times, 1), self.w.repeat(times, 1))

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "Data":
        return Data(self.x.to(device, dtype), self.y.to(device, dtype), self.w.to(device, dtype))


class MLP:
    """Fully connected network ``sizes[0] -> ... -> sizes[-1]`` acting on stacked task parameters."""

    def __init__(self, sizes: list[int], activation: str = "tanh"):
        if len(sizes) < 2 or sizes[-1] != 1:
            raise ValueError(f"MLP sizes must go from the input size to 1 output, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r}; allowed values: {', '.join(ACTIVATIONS)}")
        self.sizes = list(sizes)
        self.activation = activation
        self._act, self._act_d = ACTIVATIONS[activation]
        self.layers: list[tuple[int, int, int, int, int]] = []  # (w_start, b_start, end, n_in, n_out)
        off = 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            self.layers.append((off, off + n_in * n_out, off + n_in * n_out + n_out, n_in, n_out))
            off += n_in * n_out + n_out
        self.n_params = off

    # -- parameters -------------------------------------------------------
    def init(self, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
        """PyTorch's default Linear initialization: U(-1/sqrt(n_in), 1/sqrt(n_in)) for W and b."""
        theta = torch.empty(self.n_params, dtype=torch.float64)
        for ws, bs, end, n_in, _ in self.layers:
            bound = n_in ** -0.5
            theta[ws:end] = (torch.rand(end - ws, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        return theta.to(dtype)

    def unflatten(self, u: Tensor) -> list[tuple[Tensor, Tensor]]:
        B = u.shape[0]
        return [(u[:, ws:bs].view(B, n_in, n_out), u[:, bs:end]) for ws, bs, end, n_in, n_out in self.layers]

    # -- forward ----------------------------------------------------------
    def activations(self, u: Tensor, x: Tensor) -> list[Tensor]:
        """[a_0 = x, a_1, ..., a_{L-1}, f]; f has shape [B, N, 1]."""
        acts = [x]
        a = x
        last = len(self.layers) - 1
        for l, (W, b) in enumerate(self.unflatten(u)):
            z = torch.baddbmm(b.unsqueeze(1), a, W)
            a = self._act(z) if l < last else z
            acts.append(a)
        return acts

    def predict(self, u: Tensor, x: Tensor) -> Tensor:
        return self.activations(u, x)[-1].squeeze(-1)

    def loss(self, u: Tensor, data: Data) -> Tensor:
        r = self.predict(u, data.x) - data.y
        return (data.w * r * r).sum(1)

    # -- first order ------------------------------------------------------
    def loss_and_grad(self, u: Tensor, data: Data) -> tuple[Tensor, Tensor]:
        """Per-task losses ``[B]`` and gradients ``[B, P]``."""
        loss, grad, _ = self._loss_grad(u, data, keep=False)
        return loss, grad

    def _loss_grad(self, u: Tensor, data: Data, keep: bool):
        params = self.unflatten(u)
        acts = self.activations(u, data.x)
        r = acts[-1].squeeze(-1) - data.y
        wr = data.w * r
        loss = (wr * r).sum(1)
        d = (2.0 * wr).unsqueeze(-1)  # dL/df  [B, N, 1]
        L = len(self.layers)
        out: list[Tensor] = [None] * (2 * L)  # type: ignore[list-item]
        deltas: list[Tensor] = [None] * L  # type: ignore[list-item]
        es: list[Tensor] = [None] * L  # type: ignore[list-item]  # es[l] = dL/da_l, l >= 1
        for l in range(L - 1, -1, -1):
            W, _ = params[l]
            out[2 * l] = torch.bmm(acts[l].transpose(1, 2), d).flatten(1)
            out[2 * l + 1] = d.sum(1)
            deltas[l] = d
            if l > 0:
                e = torch.bmm(d, W.transpose(1, 2))
                es[l] = e
                d = e * self._act_d(acts[l])[0]
        cache = (acts, deltas, es) if keep else None
        return loss, torch.cat(out, dim=1), cache

    def grad(self, u: Tensor, data: Data) -> Tensor:
        return self.loss_and_grad(u, data)[1]

    # -- second order -----------------------------------------------------
    def hvp(self, u: Tensor, v: Tensor, data: Data) -> Tensor:
        """Batched Hessian-vector product ``H_b(u_b) v_b`` of each task's loss, shape ``[B, P]``."""
        params = self.unflatten(u)
        vparams = self.unflatten(v)
        _, _, (acts, deltas, es) = self._loss_grad(u, data, keep=True)
        L = len(self.layers)
        # R-forward: Rz_l for every layer and the derivatives of the activations
        Ra: list[Tensor | None] = [None]
        Rz: list[Tensor] = []
        sd: list[tuple[Tensor, Tensor] | None] = [None]  # (s', s'') at a_l, l >= 1
        for l in range(L):
            W, _ = params[l]
            V, Vb = vparams[l]
            rz = torch.baddbmm(Vb.unsqueeze(1), acts[l], V)
            if Ra[l] is not None:
                rz = rz + torch.bmm(Ra[l], W)
            Rz.append(rz)
            if l < L - 1:
                d1, d2 = self._act_d(acts[l + 1])
                sd.append((d1, d2))
                Ra.append(d1 * rz)
        # R-backward
        Rd = 2.0 * data.w.unsqueeze(-1) * Rz[-1]
        out: list[Tensor] = [None] * (2 * L)  # type: ignore[list-item]
        for l in range(L - 1, -1, -1):
            W, _ = params[l]
            V, _ = vparams[l]
            d = deltas[l]
            RgW = torch.bmm(acts[l].transpose(1, 2), Rd)
            if Ra[l] is not None:
                RgW = RgW + torch.bmm(Ra[l].transpose(1, 2), d)
            out[2 * l] = RgW.flatten(1)
            out[2 * l + 1] = Rd.sum(1)
            if l > 0:
                Re = torch.bmm(Rd, W.transpose(1, 2)) + torch.bmm(d, V.transpose(1, 2))
                d1, d2 = sd[l]
                Rd = Re * d1 + es[l] * d2 * Rz[l - 1]
        return torch.cat(out, dim=1)


def build_model(input_dim: int, hidden: list[int], activation: str) -> MLP:
    return MLP([int(input_dim), *map(int, hidden), 1], activation)
