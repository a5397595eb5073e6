"""Where the report's numbers come from: parameters hash, commit, software, data files, job times.

Every function returns plain values for the template (which escapes them), no HTML."""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd

from adjoint_meta import paths, timings

PACKAGES = ["adjoint-meta", "torch", "torchdiffeq", "numpy", "scipy", "pandas", "pyarrow", "matplotlib", "seaborn",
            "jinja2", "snakemake", "dvc"]


def params_hash(params: dict) -> str:
    canon = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def git_commit() -> str:
    """HEAD, marked when the package's code differs from it (results, published folders and the README
    being rewritten beside it do not count)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)src"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def dataset(name: str, s: dict) -> dict:
    """One row of the tasks-per-dataset table: the rule applied, task counts, the raw file and how it
    compares with the published one (``matches_known``: True, False or None without a known checksum;
    ``partial``: (ratings held, ratings published) of a copy that holds fewer)."""
    row = {"name": name, "synthetic": s["source"] == "synthetic", "family": s["family"],
           "variant": s.get("variant"), "train": s["n_train_tasks"], "test": s["n_test_tasks"], "rows": s["n_rows"]}
    if row["synthetic"]:
        return {**row, "paper_count": "100 / 100" if s["family"] != "sinusoid" else "–"}
    f, r = s.get("filter", {}), s.get("raw", {})
    have, published = f.get("ratings_in_input"), s.get("published_ratings")
    return {**row, "paper_count": f"{s['paper_task_count']:,}", "item_rule": f.get("items", ""),
            "user_rule": f.get("users", ""), "raw_file": Path(r.get("file", "?")).name,
            "sha256": r.get("sha256", ""), "matches_known": r.get("matches_known"),
            "partial": (have, published) if have is not None and published and have != published else None}


def data_file(name: str, s: dict) -> dict:
    """Provenance of one dataset: the raw file and the task table, by full sha256."""
    r = s.get("raw") or {}
    return {"name": name, "raw_file": r.get("file", "?") if r else None, "raw_sha256": r.get("sha256", "?"),
            "table": paths.TASKS.format(dataset=name), "table_sha256": s.get("table_sha256", "?")}


def job_times(params: dict, bench: pd.DataFrame) -> dict | None:
    """Wall time, CPU time and peak memory per step and per job, from Snakemake's benchmark records
    (None without records: a DVC run writes none)."""
    if bench.empty:
        return None
    per_step = bench.groupby("step").agg(jobs=("job", "size"), wall=("wall_s", "sum"), cpu=("cpu_s", "sum"),
                                         rss=("max_rss_mb", "max")).sort_values("wall", ascending=False)
    length, chain = timings.critical_path(params, bench)
    return {"n": len(bench), "wall_h": bench["wall_s"].sum() / 3600, "cpu_h": bench["cpu_s"].sum() / 3600,
            "critical_min": length / 60, "chain": " → ".join(chain),
            "steps": per_step.reset_index().to_dict("records"),
            "jobs": bench.sort_values("wall_s", ascending=False).to_dict("records")}
