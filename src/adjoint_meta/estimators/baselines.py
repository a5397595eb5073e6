"""The two initialization baselines, behind the estimators' interface so the train step trains them
and the evaluate step fine-tunes them like any learned theta (``role = BASELINE``; they have no
inner loop, so they take no inner steps).

* ``random_init``: the initial theta every estimator of the dataset and seed starts from
  (``train.run`` draws it), with zero meta-updates (``trains = False``).
* ``pretrain``: plain supervised pre-training, no meta-gradient.  Each "meta-step" of the train
  loop draws the same meta-batch the meta-learners see (``meta_batch`` tasks, ``shot`` support and
  ``val`` query examples each) and returns, per task, the gradient at theta of the mean squared
  error over all of the task's ``shot + val`` examples; the outer optimizer (Adam, ``meta.lr``)
  steps along their mean for ``meta_epochs`` updates.  Every task has ``shot + val`` examples, so
  the mean is the gradient of the mean squared error pooled over the minibatch's examples: the same
  data budget as the meta-learners, with no inner loop.
"""
from __future__ import annotations

import torch

from adjoint_meta.estimators.base import BASELINE, Estimator, MetaGradient, register
from adjoint_meta.estimators.core import InnerProblem, stack


class _Initialization(Estimator):
    role = BASELINE

    @classmethod
    def inner_steps(cls, steps: int, maml_steps: int | None) -> int:
        return 0

    @classmethod
    def cost_per_step(cls, hp) -> float:
        return 1.0  # one gradient per meta-step (scheduling counts at least one step)


@register
class RandomInit(_Initialization):
    name = "random_init"
    label = "Random init, fine-tuned"
    trains = False  # the train step writes the initial theta as it is

    def estimate(self, theta: torch.Tensor, problem: InnerProblem) -> MetaGradient:
        """A zero direction and the query loss at theta (never used for an update: ``trains``)."""
        u = stack(theta, problem.n_tasks)
        return MetaGradient(torch.zeros_like(u), problem.query_loss(u))


@register
class Pretrain(_Initialization):
    name = "pretrain"
    label = "Joint pre-training, fine-tuned"

    def estimate(self, theta: torch.Tensor, problem: InnerProblem) -> MetaGradient:
        u = stack(theta, problem.n_tasks)
        model, support, query = problem.model, problem.support, problem.query
        loss_s, grad_s = model.loss_and_grad(u, support)  # each: the mean over the set's examples
        loss_q, grad_q = model.loss_and_grad(u, query)
        n_s = (support.w > 0).sum(1).to(u.dtype)
        n_q = (query.w > 0).sum(1).to(u.dtype)
        share = (n_s / (n_s + n_q)).unsqueeze(1)
        grad = share * grad_s + (1 - share) * grad_q  # the gradient of the MSE over support + query
        loss = share.squeeze(1) * loss_s + (1 - share.squeeze(1)) * loss_q
        return MetaGradient(grad, loss)
