"""From params.yaml to the effective parameters: overrides, the preset, validation and defaults."""
from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adjoint_meta.config.checks import check_against_tasks
from adjoint_meta.config.documents import (
    DEFAULT_PARAMS,
    FULL_PRESET,
    ParamsError,
    deep_merge,
    get_dotted,
    parse_value,
    read_yaml,
    set_dotted,
)
from adjoint_meta.config.schema import validate
from adjoint_meta.estimators import REGISTRY
from adjoint_meta.estimators.base import hyper_defaults
from adjoint_meta.reference import paper


def snakemake_overrides(entries: Mapping[str, Any]) -> dict:
    """Overrides from Snakemake's ``--config`` (all entries but ``params``).

    Snakemake accepts only identifier keys there (no dotted paths) and reads a nested value
    with YAML's base loader, which leaves every leaf a string: ``--config 'meta={lr: 0.01}'``
    arrives as ``{"meta": {"lr": "0.01"}}``.  Each leaf string is read again as params.yaml
    would read it, so the override has the type the schema expects."""
    def typed(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: typed(v) for k, v in value.items()}
        if isinstance(value, list):
            return [typed(v) for v in value]
        return parse_value(value) if isinstance(value, str) else value

    return {k: (typed(v) if isinstance(v, (Mapping, list)) else v) for k, v in entries.items() if k != "params"}


def apply_overrides(doc: dict, overrides: Mapping[str, Any]) -> dict:
    """Apply ``{"meta.lr": 0.01, "preset": "quick"}``-style overrides (dotted keys, or mappings
    merged into the node they name, as Snakemake's ``--config 'meta={lr: 0.01}'`` gives them)."""
    out = copy.deepcopy(doc)
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            try:
                node = get_dotted(out, key)
            except ParamsError:
                node = None
            value = deep_merge(node if isinstance(node, Mapping) else {}, value)
        set_dotted(out, key, value)
    return out


def apply_preset(doc: dict) -> dict:
    """Resolve ``preset``: overlay ``presets[preset]`` and record the name."""
    name = doc.get("preset", FULL_PRESET)
    presets = doc.get("presets") or {}
    if name == FULL_PRESET:
        return doc
    if name not in presets:
        allowed = ", ".join([FULL_PRESET, *sorted(presets)])
        raise ParamsError(f"preset: '{name}' is not defined; allowed values: {allowed}")
    resolved = deep_merge(doc, presets[name])
    if _grid(resolved) != _grid(doc):
        raise ParamsError(
            f"presets.{name}: a preset may change sizes, not which outputs exist "
            "(datasets, raw sources, the lists of experiments, profiles and accuracy studies, meta.seeds); "
            "dvc.yaml expands those lists from params.yaml itself")
    return resolved


def _grid(doc: Mapping) -> Any:
    """What decides which outputs exist (and so which DVC stages dvc.yaml expands)."""
    pick = lambda section, fields: {  # noqa: E731
        k: {f: v.get(f) for f in fields} for k, v in (doc.get(section) or {}).items() if isinstance(v, Mapping)}
    return json.dumps({
        "experiments": pick("experiments", ("datasets", "settings", "estimators")),
        "profiles": pick("profiles", ("estimators",)),
        "accuracy": sorted(doc.get("accuracy") or {}),
        "datasets": sorted(doc.get("datasets") or {}),
        "raw": (doc.get("raw") or {}).get("sources"),
        "seeds": (doc.get("meta") or {}).get("seeds"),
    }, sort_keys=True)


def with_defaults(doc: Mapping) -> dict:
    """Every estimator configuration with the hyper-parameters it leaves out set to their declared
    defaults (``Estimator.Hyper``), and every profile's memory cap, where it states none, set to the
    paper's GPU (reference/paper.yaml), so a job's slice and the report show every value it uses."""
    out = copy.deepcopy(dict(doc))
    for name, cfg in (out.get("estimators") or {}).items():
        out["estimators"][name] = {**hyper_defaults(REGISTRY[cfg["kind"]].Hyper), **cfg}
    gpu_gb = paper()["claims"]["figure3"]["numbers"]["gpu_gb"]
    for prof in (out.get("profiles") or {}).values():
        prof.setdefault("memory_cap_gb", gpu_gb)
    return out


def load(path: str | Path = DEFAULT_PARAMS, overrides: Mapping[str, Any] | None = None) -> dict:
    """Read, override, resolve the preset and validate (every preset, not only the active one,
    so a broken preset is found before anyone selects it). Returns the effective parameters."""
    doc = read_yaml(path)
    if not isinstance(doc, dict):
        raise ParamsError(f"{path}: expected a mapping of parameters at the top level")
    if overrides:
        doc = apply_overrides(doc, overrides)
    validate(doc, source=str(path))
    for name in doc.get("presets") or {}:
        validate(apply_preset({**doc, "preset": name}), source=f"{path}, presets.{name}")
    effective = with_defaults(apply_preset(doc))
    msgs = check_against_tasks(effective)
    if msgs:
        raise ParamsError(f"{path}: invalid parameters:\n  - " + "\n  - ".join(msgs))
    return effective
