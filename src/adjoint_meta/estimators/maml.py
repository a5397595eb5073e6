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
    """The paper's "MAML": in its experiments ``maml_steps`` (K/10) steps."""
    name = "maml"
    label = "MAML (unrolled autograd)"
    paper = True
    maml_variant = 0
    uses_autograd = True
    step_cost = 3.0  # autograd records the step and differentiates it

    @classmethod
    def inner_steps(cls, steps: int, maml_steps: int | None) -> int:
        return int(steps if maml_steps is None else maml_steps)

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
    maml_variant = None

    @classmethod
    def inner_steps(cls, steps: int, maml_steps: int | None) -> int:
        return 1

    def __init__(self, cfg: dict, steps: int, alpha: float, seed: int = 0):
        super().__init__(cfg, 1, alpha, seed)
