"""The fetch step: a raw collaborative-filtering source present and verified under data/raw/<source>/."""
from __future__ import annotations

from adjoint_meta import paths, runtime
from adjoint_meta.data import raw
from adjoint_meta.io import write_json


def run(spec: dict, source: str, out_manifest: str, log_file: str | None = None,
        raw_dir: str = paths.RAW_DIR) -> dict:
    """Make the ratings file of ``source`` present and verified; record which file and its checksum."""
    log = runtime.logger("fetch", log_file)
    path = raw.fetch(source, raw_dir, allow_network=bool(spec["raw"]["download"]), progress=log.info)
    record = raw.manifest(source, path)
    write_json(out_manifest, record)
    log.info("%s: using %s (%d bytes, sha256 %s%s)", source, path, record["bytes"], record["sha256"][:16],
             "" if record.get("matches_known") in (None, True) else ", differs from the published file")
    return record
