"""The outer-loop and fine-tuning optimizers, on one plain tensor updated in place.

Adam takes exactly torch.optim.Adam's steps (without amsgrad; weight decay added to the
gradient), SGD those of torch.optim.SGD without momentum; ``tests/test_optim.py`` checks
both bit for bit.  They are written out because torch.optim imports the TorchDynamo
compiler on first use: 1.3 s of start-up per process on a 2-core CPU, paid by every
training job for nothing.  Working on a plain tensor also spares the autograd leaf and the
``.grad`` bookkeeping: ``step(grad)`` takes the gradient directly.
"""
from __future__ import annotations

import torch

Tensor = torch.Tensor
NAMES = ("adam", "sgd")


class SGD:
    def __init__(self, param: Tensor, lr: float):
        self.param, self.lr = param, float(lr)

    def step(self, grad: Tensor) -> None:
        self.param.add_(grad, alpha=-self.lr)

    def state_dict(self) -> dict:
        return {"kind": "sgd"}

    def load_state_dict(self, state: dict) -> None:
        _check_kind(state, "sgd")


class Adam:
    """m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
    p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""

    def __init__(self, param: Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        self.param, self.lr, self.betas, self.eps, self.weight_decay = param, float(lr), betas, eps, weight_decay
        self.t = 0
        self.m = torch.zeros_like(param)
        self.v = torch.zeros_like(param)

    def step(self, grad: Tensor) -> None:
        b1, b2 = self.betas
        if self.weight_decay:
            grad = grad.add(self.param, alpha=self.weight_decay)
        self.t += 1
        self.m.lerp_(grad, 1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        # the bias corrections in Python floats, in the order torch.optim computes them
        step_size = self.lr / (1 - b1 ** self.t)
        denom = (self.v.sqrt() / (1 - b2 ** self.t) ** 0.5).add_(self.eps)
        self.param.addcdiv_(self.m, denom, value=-step_size)

    def state_dict(self) -> dict:
        return {"kind": "adam", "t": self.t, "m": self.m.clone(), "v": self.v.clone()}

    def load_state_dict(self, state: dict) -> None:
        _check_kind(state, "adam")
        if state["m"].shape != self.param.shape:
            raise ValueError(f"Adam state for shape {tuple(state['m'].shape)}, parameter has {tuple(self.param.shape)}")
        self.t = int(state["t"])
        self.m.copy_(state["m"])
        self.v.copy_(state["v"])


def _check_kind(state: dict, kind: str) -> None:
    if state.get("kind") != kind:
        raise ValueError(f"optimizer state of kind {state.get('kind')!r}, expected {kind!r}")


def make(name: str, param: Tensor, lr: float) -> SGD | Adam:
    if name == "adam":
        return Adam(param, lr)
    if name == "sgd":
        return SGD(param, lr)
    raise ValueError(f"meta.optimizer {name!r}; allowed values: {', '.join(NAMES)}")
