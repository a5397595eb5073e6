"""Meta-gradient estimators, all behind one interface (``base.Estimator``) and one registry.

Importing this package registers every estimator by its kind; the kinds themselves are listed once,
in ``adjoint_meta.kinds`` (the schema and the parameter checks read them there), and the registry
must implement exactly those.
"""
from adjoint_meta import kinds as _kinds
from adjoint_meta.estimators import adjoint, baselines, es, first_order, imaml, maml  # noqa: F401  (registration)
from adjoint_meta.estimators.base import REGISTRY, Estimator, MetaGradient, available, build  # noqa: F401
from adjoint_meta.estimators.core import InnerProblem  # noqa: F401

if set(REGISTRY) != set(_kinds.KINDS):  # pragma: no cover - a kind added in one place only
    raise ImportError(f"the estimators registry {sorted(REGISTRY)} differs from adjoint_meta.kinds.KINDS "
                      f"{sorted(_kinds.KINDS)}; register the estimator or list its kind there")
