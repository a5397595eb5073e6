"""Meta-gradient estimators, all behind one interface (``base.Estimator``) and one registry.

Importing this package registers every estimator by its params.yaml name.
"""
from adjoint_meta.estimators import adjoint, es, first_order, imaml, maml  # noqa: F401  (registration)
from adjoint_meta.estimators.base import REGISTRY, Estimator, MetaGradient, available, build  # noqa: F401
from adjoint_meta.estimators.core import InnerProblem  # noqa: F401
