"""params.yaml: loading, presets, validation and per-job slices.

Every pipeline step receives a *slice* of the parameters: a document shaped
like params.yaml that keeps only the keys the step reads (``prune``).  The
Snakemake rules pass that slice through ``params:`` (so a job reruns exactly
when one of its own values changes) and the DVC stages declare the same keys
under ``params:``; ``RELEVANT_KEYS`` is the one list both are checked against.
"""
from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import jsonschema
import yaml

from adjoint_meta import kinds, paths

DEFAULT_PARAMS = "params.yaml"
FULL_PRESET = "full"


class ParamsError(ValueError):
    """A parameter file or override that cannot be used; the message names the key."""


# ---------------------------------------------------------------------------
# YAML reading
# ---------------------------------------------------------------------------

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


def parse_value(text: str) -> Any:
    """Parse an override value the way params.yaml would (``0.01``, ``[1, 2]``, ``adam``)."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return text


# ---------------------------------------------------------------------------
# merging, overrides and presets
# ---------------------------------------------------------------------------

def deep_merge(base: Mapping, overlay: Mapping) -> dict:
    """Recursive dict merge; lists and scalars in ``overlay`` replace those in ``base``."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


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
                node = _get(out, key)
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
            "dvc.yaml expands "
            "those lists from params.yaml itself")
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


# ---------------------------------------------------------------------------
# schema validation with messages that name the key
# ---------------------------------------------------------------------------

@lru_cache(maxsize=None)
def schema() -> dict:
    """The parameter schema, with the allowed estimator kinds filled in from ``kinds.KINDS`` (the
    one list of them; the schema file leaves the enum out)."""
    text = resources.files("adjoint_meta").joinpath("schema/params.schema.yaml").read_text()
    doc = yaml.load(text, Loader=_Loader)
    doc["$defs"]["estimator"]["properties"]["kind"]["enum"] = list(kinds.KINDS)
    return doc


def _strip_required(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_required(v) for k, v in node.items() if k not in ("required", "minProperties")}
    if isinstance(node, list):
        return [_strip_required(v) for v in node]
    return node


@lru_cache(maxsize=None)
def _partial_schema() -> dict:
    return _strip_required(schema())


def _key(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _format_error(err: jsonschema.ValidationError) -> str:
    key = _key(err.absolute_path)
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


def validate(doc: Any, *, source: str = DEFAULT_PARAMS, partial: bool = False) -> None:
    """Raise ParamsError listing every problem, each naming its key."""
    if not isinstance(doc, dict):
        raise ParamsError(f"{source}: expected a mapping of parameters at the top level")
    sch = _partial_schema() if partial else schema()
    validator = jsonschema.Draft202012Validator(sch)
    errors = sorted(validator.iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    # propertyNames errors arrive per offending name; keep them, drop duplicates
    msgs = list(dict.fromkeys(_format_error(e) for e in errors)) + _non_finite(doc)
    if not msgs:
        msgs = _cross_checks(doc, partial=partial)
    if msgs:
        raise ParamsError(f"{source}: invalid parameters:\n  - " + "\n  - ".join(msgs))


def _non_finite(node: Any, path: tuple = ()) -> list[str]:
    """NaN and infinities pass JSON Schema's bounds (every comparison with NaN is false): refuse them."""
    if isinstance(node, float) and not math.isfinite(node):
        return [f"{_key(path)}: must be a finite number (got {node})"]
    if isinstance(node, Mapping):
        return [m for k, v in node.items() for m in _non_finite(v, (*path, k))]
    if isinstance(node, list):
        return [m for i, v in enumerate(node) for m in _non_finite(v, (*path, i))]
    return []


def _names(doc: Mapping, key: str) -> list[str]:
    return sorted((doc.get(key) or {}).keys())


def _baseline(cfg: Mapping) -> bool:
    """Whether an estimator configuration is an initialization baseline (``kinds.INITIALIZATIONS``)."""
    return cfg.get("kind") in kinds.INITIALIZATIONS


def refuse_baselines(doc: Mapping, section: str, name: str) -> None:
    """Stop a profile or accuracy study (``section`` = profiles | accuracy) that lists a baseline:
    they compare meta-gradients, and a baseline has none (the same check ``validate`` makes on a
    whole parameter file, for a job that received only its slice)."""
    estimators = doc.get("estimators") or {}
    for est in (doc.get(section) or {}).get(name, {}).get("estimators", []):
        if _baseline(estimators.get(est) or {}):
            raise ParamsError(f"{section}.{name}.estimators: {est!r} is a baseline (kind "
                              f"{estimators[est]['kind']!r}), not a meta-gradient estimator; {section} compare "
                              "meta-gradients only")


def _cross_checks(doc: Mapping, *, partial: bool) -> list[str]:
    msgs: list[str] = []
    datasets, settings = doc.get("datasets") or {}, doc.get("settings") or {}
    estimators = doc.get("estimators") or {}
    alpha = (doc.get("inner") or {}).get("alpha")

    if not partial:
        preset = doc.get("preset")
        if preset != FULL_PRESET and preset not in (doc.get("presets") or {}):
            msgs.append(f"preset: {preset!r} is not defined; allowed values: "
                        f"{', '.join([FULL_PRESET, *sorted(doc.get('presets') or {})])}")
        for ename, exp in (doc.get("experiments") or {}).items():
            for field, pool in (("datasets", datasets), ("settings", settings), ("estimators", estimators)):
                for name in exp.get(field, []):
                    if name not in pool:
                        msgs.append(f"experiments.{ename}.{field}: {name!r} is not defined under "
                                    f"'{field}'; allowed values: {', '.join(sorted(pool)) or '(none)'}")
            if exp.get("eval_steps", 0) < exp.get("steps", 0):
                msgs.append(f"experiments.{ename}.eval_steps: must be >= experiments.{ename}.steps "
                            f"({exp.get('steps')}), the step the tables report")
            for dname in exp.get("datasets", []):
                ds = datasets.get(dname) or {}
                for sname in exp.get("settings", []):
                    st = settings.get(sname)
                    if st is None:
                        continue
                    if ds.get("source") not in (None, "synthetic"):
                        if st["shot"] + st["val"] > ds["n_items"]:
                            msgs.append(f"settings.{sname}: shot + val = {st['shot'] + st['val']} exceeds "
                                        f"datasets.{dname}.n_items ({ds['n_items']}), the most ratings any user "
                                        "can have, so no training task could be drawn")
                        if st["shot"] >= ds["min_test_ratings"]:
                            msgs.append(f"settings.{sname}: shot = {st['shot']} leaves no rating to evaluate "
                                        f"for test users of datasets.{dname} (min_test_ratings = "
                                        f"{ds['min_test_ratings']}); raise min_test_ratings")
                        continue
                    if ds.get("source") != "synthetic":
                        continue
                    if st["shot"] + st["val"] > ds["train_points"]:
                        msgs.append(f"settings.{sname}: shot + val = {st['shot'] + st['val']} exceeds "
                                    f"datasets.{dname}.train_points ({ds['train_points']})")
                    if st["shot"] > ds["test_support_points"]:
                        msgs.append(f"settings.{sname}: shot = {st['shot']} exceeds "
                                    f"datasets.{dname}.test_support_points ({ds['test_support_points']})")
            every = (doc.get("evaluation") or {}).get("record_every")
            if isinstance(every, int) and every > exp.get("eval_steps", every):
                msgs.append(f"evaluation.record_every: {every} exceeds experiments.{ename}.eval_steps "
                            f"({exp.get('eval_steps')}), so its error curves would hold no step in between")
            for est in exp.get("estimators", []):
                cfg = estimators.get(est) or {}
                if cfg.get("kind") == "tbptt" and cfg.get("window", 0) > exp.get("steps", 0):
                    msgs.append(f"estimators.{est}.window: {cfg['window']} exceeds experiments.{ename}.steps "
                                f"({exp.get('steps')}), the steps it would truncate")
                if cfg.get("kind") != "amaml" or not alpha:
                    continue
                h = cfg.get("h") or alpha
                n = exp["steps"] * alpha / h
                if abs(n - round(n)) > 1e-6 or round(n) < 1:
                    msgs.append(f"estimators.{est}.h: T = experiments.{ename}.steps * inner.alpha = "
                                f"{exp['steps'] * alpha:g} is not a whole number of steps h = {h:g}")
        protocol = (doc.get("evaluation") or {}).get("released_protocol") or {}
        if isinstance(protocol.get("record_every"), int) and protocol["record_every"] > protocol.get("steps", 0):
            msgs.append(f"evaluation.released_protocol.record_every: {protocol['record_every']} exceeds "
                        f"evaluation.released_protocol.steps ({protocol.get('steps')}), so its curve would hold "
                        "only the start and the end")
        reserved = paths.NRMSE_DEFINITIONS.rsplit("/", 1)[-1].removesuffix(".csv")
        if reserved in (doc.get("experiments") or {}):
            msgs.append(f"experiments.{reserved}: the name is taken: its table would overwrite "
                        f"{paths.NRMSE_DEFINITIONS}; rename the experiment")
        for section in ("profiles", "accuracy"):
            for name, item in (doc.get(section) or {}).items():
                for field, pool in (("dataset", datasets), ("setting", settings)):
                    if item.get(field) not in pool:
                        msgs.append(f"{section}.{name}.{field}: {item.get(field)!r} is not defined under "
                                    f"'{field}s'; allowed values: {', '.join(sorted(pool))}")
                for est in item.get("estimators", []):
                    if est not in estimators:
                        msgs.append(f"{section}.{name}.estimators: {est!r} is not defined under 'estimators'; "
                                    f"allowed values: {', '.join(sorted(estimators))}")
                    elif estimators[est].get("kind") in kinds.INITIALIZATIONS:
                        msgs.append(f"{section}.{name}.estimators: {est!r} is a baseline (kind "
                                    f"{estimators[est]['kind']!r}), not a meta-gradient estimator; {section} compare "
                                    f"meta-gradients only; allowed values: "
                                    f"{', '.join(sorted(e for e, c in estimators.items() if not _baseline(c)))}")
        exps = doc.get("experiments") or {}
        for ename, exp in exps.items():
            pt = exp.get("paired_test")
            if not pt:
                continue
            src_name = pt.get("experiment", ename)
            src = exps.get(src_name)
            if src is None:
                msgs.append(f"experiments.{ename}.paired_test.experiment: {src_name!r} is not an experiment; "
                            f"allowed values: {', '.join(sorted(exps))}")
                continue
            if _baseline(estimators.get(pt["estimator"]) or {}):
                msgs.append(f"experiments.{ename}.paired_test.estimator: {pt['estimator']!r} is a baseline (kind "
                            f"{estimators[pt['estimator']]['kind']!r}); the reference must be a meta-learned "
                            "estimator")
            if pt["estimator"] not in src.get("estimators", []):
                where = (f"experiments.{src_name}" if "experiment" in pt else
                         f"experiments.{ename} (experiments.{ename}.paired_test.experiment is not set)")
                msgs.append(f"experiments.{ename}.paired_test.estimator: {pt['estimator']!r} is not trained in "
                            f"{where}; allowed values: {', '.join(src.get('estimators', []))}")
            if src_name != ename:
                for key in ("steps", "maml_steps", "eval_steps"):
                    if src.get(key) != exp.get(key):
                        msgs.append(f"experiments.{ename}.{key}: {exp.get(key)} differs from experiments."
                                    f"{src_name}.{key} ({src.get(key)}), whose results the paired test uses")
                for field in ("datasets", "settings"):
                    missing = set(exp.get(field, [])) - set(src.get(field, []))
                    if missing:
                        msgs.append(f"experiments.{ename}.{field}: {sorted(missing)} not in experiments."
                                    f"{src_name}.{field}, whose results the paired test uses")
        raw_sources = (doc.get("raw") or {}).get("sources", [])
        used: dict[str, str] = {}
        for dname, ds in datasets.items():
            src = ds.get("source")
            if src in (None, "synthetic"):
                continue
            if src not in raw_sources:
                msgs.append(f"datasets.{dname}.source: {src!r} is not listed in raw.sources "
                            f"({', '.join(raw_sources) or 'empty'}); add it there")
            if src in used:
                msgs.append(f"datasets.{dname}.source: {src!r} is already the source of datasets.{used[src]}; "
                            "each raw source feeds one dataset")
            used[src] = dname
        meta = doc.get("meta") or {}
        for dname, ds in datasets.items():
            if ds.get("source") == "synthetic" and meta.get("meta_batch", 0) > ds.get("n_train_tasks", 0):
                msgs.append(f"meta.meta_batch: {meta['meta_batch']} exceeds datasets.{dname}.n_train_tasks "
                            f"({ds['n_train_tasks']})")

    for name, am in estimators.items():
        if am.get("kind") != "amaml" or am.get("backward") != "discrete":
            continue
        if am.get("forward") != "euler":
            msgs.append(f"estimators.{name}.backward: 'discrete' is the exact adjoint of an euler forward; "
                        f"estimators.{name}.forward is {am.get('forward')!r} (allowed with it: euler)")
        if alpha is not None and am.get("h") not in (None, alpha):
            msgs.append(f"estimators.{name}.h: the discrete adjoint needs h = inner.alpha ({alpha}); "
                        f"got {am.get('h')}")
    return msgs


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------

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
    effective = apply_preset(doc)
    msgs = check_against_tasks(effective)
    if msgs:
        raise ParamsError(f"{path}: invalid parameters:\n  - " + "\n  - ".join(msgs))
    return effective


def check_against_tasks(doc: Mapping, root: str | Path = ".") -> list[str]:
    """Settings no user of a collaborative dataset can serve, found from the task summaries
    (data/tasks/<dataset>.json) where they already exist and were made with the same filter.
    Before the task files exist the training step finds the same problem before its first
    meta-step (train.run)."""
    msgs = []
    for ename, exp in doc["experiments"].items():
        for dname in exp["datasets"]:
            ds = doc["datasets"][dname]
            summary_path = Path(root) / paths.TASKS_SUMMARY.format(dataset=dname)
            if ds["source"] == "synthetic" or not summary_path.is_file():
                continue
            try:
                summary = json.loads(summary_path.read_text())
                made_with = summary["filter"]
                most = int(summary["ratings_per_task"]["max"])
            except (ValueError, KeyError, TypeError):
                continue  # an unreadable or older summary: make-tasks rewrites it
            if (made_with.get("n_items"), made_with.get("min_ratings")) != (ds["n_items"], ds["min_ratings"]):
                continue
            for sname in exp["settings"]:
                st = doc["settings"][sname]
                if st["shot"] + st["val"] > most:
                    msgs.append(f"settings.{sname}: shot + val = {st['shot'] + st['val']} exceeds the ratings "
                                f"of every user of datasets.{dname} (at most {most}, {summary_path}), so no "
                                f"training task of experiments.{ename} could be drawn")
    return list(dict.fromkeys(msgs))


# ---------------------------------------------------------------------------
# the grid of jobs and the keys each step reads
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    """One meta-training run: experiment x dataset x setting x estimator x seed."""
    experiment: str
    dataset: str
    setting: str
    estimator: str
    seed: int

    def as_dict(self) -> dict:
        return dict(experiment=self.experiment, dataset=self.dataset, setting=self.setting,
                    estimator=self.estimator, seed=self.seed)


def cells(params: Mapping) -> list[Cell]:
    out = []
    for ename, exp in params["experiments"].items():
        for d in exp["datasets"]:
            for s in exp["settings"]:
                for e in exp["estimators"]:
                    for seed in params["meta"]["seeds"]:
                        out.append(Cell(ename, d, s, e, int(seed)))
    return out


def train_cost(params: Mapping, cell: Mapping) -> float:
    """A rough relative cost of a training job (gradient evaluations of one example per
    meta-step), for scheduling the longest jobs first; only the order matters.  Unit weights:
    a gradient 1, a linearization 0.8, a Hessian-vector product 1.3 (measured ratios of the
    model's passes), unrolled MAML's backward 2."""
    exp = params["experiments"][cell["experiment"]]
    est = params["estimators"][cell["estimator"]]
    setting = params["settings"][cell["setting"]]
    kind = est["kind"]
    K = max(inner_steps(kind, exp["steps"], exp["maml_steps"]), 1)  # a baseline: one gradient per step
    per_step = {"maml": 3.0, "maml1": 3.0, "maml_adjoint": 3.1, "tbptt": 1.2, "imaml": 1.3,
                "es": 2.0 * float(est.get("directions", 1))}.get(kind, 1.0)
    if kind == "amaml":
        forward = {"rk4": 4.0, "euler": 1.0}.get(est.get("forward", "dopri5"), 0.4)
        per_step = forward + 0.8 + 1.3 * (2 if est.get("backward", "heun") == "heun" else 1)
    return K * per_step * (int(setting["shot"]) + int(setting["val"])) * int(params["meta"]["meta_epochs"])


def baseline_datasets(params: Mapping) -> list[str]:
    """The collaborative-filtering datasets of the experiments: the summarize step fits the predictor
    baselines (``adjoint_meta.baselines``) on their task pools."""
    return [d for d in datasets_used(params) if params["datasets"][d]["source"] != "synthetic"]


def datasets_used(params: Mapping) -> list[str]:
    return sorted({c.dataset for c in cells(params)})


def profile_jobs(params: Mapping) -> list[dict]:
    """One profiling job per profile (all its estimators, timed side by side against one floor),
    with the profile's dataset and setting."""
    return [dict(profile=name, dataset=prof["dataset"], setting=prof["setting"])
            for name, prof in params["profiles"].items()]


def accuracy_jobs(params: Mapping) -> list[dict]:
    """One job per accuracy study, with its dataset and setting."""
    return [dict(name=name, dataset=study["dataset"], setting=study["setting"])
            for name, study in params["accuracy"].items()]


# Keys each step reads, as dotted templates over the job's wildcards. The DVC
# stages list exactly these under ``params:`` (checked by a test).
RELEVANT_KEYS: dict[str, list[str]] = {
    "fetch": ["raw.download"],
    "make-tasks": ["seed", "datasets.{dataset}"],
    "train": [
        "seed", "runtime", "inner", "datasets.{dataset}", "settings.{setting}",
        "estimators.{estimator}",
        "meta.optimizer", "meta.lr", "meta.meta_batch", "meta.meta_epochs", "meta.on_nonfinite",
        "experiments.{experiment}.steps", "experiments.{experiment}.maml_steps",
    ],
    "evaluate": [
        "seed", "runtime", "inner", "datasets.{dataset}", "settings.{setting}", "evaluation",
        "experiments.{experiment}.steps", "experiments.{experiment}.maml_steps",
        "experiments.{experiment}.eval_steps",
    ],
    # a profile and an accuracy study each compare many estimator configurations in one job
    "profile": [
        "seed", "runtime", "inner", "meta.meta_batch", "datasets.{dataset}", "settings.{setting}",
        "estimators", "profiles.{profile}",
    ],
    "accuracy": [
        "seed", "runtime", "inner", "meta.meta_batch", "datasets.{dataset}", "settings.{setting}",
        "estimators", "accuracy.{name}",
    ],
    # the predictor baselines (adjoint_meta.baselines) read the task pools: the datasets and settings
    "summarize": ["experiments", "profiles", "accuracy", "estimators", "meta.seeds", "datasets", "settings"],
    # the report states the hash of the effective parameters, so it reads them all
    "report": ["*"],
}


def _get(doc: Mapping, dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ParamsError(f"missing key {dotted}")
        node = node[part]
    return node


def prune(params: Mapping, step: str, **wildcards: Any) -> dict:
    """The slice of ``params`` that ``step`` reads for the given wildcards."""
    if step not in RELEVANT_KEYS:
        raise ParamsError(f"unknown step {step!r}; allowed values: {', '.join(RELEVANT_KEYS)}")
    if RELEVANT_KEYS[step] == ["*"]:
        return copy.deepcopy(dict(params))
    out: dict = {}
    for template in RELEVANT_KEYS[step]:
        dotted = template.format(**wildcards)
        set_dotted(out, dotted, copy.deepcopy(_get(params, dotted)))
    return out


def slice_json(params: Mapping, step: str, **wildcards: Any) -> str:
    """Compact, key-sorted JSON of ``prune``: what a Snakemake rule passes on."""
    return json.dumps(prune(params, step, **wildcards), sort_keys=True, separators=(",", ":"))


def load_slice(text: str, step: str, **wildcards: Any) -> dict:
    """Parse and validate a slice passed on the command line."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParamsError(f"--slice: not valid JSON ({exc})") from None
    validate(doc, source="--slice", partial=True)
    return prune(doc, step, **wildcards)


MAML_STEPS_KINDS = ("maml", "maml_fo")  # the kinds that run experiments.*.maml_steps inner steps


def inner_steps(kind: str, steps: int, maml_steps: int | None = None) -> int:
    """K an estimator of ``kind`` uses where the others use ``steps``: unrolled MAML and its
    first-order version (``MAML_STEPS_KINDS``) use ``maml_steps`` when given (the paper's tables
    and Figure 2), MAML-1 one step, and the initialization baselines (``kinds.INITIALIZATIONS``)
    none: they have no inner loop.  ``maml_adjoint`` (MAML's exact gradient) takes all K."""
    if kind in kinds.INITIALIZATIONS:
        return 0
    if kind in MAML_STEPS_KINDS and maml_steps is not None:
        return int(maml_steps)
    if kind == "maml1":
        return 1
    return int(steps)


def outer_optimizer(meta: Mapping, estimator_cfg: Mapping) -> tuple[str, float]:
    """(optimizer, learning rate) of the outer loop: the configuration's own ``outer`` if it has one."""
    outer = estimator_cfg.get("outer") or meta
    return str(outer["optimizer"]), float(outer["lr"])
