"""First-order estimators: FOMAML and Reptile ignore the Jacobian d phi_K / d theta.

FOMAML:  dJ/dtheta ~ grad L_val(phi_K).
``maml_fo`` is FOMAML itself; only its number of inner steps differs: it takes MAML's
(``experiments.*.maml_steps``, K/10 in the paper's tables and Figure 2), as the paper ran MAML
with code that is commonly run first-order.
Reptile: the direction theta - phi_K (= alpha times the sum of the inner
gradients); the outer optimizer's learning rate is its step size.
"""
from __future__ import annotations

import torch

from adjoint_meta.estimators.base import Estimator, MetaGradient, register
from adjoint_meta.estimators.core import InnerProblem, descend, stack
from adjoint_meta.estimators.maml import Maml


@register
class Fomaml(Estimator):
    name = "fomaml"
    label = "FOMAML"
    paper = True

    def estimate(self, theta: torch.Tensor, problem: InnerProblem) -> MetaGradient:
        phi = descend(problem, stack(theta, problem.n_tasks), self.steps, self.alpha)
        loss, grad = problem.query_loss_and_grad(phi)
        return MetaGradient(grad, loss)


@register
class MamlFirstOrder(Fomaml):
    """First-order MAML through MAML's inner steps: FOMAML's estimate with ``maml_steps`` steps."""
    name = "maml_fo"
    label = "MAML, first-order, K/10 steps (as the paper ran it)"
    paper = False
    maml_variant = 1

    @classmethod
    def inner_steps(cls, steps: int, maml_steps: int | None) -> int:
        return Maml.inner_steps(steps, maml_steps)  # MAML's step count


@register
class Reptile(Estimator):
    name = "reptile"
    label = "Reptile"
    paper = True

    def estimate(self, theta: torch.Tensor, problem: InnerProblem) -> MetaGradient:
        phi = descend(problem, stack(theta, problem.n_tasks), self.steps, self.alpha)
        return MetaGradient(theta.unsqueeze(0) - phi, problem.query_loss(phi))
