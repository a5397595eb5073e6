"""The one registry of estimator kinds (``estimators.<name>.kind`` in params.yaml) and of the
baselines the tables set beside them.

Everything that enumerates kinds derives from here: the schema's enum (``config.schema``), the
parameter checks (``config``), the estimators package (whose registry must implement exactly
``KINDS``, checked when it is imported), the summary's row roles and the report.  Nothing here
imports torch, so every step may read it.

* ``META_LEARNERS``: meta-gradient estimators, the paper's subject.
* ``INITIALIZATIONS``: baselines that are initializations, trained by the train step and
  fine-tuned by the unchanged evaluate step like any learned theta:
  ``random_init`` (the shared initial theta, zero meta-updates) and ``pretrain`` (joint
  supervised pre-training on the pooled training tasks, no meta-gradient).
* ``PREDICTORS``: baselines that are not networks (collaborative filtering only), computed by
  the summarize step from the task pool (``adjoint_meta.baselines``), with no fine-tuning.
"""
from __future__ import annotations

META_LEARNERS: tuple[str, ...] = ("amaml", "maml", "maml1", "maml_adjoint", "fomaml", "reptile", "imaml", "es",
                                  "tbptt")
INITIALIZATIONS: tuple[str, ...] = ("random_init", "pretrain")
KINDS: tuple[str, ...] = META_LEARNERS + INITIALIZATIONS  # every value `kind` may take

# name -> label of each predictor baseline (its row in the tables)
PREDICTORS: dict[str, str] = {
    "item_mean": "Item mean (training users)",
    "user_item_bias": "User mean + item bias",
}

ESTIMATOR, BASELINE = "estimator", "baseline"  # the `role` column of the experiment tables


def role(kind: str) -> str:
    """``estimator`` for a meta-learner, ``baseline`` for an initialization or predictor baseline."""
    if kind in META_LEARNERS:
        return ESTIMATOR
    if kind in INITIALIZATIONS or kind in PREDICTORS:
        return BASELINE
    raise ValueError(f"kind {kind!r}; allowed values: {', '.join(KINDS + tuple(PREDICTORS))}")


def is_baseline(kind: str) -> bool:
    return role(kind) == BASELINE
