"""A release run's progress kept in the repository, so that a run cut off with its machine resumes on
another: every job it has finished and every training checkpoint it has written.

``save`` copies, from the run's clone, the outputs of each finished job (all of them present and none
marked incomplete by Snakemake, i.e. not being written), the job's log and benchmark record, and the
checkpoint of each training job still under way, into ``published/<release>.progress/`` with a manifest
(the commit that trained, and each file's sha256); results' CSV and JSON files are stored compressed, as a
published release stores them.  ``restore`` checks the folder against its manifest and
the clone's commit, copies what the clone lacks, and dates the copies after every input the clone already
has (the task tables it rebuilt, its code), evaluations after the initializations they read, so that
Snakemake sees those jobs as done and runs only the rest.  Unlike a published release, this folder is a
working copy: it keeps whole training logs and is replaced by each ``save``.
"""
from __future__ import annotations

import base64
import datetime as _dt
import os
import shutil
import tempfile
import time
from pathlib import Path

from adjoint_meta import checkpoint, config, paths
from adjoint_meta.io import atomic_path
from adjoint_meta.publish import (
    PARAMS,
    PublishError,
    _commit,
    compress,
    install,
    original,
    sha256,
    stored,
    unpacked,
    verify,
)

SUFFIX = ".progress"  # published/<release>.progress/ beside published/<release>/


def folder_for(release: str) -> Path:
    return Path("published") / f"{release}{SUFFIX}"


def jobs(params: dict) -> list[dict]:
    """Every job a release runs after its data step: its outputs, its records (log and benchmark), its
    training checkpoint if it has one, and its stage (1 for an evaluation, which reads a trained
    initialization; 0 for the others, which read only the data)."""
    out = []

    def add(outputs: list[str], step: str, name: str, stage: int = 0, ckpt: str | None = None) -> None:
        out.append({"outputs": outputs, "records": [f.format(step=step, name=name) for f in (paths.LOG,
                                                                                              paths.BENCHMARK)],
                    "stage": stage, "checkpoint": ckpt})

    for c in config.cells(params):
        cell = c.as_dict()
        name = paths.cell_name(cell)
        model = paths.MODEL.format(**cell)
        add([model, paths.TRAIN_LOG.format(**cell)], "train", name, ckpt=str(checkpoint.path_for(model)))
        add([paths.EVAL.format(**cell), paths.EVAL_CURVE.format(**cell)], "evaluate", name, stage=1)
    for j in config.profile_jobs(params):
        add([paths.PROFILE.format(**j)], "profile", paths.PROFILE_NAME.format(**j))
    for j in config.accuracy_jobs(params):
        add([paths.ACCURACY.format(**j)], "accuracy", j["name"])
    for j in config.fewshot_jobs(params):
        add([paths.FEWSHOT.format(**j), paths.FEWSHOT_CURVE.format(**j)], "fewshot", paths.FEWSHOT_NAME.format(**j))
    for j in config.protonet_jobs(params):
        add([paths.PROTONET.format(**j), paths.PROTONET_CURVE.format(**j)], "protonet",
            paths.PROTONET_NAME.format(**j))
    return out


def incomplete(root: Path) -> set[str]:
    """The outputs Snakemake has marked as being written (its markers are the paths, base64-encoded)."""
    marks = root / ".snakemake" / "incomplete"
    found = set()
    for m in marks.glob("*") if marks.is_dir() else []:
        try:
            found.add(base64.urlsafe_b64decode(m.name).decode())
        except (ValueError, UnicodeDecodeError):
            continue  # Snakemake's own bookkeeping files
    return found


def save(run_root: str | Path, out_dir: str | Path) -> dict:
    """Copy the finished jobs and the checkpoints of the run at ``run_root`` into ``out_dir`` (replaced
    whole) with a manifest; returns the manifest."""
    run_root, out_dir = Path(run_root).resolve(), Path(out_dir)
    params = config.load(run_root / PARAMS)
    writing = incomplete(run_root)
    copied, done, under_way = [PARAMS], 0, 0
    for job in jobs(params):
        if all((run_root / f).is_file() and f not in writing for f in job["outputs"]):
            copied += job["outputs"] + [f for f in job["records"] if (run_root / f).is_file()]
            done += 1
        elif job["checkpoint"] and (run_root / job["checkpoint"]).is_file():
            copied.append(job["checkpoint"])
            under_way += 1
    with tempfile.TemporaryDirectory(prefix="progress-",
                                     dir=out_dir.parent if out_dir.parent.exists() else None) as tmp:
        work = Path(tmp) / out_dir.name
        for rel in copied:
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(run_root / rel, work / rel)
            if stored(rel) != rel:
                compress(work / rel)
        manifest = {
            "trained_commit": _commit(run_root),
            "saved": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "jobs": {"done": done, "under_way": under_way, "total": len(jobs(params))},
            "files": {stored(f): sha256(work / stored(f)) for f in sorted(copied)},
        }
        install(work, out_dir, manifest)
    return manifest


def restore(folder: str | Path, run_root: str | Path) -> dict:
    """Copy the saved jobs and checkpoints into the run at ``run_root`` where it lacks them, dated so that
    Snakemake counts those jobs as done; returns {"restored": n files, "kept": n the run already had,
    "stale": n checkpoints of jobs the run has finished since the save, left out}.

    The run must be a clone of the commit that trained them, with the same parameters, and must already
    have its task tables (its data step done): copies dated before a table rebuilt later would be stale."""
    folder, run_root = Path(folder), Path(run_root).resolve()
    manifest = verify(folder)
    ours = _commit(run_root)
    if manifest["trained_commit"] != ours:
        raise PublishError(f"{run_root}: at commit {ours[:12]}, but {folder} was trained at "
                           f"{manifest['trained_commit'][:12]}; restore into a clone of that commit")
    if (folder / PARAMS).read_bytes() != (run_root / PARAMS).read_bytes():
        raise PublishError(f"{run_root / PARAMS}: differs from {folder / PARAMS}, the parameters the saved jobs "
                           f"ran with")
    params = config.load(run_root / PARAMS)
    missing = [t for d in params["datasets"] for t in [paths.TASKS.format(dataset=d)] if not (run_root / t).is_file()]
    if missing:
        raise PublishError(f"{run_root / missing[0]}: missing; run the data step first (snakemake "
                           f"{' '.join(missing)}), so that the restored results are dated after it")
    grid = jobs(params)
    stage_of = {f: j["stage"] for j in grid for f in j["outputs"]}
    # a job that finished after the save deleted its checkpoint: the saved one is stale, leave it out
    writing = incomplete(run_root)
    finished = {j["checkpoint"] for j in grid if j["checkpoint"]
                and all((run_root / f).is_file() and f not in writing for f in j["outputs"])}
    # one second after the newest file the restored jobs could depend on, evaluations a second later
    newest = max(p.stat().st_mtime for d in ("data", "src", "workflow") if (run_root / d).is_dir()
                 for p in (run_root / d).rglob("*") if p.is_file())
    base = max(newest, time.time()) + 1
    restored = kept = stale = 0
    for name in sorted(manifest["files"]):
        rel = original(name)
        if rel == PARAMS:
            continue
        if rel in finished:
            stale += 1
            continue
        target = run_root / rel
        if target.exists():
            kept += 1
            continue
        stamp = base + stage_of.get(rel, 0)
        with atomic_path(target) as tmp:  # a restore cut off leaves no partial file to count as done
            if rel == name:
                shutil.copyfile(folder / name, tmp)
            else:
                tmp.write_bytes(unpacked(folder / name))
            os.utime(tmp, (stamp, stamp))
        restored += 1
    return {"restored": restored, "kept": kept, "stale": stale}
