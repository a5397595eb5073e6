"""The jobs the parameters define, and the slice of the parameters each job reads.

Every pipeline step receives a *slice* of the parameters: a document shaped like params.yaml
that keeps only the keys the step reads (``RELEVANT_KEYS``).  ``job_slice`` is the one way to
get it: the Snakemake rules pass it on the command line (so a job reruns exactly when one of its
own values changes), the DVC stages declare the same keys under ``params:`` and their commands
read the whole file, and the CLI resolves both through the same function.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adjoint_meta.config.documents import ParamsError, get_dotted, set_dotted
from adjoint_meta.config.schema import validate
from adjoint_meta.estimators import REGISTRY


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


CELL_FIELDS = tuple(Cell.__dataclass_fields__)


def cells(params: Mapping) -> list[Cell]:
    return [Cell(ename, d, s, e, int(seed))
            for ename, exp in params["experiments"].items()
            for d in exp["datasets"] for s in exp["settings"] for e in exp["estimators"]
            for seed in params["meta"]["seeds"]]


def inner_steps(kind: str, steps: int, maml_steps: int | None = None) -> int:
    """K an estimator of ``kind`` uses where an experiment says ``steps`` (``Estimator.inner_steps``:
    unrolled MAML and its first-order version take ``maml_steps`` when given, MAML-1 one step, the
    initialization baselines none)."""
    return REGISTRY[kind].inner_steps(steps, maml_steps)


def outer_optimizer(meta: Mapping, estimator_cfg: Mapping) -> tuple[str, float]:
    """(optimizer, learning rate) of the outer loop: the configuration's own ``outer`` if it has one."""
    outer = estimator_cfg.get("outer") or meta
    return str(outer["optimizer"]), float(outer["lr"])


def train_cost(params: Mapping, cell: Mapping) -> float:
    """A rough relative cost of a training job, in gradient evaluations of one example (the
    estimator's ``cost_per_step`` times its inner steps, examples and meta-steps), for scheduling
    the longest jobs first; only the order matters."""
    exp = params["experiments"][cell["experiment"]]
    cfg = params["estimators"][cell["estimator"]]
    setting = params["settings"][cell["setting"]]
    cls = REGISTRY[cfg["kind"]]
    K = max(cls.inner_steps(exp["steps"], exp["maml_steps"]), 1)  # a baseline: one gradient per step
    examples = int(setting["shot"]) + int(setting["val"])
    return K * cls.cost_per_step(cls.hyper_of(cfg)) * examples * int(params["meta"]["meta_epochs"])


def baseline_datasets(params: Mapping) -> list[str]:
    """The collaborative-filtering datasets of the experiments: the summarize step fits the predictor
    baselines (``adjoint_meta.baselines``) on their task pools."""
    used = sorted({c.dataset for c in cells(params)})
    return [d for d in used if params["datasets"][d]["source"] != "synthetic"]


def profile_jobs(params: Mapping) -> list[dict]:
    """One profiling job per profile (all its estimators, timed side by side against one floor),
    with the profile's dataset and setting."""
    return [dict(profile=name, dataset=prof["dataset"], setting=prof["setting"])
            for name, prof in params["profiles"].items()]


def accuracy_jobs(params: Mapping) -> list[dict]:
    """One job per accuracy study, with its dataset and setting."""
    return [dict(name=name, dataset=study["dataset"], setting=study["setting"])
            for name, study in params["accuracy"].items()]


def fewshot_jobs(params: Mapping) -> list[dict]:
    """One few-shot job per estimator of the experiment and training seed."""
    return [dict(estimator=e,
                 seed=int(seed)) for e in params["fewshot"]["estimators"] for seed in params["meta"]["seeds"]]


def protonet_jobs(params: Mapping) -> list[dict]:
    """One ProtoNet job per training seed."""
    return [dict(seed=int(seed)) for seed in params["meta"]["seeds"]]


_FEWSHOT_TASKS = ["fewshot.test_classes", "fewshot.ways", "fewshot.shot", "fewshot.query", "fewshot.n_test_tasks",
                  "fewshot.channels", "fewshot.meta"]

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
    "fewshot": ["seed", "runtime", *_FEWSHOT_TASKS, "fewshot.alpha", "fewshot.steps", "fewshot.maml_steps",
                "fewshot.eval_steps", "fewshot.record_every", "estimators.{estimator}"],
    "protonet": ["seed", "runtime", *_FEWSHOT_TASKS],
    # the predictor baselines (adjoint_meta.baselines) read the task pools: the datasets and settings
    "summarize": ["seed", "experiments", "profiles", "accuracy", "estimators", "meta.seeds", "datasets", "settings",
                  "fewshot"],
    # the report states the hash of the effective parameters, so it reads them all
    "report": ["*"],
}


def prune(params: Mapping, step: str, **wildcards: Any) -> dict:
    """The slice of ``params`` that ``step`` reads for the given wildcards."""
    if step not in RELEVANT_KEYS:
        raise ParamsError(f"unknown step {step!r}; allowed values: {', '.join(RELEVANT_KEYS)}")
    if RELEVANT_KEYS[step] == ["*"]:
        return copy.deepcopy(dict(params))
    out: dict = {}
    for template in RELEVANT_KEYS[step]:
        dotted = template.format(**wildcards)
        set_dotted(out, dotted, copy.deepcopy(get_dotted(params, dotted)))
    return out


def _job_wildcards(params: Mapping, step: str, keys: Mapping[str, Any]) -> dict:
    """The wildcards of job ``step`` with ``keys``: a profile's or accuracy study's dataset and
    setting come from its section.  Refuses a job that the parameters do not define."""
    if step in ("profile", "accuracy"):
        section, key = ("profiles", "profile") if step == "profile" else ("accuracy", "name")
        item = (params.get(section) or {}).get(keys[key])
        if item is None:
            raise ParamsError(f"--{key} {keys[key]!r} is not defined under '{section}'; allowed values: "
                              f"{', '.join(sorted(params.get(section) or {}))}")
        return dict(keys, dataset=item["dataset"], setting=item["setting"])
    return dict(keys)


def job_slice(params: Mapping, step: str, *, whole: bool = True, **keys: Any) -> dict:
    """The one way to resolve a job's parameters: the slice of ``params`` that job ``step`` with
    ``keys`` (its cell, dataset, profile or study name) reads.  ``whole``: ``params`` is a complete
    parameter document (params.yaml, as DVC's stages and Snakemake have it), so a job it does not
    define is refused; otherwise it is the slice a rule passed, already validated."""
    if whole and step == "make-tasks" and keys.get("dataset") not in params["datasets"]:
        raise ParamsError(f"--dataset {keys.get('dataset')!r} is not defined under 'datasets'; "
                          f"allowed values: {', '.join(sorted(params['datasets']))}")
    if whole and step in ("train", "evaluate") and Cell(**keys) not in set(cells(params)):
        raise ParamsError("no experiment in the parameters has the cell " +
                          " ".join(f"{k}={v}" for k, v in keys.items()) +
                          f"; experiments: {', '.join(params['experiments'])}")
    if whole and step in ("fewshot", "protonet"):
        jobs = fewshot_jobs(params) if step == "fewshot" else protonet_jobs(params)
        if dict(keys) not in jobs:
            raise ParamsError(f"no {step} job has " + " ".join(f"{k}={v}" for k, v in keys.items()) +
                              f"; fewshot.estimators: {', '.join(params['fewshot']['estimators'])}, meta.seeds: "
                              f"{params['meta']['seeds']}")
    return prune(params, step, **_job_wildcards(params, step, keys))


def slice_json(params: Mapping, step: str, **keys: Any) -> str:
    """Compact, key-sorted JSON of ``job_slice``: what a Snakemake rule passes on."""
    return json.dumps(job_slice(params, step, **keys), sort_keys=True, separators=(",", ":"))


def load_slice(text: str, step: str, **keys: Any) -> dict:
    """Parse and validate a slice passed on the command line, and resolve the job in it."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParamsError(f"--slice: not valid JSON ({exc})") from None
    validate(doc, source="--slice", partial=True)
    return job_slice(doc, step, whole=False, **keys)
