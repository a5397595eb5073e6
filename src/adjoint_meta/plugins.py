"""Packages whose every module is imported, so that the modules register themselves.

``import_all(__name__, __path__)`` in a package's ``__init__`` imports each of its modules in
name order.  ``adjoint_meta.codedeps`` reads that call too: every module of such a package is a
dependency of whatever imports the package.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable


def import_all(package: str, path: Iterable[str]) -> list[str]:
    names = sorted(m.name for m in pkgutil.iter_modules(list(path)))
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
