"""Learned inner step sizes: their layout, and the two ways besides the adjoint sweep to learn them.

The inner loop of a task takes u_{k+1} = u_k - a * g(u_k) with one rate per parameter
a = exp(log_alpha)[group], where ``group [P]`` maps each parameter to one of R learned rates:

* ``scalar``: R = 1, one alpha for every parameter;
* ``layer``: R = the model's layers (``model.layer_index()``), alpha_l shared by a layer's weights
  and bias;
* ``parameter``: R = P, one alpha per parameter (Meta-SGD).

The log keeps every rate positive; the outer optimizer updates theta and log_alpha together as one
vector [theta, log_alpha].  dJ/dlog_alpha_r = sum over the parameters i of group r of a_i dJ/da_i.

Besides the reverse sweep (``core.discrete_adjoint`` with ``rate_grad``) dJ/dlog_alpha comes from

* **forward mode** (:func:`forward_rate_grad`): the tangents T_r = du/dlog_alpha_r follow the inner
  loop (the differential of u - a * g(u) is T - a * (Hess L T) - da * g, and da/dlog_alpha_r =
  a * 1[group = r]), T_r <- T_r - a * (Hess L(u) T_r) - a * 1[group = r] * grad L(u), and
  dJ/dlog_alpha_r = <dJ/du_K, T_r>: exact, one product per rate and step, memory flat in K;
* **selection-based evolution strategies** (:func:`selection_es`), which need no derivative at all.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from adjoint_meta.estimators.core import InnerProblem, descend, stack, take_step

Tensor = torch.Tensor
LEARN = ("scalar", "layer", "parameter")
METHODS = ("reverse", "forward", "es")


@dataclass
class Layout:
    """Which learned rate each parameter takes: ``group [P]`` with values 0..n-1."""
    learn: str
    group: Tensor

    @classmethod
    def of(cls, learn: str, model) -> Layout:
        if learn not in LEARN:
            raise ValueError(f"learned rates {learn!r}; allowed values: {', '.join(LEARN)}")
        P = model.n_params
        if learn == "scalar":
            group = torch.zeros(P, dtype=torch.long)
        elif learn == "layer":
            group = model.layer_index()
        else:
            group = torch.arange(P)
        return cls(learn, group)

    @property
    def n(self) -> int:
        return int(self.group.max()) + 1

    def initial(self, alpha: float, like: Tensor) -> Tensor:
        """log_alpha ``[n]`` with every rate at ``alpha``."""
        if not alpha > 0:
            raise ValueError(f"an initial step size must be positive, got {alpha}")
        return torch.full((self.n,), float(alpha), dtype=like.dtype, device=like.device).log()

    def expand(self, log_alpha: Tensor) -> Tensor:
        """The rate of every parameter ``[P]``."""
        return log_alpha.exp()[self.group.to(log_alpha.device)]

    def reduce(self, log_grad: Tensor) -> Tensor:
        """dJ/dlog_alpha ``[B, n]`` from each parameter's a * dJ/da ``[B, P]`` (the sum over its group)."""
        out = torch.zeros(log_grad.shape[0], self.n, dtype=log_grad.dtype, device=log_grad.device)
        return out.index_add_(1, self.group.to(log_grad.device), log_grad)

    def mask(self, r: int, like: Tensor) -> Tensor:
        """1 where a parameter takes rate r, ``[P]``."""
        return (self.group.to(like.device) == r).to(like.dtype)


def rate_for(learned: dict | None, model, alpha: float, like: Tensor) -> float | Tensor:
    """The inner step of a trained initialization: its learned step sizes (``LearnsRates.rates``) as
    one per parameter ``[P]``, or the experiment's ``alpha`` when none were learned."""
    if not learned:
        return alpha
    layout = Layout.of(learned["learn"], model)
    values = torch.tensor(learned["alpha"], dtype=like.dtype, device=like.device)
    if values.numel() != layout.n:
        raise ValueError(f"{len(learned['alpha'])} learned step sizes ({learned['learn']}), the model has {layout.n}")
    return values[layout.group.to(like.device)]


def forward_rate_grad(problem: InnerProblem, theta: Tensor, steps: int, layout: Layout,
                      log_alpha: Tensor) -> tuple[Tensor, Tensor]:
    """(dJ/dlog_alpha ``[B, n]``, query loss ``[B]``) by forward-mode differentiation of K steps:
    the gradient and n products per step (``grad_and_hvps``: the hand-derived MLP's directional
    derivatives at one linearization, on torch.func one ``jvp`` of ``grad`` carrying the n tangents);
    nothing of the trajectory is kept."""
    a = layout.expand(log_alpha)
    u = stack(theta, problem.n_tasks)
    scaled_masks = [layout.mask(r, a) * a for r in range(layout.n)]  # d a / d log_alpha_r, [P] each
    tangents = [torch.zeros_like(u) for _ in scaled_masks]
    for _ in range(steps):
        g, hvs = problem.grad_and_hvps(u, tangents)
        tangents = [t - a * hv - m * g for t, hv, m in zip(tangents, hvs, scaled_masks)]
        u = take_step(u, g, a)
    loss, lam = problem.query_loss_and_grad(u)
    return torch.stack([(t * lam).sum(1) for t in tangents], 1), loss


@dataclass
class SelectionEs:
    """Selection-based evolution strategies on one scalar step size, as stated in the lecture on
    large-scale meta-optimization: sample N rates from N(mu, sigma^2), run the inner loop with each,
    keep the n whose query loss (mean over the meta-batch) is lowest, and set mu and sigma^2 to their
    mean and variance.  A rate that makes the inner loop diverge ranks last."""
    mu: float
    sigma: float
    population: int
    elite: int

    def step(self, problem: InnerProblem, theta: Tensor, steps: int, generator: torch.Generator) -> dict:
        """One generation on this meta-batch; returns what it saw (the particles and their losses)."""
        N = self.population
        rates = self.mu + self.sigma * torch.randn(N, generator=generator, dtype=torch.float64)
        losses = selection_losses(problem, theta, steps, rates.to(theta.dtype))
        order = torch.argsort(torch.where(torch.isfinite(losses), losses, torch.full_like(losses, float("inf"))))
        best = rates[order[: self.elite].cpu()]
        self.mu, self.sigma = float(best.mean()), float(best.var(unbiased=False).sqrt())
        return {"rates": rates.tolist(), "losses": losses.tolist()}


def selection_losses(problem: InnerProblem, theta: Tensor, steps: int, rates: Tensor) -> Tensor:
    """Mean query loss over the B tasks after K steps at each of N rates ``[N]`` (the N inner loops of
    all B tasks run as one stacked batch of N * B rows)."""
    N, B = rates.numel(), problem.n_tasks
    big = problem.with_data(problem.support.repeat(N), problem.query.repeat(N))
    u = stack(theta, N * B)
    row_rate = rates.to(u.device).repeat_interleave(B).unsqueeze(1)  # row k * B + b: rate k, task b
    return big.query_loss(descend(big, u, steps, row_rate)).view(N, B).mean(1)
