"""The one registry of estimator kinds (``estimators.<name>.kind`` in params.yaml) and of the
baselines the tables set beside them.

Everything that enumerates kinds derives from here: the schema's enum (``config.schema``), the
parameter checks (``config``), the estimators package (whose registry must implement exactly
``KINDS``, checked when it is imported), the summary's row roles and the report.  Nothing here
imports torch, so every step may read it.

* ``META_LEARNERS``: meta-gradient estimators, the paper's subject.  Three of them are MAML:
  ``maml`` (exact, autograd through ``maml_steps`` = K/10 steps in the paper's experiments),
  ``maml_fo`` (first-order through the same K/10 steps: FOMAML with MAML's step count, as the
  paper's cited MAML code is commonly run) and ``maml_adjoint`` (exact through all K steps).
* ``INITIALIZATIONS``: baselines that are initializations, trained by the train step and
  fine-tuned by the unchanged evaluate step like any learned theta:
  ``random_init`` (the shared initial theta, zero meta-updates) and ``pretrain`` (joint
  supervised pre-training on the pooled training tasks, no meta-gradient).
* ``PREDICTORS``: baselines that are not networks (collaborative filtering only), computed by
  the summarize step from the task pool (``adjoint_meta.baselines``), with no fine-tuning.
"""
from __future__ import annotations

META_LEARNERS: tuple[str, ...] = ("amaml", "maml", "maml_fo", "maml1", "maml_adjoint", "fomaml", "reptile", "imaml",
                                  "es", "tbptt")
# the estimators the paper itself compares (its claims are about these; the other meta-learners are ours)
PAPER_KINDS: tuple[str, ...] = ("amaml", "maml", "maml1", "fomaml", "reptile", "imaml")
# the MAMLs set beside the paper's (README, "Three MAMLs"): exact through maml_steps (K/10) steps, the paper's
# "MAML" column; first-order through the same steps; exact through all K steps by the discrete adjoint
MAML_VARIANTS: tuple[str, ...] = ("maml", "maml_fo", "maml_adjoint")
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
