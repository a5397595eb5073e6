"""A release run's progress saved into the repository and restored on a new machine: finished jobs only
(nothing Snakemake marks as being written), the checkpoints of jobs under way, and copies dated so that
Snakemake resumes after them instead of running them again."""
from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pytest
from conftest import TEST_PARAMS, copy_project, copy_run, place_test_data, run_tool

from adjoint_meta import checkpoint, config, paths, progress, publish

pytestmark = pytest.mark.pipeline


def _tables(params: dict) -> list[str]:
    return [paths.TASKS.format(dataset=d) for d in params["datasets"]]


@pytest.fixture(scope="module")
def saved(snakemake_run, tmp_path_factory) -> tuple[Path, dict]:
    """The shared run with one training job cut off (its checkpoint left) and one evaluation being
    written, saved."""
    base = tmp_path_factory.mktemp("progress")
    run = copy_run(snakemake_run, base / "run")
    params = config.load(run / "params.yaml")
    cells = [c.as_dict() for c in config.cells(params)]
    cut, writing = cells[0], cells[1]
    for f in (paths.MODEL, paths.TRAIN_LOG, paths.EVAL, paths.EVAL_CURVE):
        (run / f.format(**cut)).unlink()
    (run / checkpoint.path_for(paths.MODEL.format(**cut))).write_bytes(b"a checkpoint")
    marks = run / ".snakemake" / "incomplete"
    marks.mkdir(parents=True, exist_ok=True)
    (marks / base64.urlsafe_b64encode(paths.EVAL.format(**writing).encode()).decode()).write_text("")
    folder = base / "published" / "study-v1.progress"
    run_tool(["adjoint_meta", "progress", "save", "--run", str(run), "--release", "study-v1",
              "--folder", str(folder)], base)
    return folder, {"run": run, "params": params, "cut": cut, "writing": writing}


def test_save_keeps_finished_jobs_and_checkpoints_only(saved):
    folder, info = saved
    manifest = publish.verify(folder)
    files, params = set(manifest["files"]), info["params"]
    cut, writing = info["cut"], info["writing"]
    assert str(checkpoint.path_for(paths.MODEL.format(**cut))) in files
    assert paths.MODEL.format(**cut) not in files and paths.EVAL.format(**cut) not in files
    assert paths.EVAL.format(**writing) not in files and paths.MODEL.format(**writing) in files
    total = len(progress.jobs(params))
    assert manifest["jobs"] == {"done": total - 3, "under_way": 1, "total": total}
    assert paths.LOG.format(step="train", name=paths.cell_name(writing)) in files
    # results' CSV and JSON files are kept compressed, as a published release keeps them
    done = [c for c in (c.as_dict() for c in config.cells(params)) if c not in (cut, writing)][0]
    assert paths.EVAL.format(**done) + publish.PACKED in files and paths.EVAL.format(**done) not in files
    assert paths.TRAIN_LOG.format(**done) + publish.PACKED in files and paths.MODEL.format(**done) in files


def test_restore_resumes_after_the_saved_jobs(saved, tmp_path):
    folder, info = saved
    fresh = place_test_data(copy_project(tmp_path / "fresh", TEST_PARAMS))
    with pytest.raises(publish.PublishError, match="run the data step first"):
        progress.restore(folder, fresh)
    run_tool(["snakemake", "--cores", "2", *_tables(info["params"])], fresh)
    run_tool(["adjoint_meta", "progress", "restore", "--run", str(fresh), "--release", "study-v1",
              "--folder", str(folder)], fresh)
    plan = run_tool(["snakemake", "-n", "--cores", "2"], fresh)
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", plan.stdout, flags=re.M))
    # left: the cut training job and its evaluation, the evaluation that was being written, the summaries
    # and the report; everything else counts as done
    assert jobs.get("train") == "1" and jobs.get("evaluate") == "2", plan.stdout
    assert not {"profile", "accuracy", "fewshot", "protonet", "fetch", "make_tasks"} & set(jobs), plan.stdout
    cut = info["cut"]
    assert (fresh / checkpoint.path_for(paths.MODEL.format(**cut))).read_bytes() == b"a checkpoint"
    restored = [f.format(**info["writing"]) for f in (paths.MODEL, paths.TRAIN_LOG)]
    restored += [f.format(**c) for c in (c.as_dict() for c in config.cells(info["params"]))
                 if c not in (cut, info["writing"]) for f in (paths.EVAL, paths.EVAL_CURVE)]
    for rel in restored:  # decompressed byte for byte
        assert (fresh / rel).read_bytes() == (info["run"] / rel).read_bytes(), rel
    assert not list(fresh.rglob("*.tmp")), "no temporary file may be left"


def test_restore_refuses_other_parameters_and_altered_files(saved, tmp_path):
    folder, info = saved
    other = place_test_data(copy_project(tmp_path / "other", TEST_PARAMS))
    (other / "params.yaml").write_text((other / "params.yaml").read_text() + "\n# edited\n")
    with pytest.raises(publish.PublishError, match="params.yaml: differs"):
        progress.restore(folder, other)
    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    model = paths.MODEL.format(**info["writing"])
    (tampered / model).write_bytes(b"not the model")
    with pytest.raises(publish.PublishError, match=re.escape(model) + ": altered"):
        progress.restore(tampered, other)


def test_restore_leaves_out_the_checkpoint_of_a_job_finished_since_the_save(saved, snakemake_run, tmp_path):
    """The machine kept: the job cut off at the save has finished since, and deleted its checkpoint."""
    folder, info = saved
    run = copy_run(snakemake_run, tmp_path / "run")
    ckpt = checkpoint.path_for(paths.MODEL.format(**info["cut"]))
    assert not (run / ckpt).exists() and (run / paths.MODEL.format(**info["cut"])).is_file()
    counts = progress.restore(folder, run)
    assert not (run / ckpt).exists(), "a stale checkpoint was put back beside the finished model"
    assert counts["stale"] == 1 and counts["restored"] == 0, counts
    # the same job still under way (its model being written): its checkpoint is restored
    marks = run / ".snakemake" / "incomplete"
    marks.mkdir(parents=True, exist_ok=True)
    (marks / base64.urlsafe_b64encode(paths.MODEL.format(**info["cut"]).encode()).decode()).write_text("")
    counts = progress.restore(folder, run)
    assert (run / ckpt).read_bytes() == b"a checkpoint" and counts["stale"] == 0, counts
