"""Cross-checks of a parameter document that the schema cannot express, one small named check each.

A check takes the whole document (already valid against the schema) and returns its messages, each
naming the key to change.  ``run`` calls every check of ``CHECKS`` in order; on a job's slice
(``partial``) only those of ``PARTIAL_CHECKS``, which need no other section.  Each check has its own
case in tests/test_hostile_params.py.  ``check_against_tasks`` is different: it reads the task
summaries on disk, so ``config.load`` calls it once the document is complete.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from adjoint_meta import kinds, paths
from adjoint_meta.config.documents import FULL_PRESET, ParamsError
from adjoint_meta.estimators import REGISTRY
from adjoint_meta.fewshot import CLASSES

# Only refuses parameters, never changes a result: no job's code input (adjoint_meta.codedeps).
VALIDATION_ONLY = True

Check = Callable[[Mapping], Iterator[str]]
CHECKS: dict[str, Check] = {}
PARTIAL_CHECKS = ("estimator_configurations", "compile_backend")


def check(fn: Check) -> Check:
    CHECKS[fn.__name__] = fn
    return fn


def run(doc: Mapping, *, partial: bool = False) -> list[str]:
    names = PARTIAL_CHECKS if partial else CHECKS
    return [m for name in names for m in CHECKS[name](doc)]


def _section(doc: Mapping, name: str) -> Mapping:
    return doc.get(name) or {}


def is_baseline(cfg: Mapping) -> bool:
    """Whether an estimator configuration is an initialization baseline (``kinds.INITIALIZATIONS``)."""
    return cfg.get("kind") in kinds.INITIALIZATIONS


def refuse_baselines(doc: Mapping, section: str, name: str) -> None:
    """Stop a profile or accuracy study (``section`` = profiles | accuracy) that lists a baseline:
    they compare meta-gradients, and a baseline has none (what ``studies`` checks on a whole
    parameter file, for a job that received only its slice)."""
    estimators = _section(doc, "estimators")
    for est in _section(doc, section).get(name, {}).get("estimators", []):
        if is_baseline(estimators.get(est) or {}):
            raise ParamsError(f"{section}.{name}.estimators: {est!r} is a baseline (kind "
                              f"{estimators[est]['kind']!r}), not a meta-gradient estimator; {section} compare "
                              "meta-gradients only")


@check
def preset(doc: Mapping) -> Iterator[str]:
    name, presets = doc.get("preset"), _section(doc, "presets")
    if name != FULL_PRESET and name not in presets:
        yield f"preset: {name!r} is not defined; allowed values: {', '.join([FULL_PRESET, *sorted(presets)])}"


@check
def experiment_names(doc: Mapping) -> Iterator[str]:
    """Every dataset, setting and estimator an experiment names is defined."""
    for ename, exp in _section(doc, "experiments").items():
        for field in ("datasets", "settings", "estimators"):
            pool = _section(doc, field)
            for name in exp.get(field, []):
                if name not in pool:
                    yield (f"experiments.{ename}.{field}: {name!r} is not defined under '{field}'; allowed values: "
                           f"{', '.join(sorted(pool)) or '(none)'}")


@check
def eval_steps(doc: Mapping) -> Iterator[str]:
    """Fine-tuning at test time reaches the step K that the tables report."""
    for ename, exp in _section(doc, "experiments").items():
        if exp.get("eval_steps", 0) < exp.get("steps", 0):
            yield (f"experiments.{ename}.eval_steps: must be >= experiments.{ename}.steps ({exp.get('steps')}), "
                   "the step the tables report")


@check
def settings_fit_datasets(doc: Mapping) -> Iterator[str]:
    """Each setting of an experiment can be drawn from each of its datasets."""
    datasets, settings = _section(doc, "datasets"), _section(doc, "settings")
    for exp in _section(doc, "experiments").values():
        for dname in exp.get("datasets", []):
            ds = datasets.get(dname) or {}
            for sname in exp.get("settings", []):
                st = settings.get(sname)
                if st is None or ds.get("source") is None:
                    continue
                n = st["shot"] + st["val"]
                if ds["source"] != "synthetic":
                    if n > ds["n_items"]:
                        yield (f"settings.{sname}: shot + val = {n} exceeds datasets.{dname}.n_items "
                               f"({ds['n_items']}), the most ratings any user can have, so no training task "
                               "could be drawn")
                    if st["shot"] >= ds["min_test_ratings"]:
                        yield (f"settings.{sname}: shot = {st['shot']} leaves no rating to evaluate for test users "
                               f"of datasets.{dname} (min_test_ratings = {ds['min_test_ratings']}); raise "
                               "min_test_ratings")
                    continue
                if n > ds["train_points"]:
                    yield (f"settings.{sname}: shot + val = {n} exceeds datasets.{dname}.train_points "
                           f"({ds['train_points']})")
                if st["shot"] > ds["test_support_points"]:
                    yield (f"settings.{sname}: shot = {st['shot']} exceeds datasets.{dname}.test_support_points "
                           f"({ds['test_support_points']})")


@check
def record_every(doc: Mapping) -> Iterator[str]:
    """The error curves of fine-tuning and of the released protocol hold a step in between."""
    evaluation = _section(doc, "evaluation")
    every = evaluation.get("record_every")
    for ename, exp in _section(doc, "experiments").items():
        if isinstance(every, int) and every > exp.get("eval_steps", every):
            yield (f"evaluation.record_every: {every} exceeds experiments.{ename}.eval_steps "
                   f"({exp.get('eval_steps')}), so its error curves would hold no step in between")
    protocol = evaluation.get("released_protocol") or {}
    if isinstance(protocol.get("record_every"), int) and protocol["record_every"] > protocol.get("steps", 0):
        yield (f"evaluation.released_protocol.record_every: {protocol['record_every']} exceeds "
               f"evaluation.released_protocol.steps ({protocol.get('steps')}), so its curve would hold only the "
               "start and the end")


@check
def estimator_configurations(doc: Mapping) -> Iterator[str]:
    """Each configuration's own checks (``Estimator.checks``), against the experiments that use it."""
    experiments = _section(doc, "experiments")
    alpha = _section(doc, "inner").get("alpha")
    for name, cfg in _section(doc, "estimators").items():
        cls = REGISTRY.get(cfg.get("kind"))
        if cls is None:
            continue
        using = {e: x for e, x in experiments.items() if name in x.get("estimators", [])}
        yield from cls.checks(cls.hyper_of(cfg), f"estimators.{name}", using, alpha)


@check
def learned_rates(doc: Mapping) -> Iterator[str]:
    """Test tasks are fine-tuned with learned inner step sizes, which only gradient descent takes."""
    optimizer = _section(doc, "evaluation").get("optimizer")
    used = {n for x in _section(doc, "experiments").values() for n in x.get("estimators", [])}
    for name, cfg in _section(doc, "estimators").items():
        if name in used and cfg.get("learn_rate") and optimizer != "gd":
            yield (f"evaluation.optimizer: {optimizer!r} cannot fine-tune with the step sizes that "
                   f"estimators.{name} learns (learn_rate: {cfg['learn_rate']}); use gd")


@check
def compile_backend(doc: Mapping) -> Iterator[str]:
    """torch.compile applies to the hand-derived MLP's passes only."""
    if _section(doc, "runtime").get("compile"):
        for dname, ds in _section(doc, "datasets").items():
            if ds.get("backend", "mlp") != "mlp":
                yield (f"runtime.compile: true compiles the hand-derived MLP's passes; datasets.{dname}.backend is "
                       f"{ds['backend']!r} (set runtime.compile: false, or backend: mlp)")


@check
def reserved_names(doc: Mapping) -> Iterator[str]:
    reserved = paths.NRMSE_DEFINITIONS.rsplit("/", 1)[-1].removesuffix(".csv")
    if reserved in _section(doc, "experiments"):
        yield (f"experiments.{reserved}: the name is taken: its table would overwrite {paths.NRMSE_DEFINITIONS}; "
               "rename the experiment")


@check
def fewshot(doc: Mapping) -> Iterator[str]:
    """The few-shot experiment names defined estimators, a meta-learner among them as its reference,
    and tasks both class sets can serve (the digits have classes 0..9)."""
    fs, estimators = _section(doc, "fewshot"), _section(doc, "estimators")
    if not fs:
        return
    for name in fs.get("estimators", []):
        if name not in estimators:
            yield (f"fewshot.estimators: {name!r} is not defined under 'estimators'; allowed values: "
                   f"{', '.join(sorted(estimators)) or '(none)'}")
    ref = fs.get("reference")
    if ref not in fs.get("estimators", []):
        yield f"fewshot.reference: {ref!r} is not one of fewshot.estimators ({', '.join(fs.get('estimators', []))})"
    elif ref in estimators and is_baseline(estimators[ref]):
        yield f"fewshot.reference: {ref!r} is an initialization baseline; the reference is a meta-learner"
    test = set(fs.get("test_classes", []))
    ways = fs.get("ways", 0)
    for role, n in (("test", len(test)), ("meta-training", CLASSES - len(test))):
        if ways > n:
            yield (f"fewshot.ways: {ways} classes per task, but the {role} tasks have {n} (fewshot.test_classes "
                   f"holds {sorted(test)}); lower ways or move classes")


@check
def studies(doc: Mapping) -> Iterator[str]:
    """Profiles and accuracy studies name defined datasets, settings and meta-gradient estimators."""
    datasets, settings, estimators = _section(doc, "datasets"), _section(doc, "settings"), _section(doc, "estimators")
    for section in ("profiles", "accuracy"):
        for name, item in _section(doc, section).items():
            for field, pool in (("dataset", datasets), ("setting", settings)):
                if item.get(field) not in pool:
                    yield (f"{section}.{name}.{field}: {item.get(field)!r} is not defined under '{field}s'; allowed "
                           f"values: {', '.join(sorted(pool))}")
            for est in item.get("estimators", []):
                if est not in estimators:
                    yield (f"{section}.{name}.estimators: {est!r} is not defined under 'estimators'; allowed values: "
                           f"{', '.join(sorted(estimators))}")
                elif is_baseline(estimators[est]):
                    yield (f"{section}.{name}.estimators: {est!r} is a baseline (kind {estimators[est]['kind']!r}), "
                           f"not a meta-gradient estimator; {section} compare meta-gradients only; allowed values: "
                           f"{', '.join(sorted(e for e, c in estimators.items() if not is_baseline(c)))}")
                elif section == "accuracy" and estimators[est].get("learn_rate"):
                    yield (f"accuracy.{name}.estimators: {est!r} learns its step sizes (learn_rate: "
                           f"{estimators[est]['learn_rate']}); accuracy studies compare the meta-gradient in theta "
                           "at a fixed alpha; use a configuration without learn_rate")


@check
def paired_tests(doc: Mapping) -> Iterator[str]:
    """A paired test's reference is a meta-learner trained, with the same sizes, where it says."""
    exps, estimators = _section(doc, "experiments"), _section(doc, "estimators")
    for ename, exp in exps.items():
        pt = exp.get("paired_test")
        if not pt:
            continue
        src_name = pt.get("experiment", ename)
        src = exps.get(src_name)
        if src is None:
            yield (f"experiments.{ename}.paired_test.experiment: {src_name!r} is not an experiment; allowed values: "
                   f"{', '.join(sorted(exps))}")
            continue
        if is_baseline(estimators.get(pt["estimator"]) or {}):
            yield (f"experiments.{ename}.paired_test.estimator: {pt['estimator']!r} is a baseline (kind "
                   f"{estimators[pt['estimator']]['kind']!r}); the reference must be a meta-learned estimator")
        if pt["estimator"] not in src.get("estimators", []):
            where = (f"experiments.{src_name}" if "experiment" in pt else
                     f"experiments.{ename} (experiments.{ename}.paired_test.experiment is not set)")
            yield (f"experiments.{ename}.paired_test.estimator: {pt['estimator']!r} is not trained in {where}; "
                   f"allowed values: {', '.join(src.get('estimators', []))}")
        if src_name == ename:
            continue
        for key in ("steps", "maml_steps", "eval_steps"):
            if src.get(key) != exp.get(key):
                yield (f"experiments.{ename}.{key}: {exp.get(key)} differs from experiments.{src_name}.{key} "
                       f"({src.get(key)}), whose results the paired test uses")
        for field in ("datasets", "settings"):
            missing = set(exp.get(field, [])) - set(src.get(field, []))
            if missing:
                yield (f"experiments.{ename}.{field}: {sorted(missing)} not in experiments.{src_name}.{field}, "
                       "whose results the paired test uses")


@check
def raw_sources(doc: Mapping) -> Iterator[str]:
    """Each collaborative dataset's source is fetched (raw.sources) and feeds no other dataset."""
    listed = _section(doc, "raw").get("sources", [])
    used: dict[str, str] = {}
    for dname, ds in _section(doc, "datasets").items():
        src = ds.get("source")
        if src in (None, "synthetic"):
            continue
        if src not in listed:
            yield (f"datasets.{dname}.source: {src!r} is not listed in raw.sources ({', '.join(listed) or 'empty'}); "
                   "add it there")
        if src in used:
            yield (f"datasets.{dname}.source: {src!r} is already the source of datasets.{used[src]}; each raw source "
                   "feeds one dataset")
        used[src] = dname


@check
def meta_batch(doc: Mapping) -> Iterator[str]:
    """A meta-batch of a synthetic family draws distinct training tasks."""
    batch = _section(doc, "meta").get("meta_batch", 0)
    for dname, ds in _section(doc, "datasets").items():
        if ds.get("source") == "synthetic" and batch > ds.get("n_train_tasks", 0):
            yield f"meta.meta_batch: {batch} exceeds datasets.{dname}.n_train_tasks ({ds['n_train_tasks']})"


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
