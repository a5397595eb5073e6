"""The estimator kinds and baselines as the rest of the project sees them, derived from the
estimators' own declarations (``adjoint_meta.estimators``: each class states its ``role``,
whether the ``paper`` compares it and its place among the MAML variants), and the predictor
baselines, which are not estimators.

* ``META_LEARNERS``: meta-gradient estimators, the paper's subject; ``PAPER_KINDS`` those the paper
  itself compares; ``MAML_VARIANTS`` the MAMLs set side by side (exact through ``maml_steps`` = K/10
  steps, the paper's "MAML"; first-order through the same steps; exact through all K steps).
* ``INITIALIZATIONS``: baselines that are initializations, trained by the train step and
  fine-tuned by the unchanged evaluate step like any learned theta.
* ``PREDICTORS``: baselines that are not networks (collaborative filtering only), computed by
  the summarize step from the task pool (``adjoint_meta.baselines``), with no fine-tuning.
"""
from __future__ import annotations

from adjoint_meta.estimators import REGISTRY
from adjoint_meta.estimators.base import BASELINE, ESTIMATOR

META_LEARNERS: tuple[str, ...] = tuple(k for k, c in REGISTRY.items() if c.role == ESTIMATOR)
PAPER_KINDS: tuple[str, ...] = tuple(k for k in META_LEARNERS if REGISTRY[k].paper)
MAML_VARIANTS: tuple[str, ...] = tuple(sorted((k for k, c in REGISTRY.items() if c.maml_variant is not None),
                                              key=lambda k: REGISTRY[k].maml_variant))
INITIALIZATIONS: tuple[str, ...] = tuple(k for k, c in REGISTRY.items() if c.role == BASELINE)
SHORT_NAMES: dict[str, str] = {k: c.short_name() for k, c in REGISTRY.items()}  # "MAML", "MAML-1", ...
KINDS: tuple[str, ...] = META_LEARNERS + INITIALIZATIONS  # every value `kind` may take

# name -> label of each predictor baseline (its row in the tables), computed by adjoint_meta.baselines
PREDICTORS: dict[str, str] = {
    "item_mean": "Item mean (training users)",
    "user_item_bias": "User mean + item bias",
}


def role(kind: str) -> str:
    """``estimator`` for a meta-learner, ``baseline`` for an initialization or predictor baseline."""
    if kind in META_LEARNERS:
        return ESTIMATOR
    if kind in INITIALIZATIONS or kind in PREDICTORS:
        return BASELINE
    raise ValueError(f"kind {kind!r}; allowed values: {', '.join(KINDS + tuple(PREDICTORS))}")


def is_baseline(kind: str) -> bool:
    return role(kind) == BASELINE
