"""Parameter documents as plain data: reading YAML, merging, and dotted keys (``meta.lr``)."""
from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PARAMS = "params.yaml"
FULL_PRESET = "full"


class ParamsError(ValueError):
    """A parameter file or override that cannot be used; the message names the key."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.2 behaviour, as DVC does)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ParamsError(f"{path}: parameter file not found") from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ParamsError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None


def parse_yaml_text(text: str) -> Any:
    """A YAML document read as params.yaml is (the package's schema file, for one)."""
    return yaml.load(text, Loader=_Loader)


def parse_value(text: str) -> Any:
    """Parse an override value the way params.yaml would (``0.01``, ``[1, 2]``, ``adam``)."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return text


def deep_merge(base: Mapping, overlay: Mapping) -> dict:
    """Recursive dict merge; lists and scalars in ``overlay`` replace those in ``base``."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def get_dotted(doc: Mapping, dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ParamsError(f"missing key {dotted}")
        node = node[part]
    return node


def set_dotted(doc: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = doc
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            if nxt is not None:
                raise ParamsError(f"override {dotted}: '{'.'.join(parts[:i + 1])}' is not a mapping")
            nxt = node[part] = {}
        node = nxt
    node[parts[-1]] = value
