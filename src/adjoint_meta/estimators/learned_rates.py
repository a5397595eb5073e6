"""Estimators that can learn their inner step sizes with theta (``adjoint_meta.rates``).

An estimator opts in by deriving from :class:`LearnsRates` and adding :class:`RateHyper`'s fields to
its ``Hyper``; it then implements ``estimate_at(theta, problem, rate, rate_grad)``, its estimate with
the inner step ``rate`` (a number, or one per parameter ``[P]``) that also adds each parameter's
rate * dJ/drate (dJ/dlog rate) to ``rate_grad [B, P]`` when asked.  With ``learn_rate`` set:

* ``rate_method: reverse`` or ``forward``: the outer optimizer updates the vector
  ``[theta, log_alpha]`` (``meta_init``); the meta-gradient's last columns are dJ/dlog_alpha, from the
  estimator's own backward sweep (reverse) or from tangents carried along a second inner loop
  (forward);
* ``rate_method: es``: the outer optimizer updates theta alone; before each meta-gradient one
  generation of selection-based ES moves the scalar rate's mean and spread, and the meta-gradient is
  taken at the new mean.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from adjoint_meta.estimators.base import Estimator, MetaGradient, hyper
from adjoint_meta.estimators.core import InnerProblem, Rate
from adjoint_meta.rates import LEARN, METHODS, Layout, SelectionEs, forward_rate_grad
from adjoint_meta.seeding import torch_generator

Tensor = torch.Tensor


@dataclass(frozen=True)
class RateHyper:
    learn_rate: str | None = hyper(None, "learn the inner step sizes with theta: scalar (one alpha), layer (one per "
                                   "layer), parameter (one per parameter, Meta-SGD); null keeps the experiment's "
                                   "alpha fixed", schema={"enum": [None, *LEARN]})
    rate_method: str = hyper("reverse", "how the step sizes learn: reverse (dJ/dalpha from the adjoint sweep), "
                             "forward (tangents du/dalpha along a second inner loop, one product per learned rate "
                             "and step), es (selection-based evolution strategies on a scalar alpha)",
                             choices=METHODS)
    rate_init: float | None = hyper(None, "initial step size of the learned rates (null = the experiment's alpha)",
                                    kind=float, nullable=True, above=0)
    es_population: int = hyper(16, "es: rate particles sampled per meta-step", minimum=2)
    es_elite: int = hyper(4, "es: particles kept (lowest query loss); their mean and variance are the next "
                          "generation's", minimum=2)
    es_sigma: float = hyper(0.25, "es: initial standard deviation of the particles, as a fraction of the initial "
                            "rate", above=0)


def rate_checks(hp: RateHyper, key: str) -> list[str]:
    """Settings of the learned rates that cannot work, each message naming its key."""
    msgs = []
    if hp.learn_rate and hp.rate_method == "es":
        if hp.es_elite > hp.es_population:
            msgs.append(f"{key}.es_elite: {hp.es_elite} particles kept of a population of {key}.es_population = "
                        f"{hp.es_population}; keep fewer than are sampled")
        if hp.learn_rate != "scalar":
            msgs.append(f"{key}.learn_rate: selection ES (rate_method: es) learns one scalar step size; got "
                        f"{hp.learn_rate!r} (allowed with es: scalar)")
    if hp.learn_rate == "parameter" and hp.rate_method == "forward":
        msgs.append(f"{key}.rate_method: forward mode carries one tangent per learned rate, P of them for "
                    "learn_rate: parameter; use reverse (or learn_rate: scalar or layer)")
    return msgs


class LearnsRates(Estimator):
    """An estimator whose inner loop can take learned step sizes."""

    def __init__(self, cfg, steps: int, alpha: float, seed: int = 0):
        super().__init__(cfg, steps, alpha, seed)
        self.layout: Layout | None = None
        self.layers: Tensor | None = None  # the model's layer of each parameter
        self.es: SelectionEs | None = None
        self.generator = torch_generator(seed, "rate-es")

    @classmethod
    def checks(cls, hp, key: str, experiments, alpha) -> list[str]:
        return rate_checks(hp, key)

    # -- the vector the outer optimizer updates
    @property
    def by_gradient(self) -> bool:
        return bool(self.hp.learn_rate) and self.hp.rate_method != "es"

    def meta_init(self, theta: Tensor, model) -> Tensor:
        hp = self.hp
        if not hp.learn_rate:
            return theta
        self.layout, self.layers = Layout.of(hp.learn_rate, model), model.layer_index()
        init = float(hp.rate_init or self.alpha)
        if hp.rate_method == "es":
            self.es = SelectionEs(init, float(hp.es_sigma) * init, int(hp.es_population), int(hp.es_elite))
            return theta
        return torch.cat([theta, self.layout.initial(init, theta)])

    def theta_of(self, phi: Tensor) -> Tensor:
        return phi[: phi.numel() - self.layout.n] if self.by_gradient else phi

    def _log_alpha(self, phi: Tensor) -> Tensor:
        """The learned log step sizes at the end of ``phi`` (rates learned by gradient)."""
        return phi[phi.numel() - self.layout.n:]

    def rate_of(self, phi: Tensor) -> Rate:
        """The inner step at meta-parameters ``phi``: one per parameter ``[P]`` when learned by gradient
        (a number for a scalar layout), the ES mean, or the experiment's alpha."""
        if self.by_gradient:
            if self.layout.learn == "scalar":  # a number: the cheaper arithmetic of a fixed alpha
                return float(self._log_alpha(phi).exp())
            return self.layout.expand(self._log_alpha(phi))
        return self.es.mu if self.es is not None else self.alpha

    def rates(self, phi: Tensor) -> dict | None:
        if not self.hp.learn_rate:
            return None
        if self.es is not None:
            return {"learn": "scalar", "method": "es", "alpha": [self.es.mu], "es_sigma": self.es.sigma}
        return {"learn": self.layout.learn, "method": self.hp.rate_method, "alpha": self._log_alpha(phi).exp().tolist()}

    def rate_columns(self, phi: Tensor) -> dict[str, float]:
        """The learned rates for the training curve: alpha (scalar, ES: and its spread), alpha_<layer>
        (per layer), or per layer the median alpha_<layer>_median of a per-parameter layout."""
        if not self.hp.learn_rate:
            return {}
        if self.es is not None:
            return {"alpha": self.es.mu, "alpha_sigma": self.es.sigma}
        alpha = self._log_alpha(phi).exp().cpu()
        if self.layout.learn == "scalar":
            return {"alpha": float(alpha[0])}
        if self.layout.learn == "layer":
            return {f"alpha_{l}": float(a) for l, a in enumerate(alpha)}
        return {f"alpha_{l}_median": float(alpha[self.layers == l].median()) for l in range(int(self.layers.max()) + 1)}

    def rate_problem(self, phi: Tensor) -> str | None:
        if not self.by_gradient:
            return None
        log_alpha = self._log_alpha(phi)
        alpha = log_alpha.exp()
        bad = ~torch.isfinite(alpha) | (alpha == 0)
        if not bool(bad.any()):
            return None
        r = int(torch.nonzero(bad).flatten()[0])
        where = {"scalar": "the step size", "layer": f"the step size of layer {r}",
                 "parameter": f"the step size of parameter {r} (layer {int(self.layers[r])})"}[self.layout.learn]
        return f"{where} became {float(alpha[r]):g} (log {float(log_alpha[r]):g})"

    # -- the estimate
    def __call__(self, phi: Tensor, problem: InnerProblem) -> MetaGradient:
        if not self.hp.learn_rate:
            return super().__call__(phi, problem)
        with torch.inference_mode(not self.uses_autograd):
            theta = self.theta_of(phi)
            stats = {}
            if self.es is not None:
                seen = self.es.step(problem, theta, self.steps, self.generator)
                stats = {"es_best_loss": min((x for x in seen["losses"] if math.isfinite(x)), default=math.inf)}
            rate = self.rate_of(phi)
            if self.hp.rate_method == "reverse":
                rate_grad = torch.zeros(problem.n_tasks, theta.numel(), dtype=theta.dtype, device=theta.device)
                mg = self.estimate_at(theta, problem, rate, rate_grad)
                mg.grad = torch.cat([mg.grad, self.layout.reduce(rate_grad)], 1)
            elif self.hp.rate_method == "forward":
                mg = self.estimate_at(theta, problem, rate, None)
                d_log, _ = forward_rate_grad(problem, theta, self.steps, self.layout, self._log_alpha(phi))
                mg.grad = torch.cat([mg.grad, d_log], 1)
            else:
                mg = self.estimate_at(theta, problem, rate, None)
            mg.stats.update(stats)
            return mg

    def estimate(self, theta: Tensor, problem: InnerProblem) -> MetaGradient:
        return self.estimate_at(theta, problem, self.alpha, None)

    def estimate_at(self, theta: Tensor, problem: InnerProblem, rate: Rate, rate_grad: Tensor | None) -> MetaGradient:
        raise NotImplementedError

    def state_dict(self) -> dict:
        if self.es is None:
            return {}
        return {"generator": self.generator.get_state(), "mu": self.es.mu, "sigma": self.es.sigma}

    def load_state_dict(self, state: dict) -> None:
        if self.es is None:
            super().load_state_dict(state)
            return
        self.generator.set_state(state["generator"])
        self.es.mu, self.es.sigma = float(state["mu"]), float(state["sigma"])
