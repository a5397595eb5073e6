"""An estimator chosen by name with its hyper-parameters, checked when it is chosen.

The names, hyper-parameters, defaults and bounds are the estimators' own (``estimators.base``):
each hyper-parameter is checked against the schema its class declares, and the estimator's own
cross-checks run with the horizon K and the step alpha of the call.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from adjoint_meta.api.errors import InputError
from adjoint_meta.estimators import REGISTRY
from adjoint_meta.estimators.base import BASELINE, Estimator, hyper_schema

_TYPES = {"integer": int, "number": (int, float), "boolean": bool, "string": str}


def names() -> dict[str, str]:
    """Every meta-gradient estimator the API offers: name -> what it computes."""
    return {name: cls.label for name, cls in sorted(REGISTRY.items()) if cls.role != BASELINE}


def hyper_parameters(name: str) -> dict[str, dict[str, Any]]:
    """The hyper-parameters of estimator ``name``: field -> {default, description}."""
    cls = estimator_class(name)
    return {f.name: {"default": f.default, "description": f.metadata["schema"]["description"]}
            for f in dataclasses.fields(cls.Hyper)}


def estimator_class(name: str) -> type[Estimator]:
    offered = names()
    if not isinstance(name, str) or name not in offered:
        raise InputError(f"estimator={name!r}: unknown; allowed values: {', '.join(offered)}")
    return REGISTRY[name]


def _fits(value: Any, schema: dict) -> str | None:
    """What is wrong with ``value`` under the field's JSON schema (the subset ``hyper`` writes), or None."""
    if "oneOf" in schema:
        problems = [_fits(value, s) for s in schema["oneOf"]]
        return None if any(p is None for p in problems) else "; or ".join(problems)
    if "const" in schema:
        return None if value == schema["const"] else f"is not {schema['const']!r}"
    if "enum" in schema:
        return None if value in schema["enum"] else f"allowed values: {', '.join(map(repr, schema['enum']))}"
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    if value is None:
        return None if "null" in kinds else "may not be None"
    wanted = [k for k in kinds if k != "null"]
    ok = any(isinstance(value, _TYPES[k]) and not (k in ("integer", "number") and isinstance(value, bool))
             for k in wanted)
    if not ok:
        return f"must be {' or '.join(wanted)}, got {type(value).__name__}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            return "must be finite"
        if "minimum" in schema and value < schema["minimum"]:
            return f"must be >= {schema['minimum']}"
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return f"must be > {schema['exclusiveMinimum']}"
    return None


def check_horizon(steps: Any, alpha: Any) -> tuple[int, float]:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps={steps!r}: the number of inner steps K must be an integer >= 1")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
        raise InputError(f"alpha={alpha!r}: the inner step size must be a finite number > 0")
    return int(steps), float(alpha)


def configuration(name: str, steps: int, alpha: float, hyper: dict[str, Any]) -> dict[str, Any]:
    """The checked configuration of estimator ``name`` (its hyper-parameters, defaults filled in)."""
    cls = estimator_class(name)
    schema = hyper_schema(cls.Hyper)
    for key, value in hyper.items():
        if key not in schema:
            allowed = ", ".join(schema) or "none"
            raise InputError(f"{key}: not a hyper-parameter of estimator {name!r}; its hyper-parameters: {allowed}")
        problem = _fits(value, schema[key])
        if problem:
            raise InputError(f"{key}={value!r}: {problem} ({schema[key]['description']})")
    hp = cls.hyper_of(hyper)
    messages = cls.checks(hp, name, {"call": {"steps": steps, "maml_steps": None}}, alpha)
    if messages:
        text = "; ".join(m.replace("experiments.call.steps", "steps").replace("inner.alpha", "alpha")
                         for m in messages)
        raise InputError(text)
    return {f.name: getattr(hp, f.name) for f in dataclasses.fields(cls.Hyper)}
