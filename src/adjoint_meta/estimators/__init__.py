"""Meta-gradient estimators, all behind one interface (``base.Estimator``) and one registry.

Every module of this package is imported here (``plugins.import_all``), and each registers its
estimators with ``@register``: adding an estimator means adding its module (docs/architecture.md).
The kinds, the parameter schema's per-kind properties, the defaults, the inner-steps rule and the
scheduling cost all come from the classes (``adjoint_meta.kinds``, ``adjoint_meta.config``).
"""
from adjoint_meta.estimators.base import REGISTRY, Estimator, MetaGradient, available, build  # noqa: F401
from adjoint_meta.estimators.core import InnerProblem  # noqa: F401
from adjoint_meta.plugins import import_all

import_all(__name__, __path__)
