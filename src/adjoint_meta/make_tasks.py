"""The make-tasks step: the task table of one dataset, generated (synthetic families) or built
from a raw collaborative-filtering source."""
from __future__ import annotations

from adjoint_meta import paths, runtime
from adjoint_meta.data import collab, ratings, raw, synthetic
from adjoint_meta.io import atomic_path, digests, read_json, write_json
from adjoint_meta.seeding import numpy_rng


def run(spec: dict, dataset: str, out_table: str, out_summary: str, log_file: str | None = None,
        raw_dir: str = paths.RAW_DIR) -> dict:
    log = runtime.logger("make-tasks", log_file)
    cfg = spec["datasets"][dataset]
    rng = numpy_rng(int(spec["seed"]), "tasks", dataset)
    if cfg["source"] == "synthetic":
        table, summary = synthetic.generate(cfg, rng)
    else:
        source = cfg["source"]
        manifest_path = raw.source_dir(source, raw_dir) / "manifest.json"
        path = raw.locate(source, raw_dir)
        log.info("%s: reading %s", dataset, path)
        try:
            table, summary = collab.preprocess(ratings.read(source, path), cfg, rng, source)
        except collab.PreprocessError as exc:  # name the parameters: datasets.<name>.<key>
            raise collab.PreprocessError(f"datasets.{dataset} ({path}): {exc}") from None
        try:
            summary["raw"] = read_json(manifest_path)
        except FileNotFoundError:
            summary["raw"] = raw.manifest(source, path)
    with atomic_path(out_table) as tmp:
        table.to_parquet(tmp, index=False)
        table_sha256 = digests(tmp)["sha256"]  # the report's provenance names the exact task table
    summary = {"dataset": dataset, **summary, "table_sha256": table_sha256}
    write_json(out_summary, summary)
    log.info("%s: %d training and %d test tasks, %d rows -> %s", dataset, summary["n_train_tasks"],
             summary["n_test_tasks"], summary["n_rows"], out_table)
    return summary
