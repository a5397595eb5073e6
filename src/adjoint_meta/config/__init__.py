"""params.yaml: the one source of every setting, and what each job reads of it.

* ``documents``: reading YAML, merging, dotted keys, ``ParamsError``;
* ``schema``: the parameter schema (with the registered estimators and raw sources filled in) and
  validation whose messages name the key;
* ``checks``: the cross-checks the schema cannot express, one small named function each;
* ``loading``: overrides, presets and defaults, from a file to the effective parameters;
* ``grid``: the jobs (cells, profiles, accuracy studies) and each job's slice of the parameters.
"""
from adjoint_meta.config.checks import check_against_tasks, refuse_baselines
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
from adjoint_meta.config.grid import (
                                           CELL_FIELDS,
                                           RELEVANT_KEYS,
                                           Cell,
                                           accuracy_jobs,
                                           baseline_datasets,
                                           cells,
                                           fewshot_jobs,
                                           inner_steps,
                                           job_slice,
                                           load_slice,
                                           outer_optimizer,
                                           profile_jobs,
                                           protonet_jobs,
                                           prune,
                                           slice_json,
                                           train_cost,
)
from adjoint_meta.config.loading import apply_overrides, apply_preset, load, snakemake_overrides, with_defaults
from adjoint_meta.config.schema import schema, validate

__all__ = [
    "DEFAULT_PARAMS", "FULL_PRESET", "ParamsError", "deep_merge", "get_dotted", "parse_value", "read_yaml",
    "set_dotted", "schema", "validate", "check_against_tasks", "refuse_baselines", "apply_overrides",
    "apply_preset", "load", "snakemake_overrides", "with_defaults", "CELL_FIELDS", "RELEVANT_KEYS", "Cell",
    "accuracy_jobs", "baseline_datasets", "cells", "inner_steps", "job_slice", "load_slice", "outer_optimizer",
    "fewshot_jobs", "profile_jobs", "protonet_jobs", "prune", "slice_json", "train_cost",
]
