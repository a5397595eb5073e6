"""The one interface every meta-gradient estimator implements, and how an estimator declares itself.

An estimator is a subclass of :class:`Estimator` in a module of this package, registered with
``@register``.  The class states everything the rest of the project needs to know about it:

* ``name`` (the ``kind`` in params.yaml) and ``label``;
* ``Hyper``: a dataclass of its hyper-parameters, each a field made by :func:`hyper` with its type,
  default, bounds and description.  The parameter schema's per-kind properties, the defaults of
  the effective parameters and the test and benchmark configurations are read from it;
* ``role`` (a meta-learner, or an initialization ``baseline``), ``paper`` (one of the estimators
  the paper compares), ``maml_variant`` (its place among the MAMLs set side by side);
* ``inner_steps`` (how many inner steps it takes where an experiment says K), ``cost_per_step``
  (for scheduling the longest training jobs first) and ``checks`` (cross-checks of a configuration
  against the experiments that use it, each message naming the key).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from adjoint_meta.estimators.core import InnerProblem

Tensor = torch.Tensor
ESTIMATOR, BASELINE = "estimator", "baseline"  # an estimator's `role` (the `role` column of the tables)


@dataclass
class MetaGradient:
    """Per-task meta-gradients ``grad [B, P]`` (the outer step uses their mean), the query
    loss after adaptation ``query_loss [B]``, and estimator-specific counters."""
    grad: Tensor
    query_loss: Tensor
    stats: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- hyper-parameters
_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


def hyper(default: Any, description: str, *, kind: type = None, minimum: float | None = None,
          above: float | None = None, choices: Iterable[str] | None = None, nullable: bool = False,
          schema: Mapping | None = None) -> Any:
    """One hyper-parameter: a dataclass field whose metadata is its JSON schema.

    ``kind`` is the Python type (int, float, bool, str; taken from the default when omitted),
    ``minimum`` an inclusive and ``above`` an exclusive lower bound, ``choices`` the allowed
    strings, ``nullable`` allows null, ``schema`` replaces all of that with a schema of its own."""
    if schema is None:
        kind = kind or type(default)
        if choices is not None:
            schema = {"enum": list(choices)}
        else:
            name = _TYPES[kind]
            schema = {"type": [name, "null"] if nullable else name}
            if minimum is not None:
                schema["minimum"] = minimum
            if above is not None:
                schema["exclusiveMinimum"] = above
    return field(default=default, metadata={"schema": {"description": description, **schema}})


@dataclass(frozen=True)
class NoHyper:
    """An estimator without hyper-parameters."""


@dataclass(frozen=True)
class Stored:
    """The hyper-parameters of an estimator that stores its inner trajectory for a backward sweep."""
    store: str = hyper("states", "what the forward sweep keeps for the backward sweep: states (memory K x P, "
                       "re-linearized backwards) or linearizations (also activations and deltas: more memory, "
                       "no recomputation)", choices=("states", "linearizations"))
    keep_every: int | str = hyper(1, "checkpointing: keep every c-th state and recompute each segment in the "
                                  "backward sweep (1 = keep all; sqrt = ceil(sqrt(K)), memory ~ sqrt(K))",
                                  schema={"oneOf": [{"type": "integer", "minimum": 1}, {"const": "sqrt"}]})


def hyper_schema(hyper_cls: type) -> dict[str, dict]:
    """The JSON schema of each field of a ``Hyper`` dataclass."""
    return {f.name: dict(f.metadata["schema"]) for f in dataclasses.fields(hyper_cls)}


def hyper_defaults(hyper_cls: type) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(hyper_cls)}


# ---------------------------------------------------------------------------- the interface
class MetaParameters:
    """What the outer optimizer updates: theta here; theta and learned inner step sizes for
    ``learned_rates.LearnsRates``."""

    def meta_init(self, theta: Tensor, model) -> Tensor:
        """The vector the outer optimizer updates, starting from ``theta`` (here theta itself)."""
        return theta

    def theta_of(self, phi: Tensor) -> Tensor:
        """The initialization within that vector."""
        return phi

    def rates(self, phi: Tensor) -> dict | None:
        """The learned inner step sizes at ``phi`` (None: the experiment's alpha, fixed)."""
        return None

    def rate_columns(self, phi: Tensor) -> dict[str, float]:
        """The learned step sizes as training-curve columns (none here)."""
        return {}

    def rate_problem(self, phi: Tensor) -> str | None:
        """What is wrong with the learned step sizes at ``phi`` (an overflow), if anything."""
        return None


class Estimator(MetaParameters):
    """Computes dJ_b/dtheta for each task b of an inner problem.

    ``steps`` is the number of inner gradient steps K (A-MAML integrates the gradient flow to
    T = K * alpha); ``alpha`` the inner step; ``cfg`` a configuration of params.yaml (``kind``,
    ``label``, ``outer`` and the hyper-parameters, which become ``self.hp``).
    """
    name: str = ""
    label: str = ""  # how results name it; its part before " (" is the short name (``short_name``)
    Hyper: type = NoHyper
    role: str = ESTIMATOR
    paper: bool = False  # one of the estimators the paper compares (its claims are about these)
    maml_variant: int | None = None  # place among the MAMLs the report sets side by side
    uses_autograd: bool = False  # True for estimators that differentiate through the inner loop
    trains: bool = True  # False: no outer updates at all (the random-initialization baseline)
    step_cost: float = 1.0  # cost of one inner step in gradient evaluations (see cost_per_step)

    def __init__(self, cfg: Mapping, steps: int, alpha: float, seed: int = 0):
        self.hp = self.hyper_of(cfg)
        self.steps = int(steps)
        self.alpha = float(alpha)
        self.seed = seed

    @classmethod
    def short_name(cls) -> str:
        """The label without its parenthetical detail: the name the paper's claims use ("MAML")."""
        return cls.label.split(" (")[0]

    # -- what the class declares for the grid, the schedule and the checks
    @classmethod
    def hyper_of(cls, cfg: Mapping) -> Any:
        """The hyper-parameters of configuration ``cfg`` (its other keys: kind, label, outer)."""
        return cls.Hyper(**{f.name: cfg[f.name] for f in dataclasses.fields(cls.Hyper) if f.name in cfg})

    @classmethod
    def inner_steps(cls, steps: int, maml_steps: int | None) -> int:
        """The inner steps this estimator takes where an experiment says K = ``steps``."""
        return int(steps)

    @classmethod
    def cost_per_step(cls, hp: Any) -> float:
        """Cost of one inner step in gradient evaluations of the model (weights measured on the model's
        passes: a gradient 1, a linearization 0.8, a Hessian-vector product 1.3; unrolled autograd 3)."""
        return cls.step_cost

    @classmethod
    def checks(cls, hp: Any, key: str, experiments: Mapping[str, Mapping], alpha: float | None) -> list[str]:
        """Problems of configuration ``key`` (``estimators.<name>``) given the experiments that use it."""
        return []

    # -- the estimate
    def __call__(self, theta: Tensor, problem: InnerProblem) -> MetaGradient:
        """The meta-gradient.  Estimators that do not use autograd run in inference mode, where
        tensor operations skip autograd's bookkeeping; what they return are then inference
        tensors, read-only outside it."""
        with torch.inference_mode(not self.uses_autograd):
            return self.estimate(theta, problem)

    def estimate(self, theta: Tensor, problem: InnerProblem) -> MetaGradient:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Internal state a resumed training run must restore (random generators); none by default."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got {sorted(state)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(steps={self.steps}, alpha={self.alpha}, hp={self.hp})"


REGISTRY: dict[str, type[Estimator]] = {}


def register(cls: type[Estimator]) -> type[Estimator]:
    if not cls.name or cls.name in REGISTRY:
        raise ImportError(f"{cls.__module__}.{cls.__name__}: name {cls.name!r} is empty or already registered")
    if not (dataclasses.is_dataclass(cls.Hyper) and all("schema" in f.metadata
                                                        for f in dataclasses.fields(cls.Hyper))):
        raise ImportError(f"{cls.__module__}.{cls.__name__}.Hyper must be a dataclass of hyper() fields")
    REGISTRY[cls.name] = cls
    return cls


def estimator_class(name: str) -> type[Estimator]:
    if name not in REGISTRY:
        raise ValueError(f"estimator {name!r}; allowed values: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def build(name: str, cfg: Mapping, steps: int, alpha: float, seed: int = 0) -> Estimator:
    return estimator_class(name)(cfg, steps, alpha, seed)


def available() -> list[str]:
    return sorted(REGISTRY)

