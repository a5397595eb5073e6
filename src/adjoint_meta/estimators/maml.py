"""MAML: exact second-order meta-gradient by backpropagation through K unrolled steps.

The memory-hungry reference: autograd records every inner step (our batched
gradient is itself differentiable), so memory grows with K times the size of
the activations and intermediate gradients.  ``maml1`` is the one-step case.
"""
from __future__ import annotations

import torch

from adjoint_meta.estimators.base import Estimator, MetaGradient, register
from adjoint_meta.estimators.core import InnerProblem, descend, stack


@register
class Maml(Estimator):
    name = "maml"
    label = "MAML (unrolled autograd)"
    uses_autograd = True

    def estimate(self, theta: torch.Tensor, problem: InnerProblem) -> MetaGradient:
        with torch.enable_grad():
            u0 = stack(theta.detach(), problem.n_tasks).requires_grad_(True)
            uK = descend(problem, u0, self.steps, self.alpha)
            loss = problem.query_loss(uK)
            (grad,) = torch.autograd.grad(loss.sum(), u0)
        return MetaGradient(grad, loss.detach())


@register
class Maml1(Maml):
    name = "maml1"
    label = "MAML-1 (one inner step)"

    def __init__(self, cfg: dict, steps: int, alpha: float, seed: int = 0):
        super().__init__(cfg, 1, alpha, seed)
