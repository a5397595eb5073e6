"""The make-tasks step: the task table of one dataset, generated (synthetic families) or built
from a raw collaborative-filtering source, by the builder module its source names
(``data.sources.builder``)."""
from __future__ import annotations

import importlib

from adjoint_meta import paths, runtime
from adjoint_meta.data.sources import builder
from adjoint_meta.io import atomic_path, digests, write_json
from adjoint_meta.seeding import numpy_rng


def run(spec: dict, dataset: str, out_table: str, out_summary: str, log_file: str | None = None,
        raw_dir: str = paths.RAW_DIR) -> dict:
    log = runtime.logger("make-tasks", log_file)
    cfg = spec["datasets"][dataset]
    rng = numpy_rng(int(spec["seed"]), "tasks", dataset)
    build = importlib.import_module(builder(cfg["source"])).build
    table, summary = build(cfg, rng, dataset=dataset, raw_dir=raw_dir, log=log)
    with atomic_path(out_table) as tmp:
        table.to_parquet(tmp, index=False)
        table_sha256 = digests(tmp)["sha256"]  # the report's provenance names the exact task table
    summary = {"dataset": dataset, **summary, "table_sha256": table_sha256}
    write_json(out_summary, summary)
    log.info("%s: %d training and %d test tasks, %d rows -> %s", dataset, summary["n_train_tasks"],
             summary["n_test_tasks"], summary["n_rows"], out_table)
    return summary
