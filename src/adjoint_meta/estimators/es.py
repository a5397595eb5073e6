"""Evolution strategies: antithetic finite differences of J along N Gaussian directions,

    dJ/dtheta ~ 1/N sum_i [J(theta + s d_i) - J(theta - s d_i)] / (2 s) d_i,   d_i ~ N(0, I).

All 2N perturbed initializations of all B tasks run their inner loops as one
stacked batch of 2NB tasks; memory does not grow with K.  The reported query
loss is the antithetic mean (J(+) + J(-))/2, equal to J(theta) up to O(s^2).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from adjoint_meta.estimators.base import Estimator, MetaGradient, hyper, register
from adjoint_meta.estimators.core import InnerProblem, descend
from adjoint_meta.seeding import torch_generator


@dataclass(frozen=True)
class EsHyper:
    directions: int = hyper(20, "antithetic pairs per meta-step", minimum=1)
    sigma: float = hyper(0.01, "perturbation scale", above=0)


@register
class EvolutionStrategies(Estimator):
    name = "es"
    label = "ES (antithetic)"
    Hyper = EsHyper

    @classmethod
    def cost_per_step(cls, hp: EsHyper) -> float:
        return 2.0 * hp.directions  # every pair runs the inner loop twice

    def __init__(self, cfg: dict, steps: int, alpha: float, seed: int = 0):
        super().__init__(cfg, steps, alpha, seed)
        self.generator = torch_generator(seed, "es-directions")

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def estimate(self, theta: torch.Tensor, problem: InnerProblem) -> MetaGradient:
        N, sigma = int(self.hp.directions), float(self.hp.sigma)
        B, P = problem.n_tasks, theta.numel()
        d = torch.randn(N, P, generator=self.generator, dtype=torch.float64).to(theta.dtype).to(theta.device)
        starts = torch.cat([theta + sigma * d, theta - sigma * d])  # [2N, P]
        # row k*B + b: perturbation k applied to task b
        u0 = starts.repeat_interleave(B, dim=0)
        big = problem.with_data(problem.support.repeat(2 * N), problem.query.repeat(2 * N))
        losses = big.query_loss(descend(big, u0, self.steps, self.alpha)).view(2 * N, B)
        plus, minus = losses[:N], losses[N:]
        grad = ((plus - minus) / (2.0 * sigma * N)).transpose(0, 1) @ d  # [B, P]
        return MetaGradient(grad, 0.5 * (plus + minus).mean(0), {"directions": N})
