"""The parameter schema and validation with messages that name the key.

The schema file (``schema/params.schema.yaml``) holds the layout of params.yaml; what the project
registers elsewhere is filled in when it is loaded: the estimator kinds with each kind's
hyper-parameters (``adjoint_meta.estimators``), the raw sources (``adjoint_meta.data.sources``), the
synthetic families and their variants (``adjoint_meta.data.synthetic``), the activations
(``adjoint_meta.model``) and the model backends (``adjoint_meta.backends``).
After the schema, the named cross-checks of ``config.checks`` run.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from adjoint_meta import backends, kinds
from adjoint_meta.config import checks
from adjoint_meta.config.documents import DEFAULT_PARAMS, ParamsError, parse_yaml_text
from adjoint_meta.data.sources import SOURCES, SYNTHETIC
from adjoint_meta.data.synthetic import FAMILIES
from adjoint_meta.estimators import REGISTRY
from adjoint_meta.estimators.base import hyper_schema
from adjoint_meta.model import ACTIVATIONS

# Only refuses parameters, never changes a result: no job's code input (adjoint_meta.codedeps).
VALIDATION_ONLY = True


@cache
def schema() -> dict:
    """The parameter schema, with the registered estimators and raw sources filled in."""
    doc = parse_yaml_text(resources.files("adjoint_meta").joinpath("schema/params.schema.yaml").read_text())
    defs = doc["$defs"]
    common = defs.pop("est_common")
    estimator = defs["estimator"]
    estimator["properties"]["kind"]["enum"] = list(kinds.KINDS)
    estimator["allOf"] = [
        {"if": {"properties": {"kind": {"const": kind}}},
         "then": {"type": "object", "additionalProperties": False,
                  "properties": {**common, **hyper_schema(REGISTRY[kind].Hyper)}}}
        for kind in kinds.KINDS]
    sources = list(SOURCES)
    doc["properties"]["raw"]["properties"]["sources"]["items"]["enum"] = sources
    defs["dataset"]["properties"]["source"]["enum"] = [SYNTHETIC, *sources]
    defs["dataset_collab"]["properties"]["source"]["enum"] = sources
    for name in ("dataset_synthetic", "dataset_collab"):
        defs[name]["properties"]["backend"]["enum"] = list(backends.BACKENDS)
        defs[name]["properties"]["activation"]["enum"] = list(ACTIVATIONS)
    synthetic = defs["dataset_synthetic"]["properties"]
    synthetic["family"]["enum"] = list(dict.fromkeys(f for f, _ in FAMILIES))
    synthetic["variant"]["enum"] = list(dict.fromkeys(v for _, v in FAMILIES))
    return doc


def _strip_required(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_required(v) for k, v in node.items() if k not in ("required", "minProperties")}
    if isinstance(node, list):
        return [_strip_required(v) for v in node]
    return node


@cache
def _partial_schema() -> dict:
    return _strip_required(schema())


def key_of(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _format_error(err: jsonschema.ValidationError) -> str:
    key = key_of(err.absolute_path)
    v, sch, inst = err.validator, err.schema, err.instance
    if v == "additionalProperties" and isinstance(inst, dict):
        allowed = sorted(sch.get("properties", {}))
        unknown = sorted(k for k in inst if k not in allowed)
        prefix = "" if key == "(top level)" else key + "."
        names = ", ".join(prefix + k for k in unknown)
        return f"unknown key {names}; allowed keys here: {', '.join(allowed) or '(none)'}"
    if v == "required":
        missing = re.findall(r"'([^']+)' is a required property", err.message)
        prefix = "" if key == "(top level)" else key + "."
        return f"missing key {prefix}{missing[0] if missing else err.message}"
    if v in ("enum", "const"):
        allowed = sch.get("enum", [sch.get("const")])
        return f"{key}: {inst!r} is not allowed; allowed values: {', '.join(map(str, allowed))}"
    if v == "type":
        want = sch["type"] if isinstance(sch["type"], str) else " or ".join(sch["type"])
        return f"{key}: must be of type {want} (got {inst!r})"
    bounds = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    if v in bounds:
        return f"{key}: must be {bounds[v]} {sch[v]} (got {inst!r})"
    if v == "propertyNames":
        return f"{key}: name {inst!r} does not match the pattern {sch.get('pattern', '')!r}"
    if v == "minItems":
        return f"{key}: needs at least {sch['minItems']} item(s)"
    if v == "minProperties":
        return f"{key}: needs at least {sch['minProperties']} entry(ies)"
    if v == "oneOf":
        return f"{key}: {inst!r} is not allowed; {sch.get('description', err.message)}"
    if v == "uniqueItems":
        return f"{key}: items must be unique (got {inst!r})"
    return f"{key}: {err.message}"


def _non_finite(node: Any, path: tuple = ()) -> list[str]:
    """NaN and infinities pass JSON Schema's bounds (every comparison with NaN is false): refuse them."""
    if isinstance(node, float) and not math.isfinite(node):
        return [f"{key_of(path)}: must be a finite number (got {node})"]
    if isinstance(node, Mapping):
        return [m for k, v in node.items() for m in _non_finite(v, (*path, k))]
    if isinstance(node, list):
        return [m for i, v in enumerate(node) for m in _non_finite(v, (*path, i))]
    return []


def validate(doc: Any, *, source: str = DEFAULT_PARAMS, partial: bool = False) -> None:
    """Raise ParamsError listing every problem, each naming its key.  ``partial``: a job's slice,
    which holds only the keys its step reads (nothing is required, only the cross-checks that need
    no other key run)."""
    if not isinstance(doc, dict):
        raise ParamsError(f"{source}: expected a mapping of parameters at the top level")
    sch = _partial_schema() if partial else schema()
    validator = jsonschema.Draft202012Validator(sch)
    errors = sorted(validator.iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    # propertyNames errors arrive per offending name; keep them, drop duplicates
    msgs = list(dict.fromkeys(_format_error(e) for e in errors)) + _non_finite(doc)
    if not msgs:
        msgs = checks.run(doc, partial=partial)
    if msgs:
        raise ParamsError(f"{source}: invalid parameters:\n  - " + "\n  - ".join(msgs))
