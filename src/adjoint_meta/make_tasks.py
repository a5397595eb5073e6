"""The data steps: fetch a raw source, and build the task table of one dataset."""
from __future__ import annotations

from adjoint_meta import paths, runtime
from adjoint_meta.data import collab, ratings, raw, synthetic
from adjoint_meta.io import atomic_path, read_json, write_json
from adjoint_meta.seeding import numpy_rng

def fetch(spec: dict, source: str, out_manifest: str, log_file: str | None = None,
          raw_dir: str = paths.RAW_DIR) -> dict:
    """Make the ratings file of ``source`` present and verified; record which file and its checksum."""
    log = runtime.logger("fetch", log_file)
    path = raw.fetch(source, raw_dir, allow_network=bool(spec["raw"]["download"]), progress=log.info)
    record = raw.manifest(source, path)
    write_json(out_manifest, record)
    log.info("%s: using %s (%d bytes, sha256 %s%s)", source, path, record["bytes"], record["sha256"][:16],
             "" if record.get("matches_known") in (None, True) else ", differs from the published file")
    return record


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
        table_sha256 = raw.digests(tmp)["sha256"]  # the report's provenance names the exact task table
    summary = {"dataset": dataset, **summary, "table_sha256": table_sha256}
    write_json(out_summary, summary)
    log.info("%s: %d training and %d test tasks, %d rows -> %s", dataset, summary["n_train_tasks"],
             summary["n_test_tasks"], summary["n_rows"], out_table)
    return summary
