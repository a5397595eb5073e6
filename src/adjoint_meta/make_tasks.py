"""Build the task table of one dataset (the make-tasks step)."""
from __future__ import annotations

from adjoint_meta import runtime
from adjoint_meta.data import synthetic
from adjoint_meta.io import atomic_path, write_json
from adjoint_meta.seeding import numpy_rng


def run(spec: dict, dataset: str, out_table: str, out_summary: str, log_file: str | None = None) -> dict:
    log = runtime.logger("make-tasks", log_file)
    cfg = spec["datasets"][dataset]
    if cfg["source"] == "synthetic":
        table, summary = synthetic.generate(cfg, numpy_rng(int(spec["seed"]), "tasks", dataset))
    else:  # the schema admits only known sources
        raise ValueError(f"datasets.{dataset}.source: {cfg['source']!r} has no task builder")
    summary = {"dataset": dataset, **summary}
    with atomic_path(out_table) as tmp:
        table.to_parquet(tmp, index=False)
    write_json(out_summary, summary)
    log.info("%s: %d training and %d test tasks, %d rows -> %s", dataset, summary["n_train_tasks"],
             summary["n_test_tasks"], summary["n_rows"], out_table)
    return summary
