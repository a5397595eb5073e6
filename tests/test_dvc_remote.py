"""DVC versioning with a remote: repro, push, clone, pull (then Snakemake agrees nothing is
stale), an experiment that reruns only what a parameter reaches, metrics and params diffs,
and an unusable remote (a clear message, nothing lost from the local cache).

The remote is the project's default remote `storage` (.dvc/config), pointed at a
temporary directory with `dvc remote modify`."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TEST_PARAMS, copy_run, run_tool, tool_env

from adjoint_meta import config

pytestmark = pytest.mark.pipeline

CHECK = ROOT / "scripts" / "dvc_remote_check.py"
# outputs dvc.yaml declares with `cache: false` (metrics and plots): versioned by git, not by
# the remote; the project's .gitignore ignores /reports/*, hence `git add -f`
GIT_TRACKED_OUTS = ["reports/metrics.json", "reports/figures"]
CHANGE = ("estimators.imaml.lam", "1.0", "2.0")   # reaches only the iMAML cells (and what reads all estimators)


def git(*args, cwd: Path) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=tool_env())
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def git_identity(root: Path) -> None:
    git("config", "user.name", "adjoint-meta tests", cwd=root)
    git("config", "user.email", "tests@adjoint-meta.invalid", cwd=root)


def cache_listing(root: Path) -> dict[str, int]:
    cache = root / ".dvc" / "cache"
    return {str(p.relative_to(cache)): p.stat().st_size for p in cache.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def pushed(dvc_run, tmp_path_factory) -> dict:
    """A git repository holding the project (test configuration) after dvc repro (a copy of the
    shared run), committed, pushed to the default remote (a temporary directory)."""
    base = tmp_path_factory.mktemp("dvc_remote")
    repo = copy_run(dvc_run, base / "repo")
    remote = base / "remote"
    git_identity(repo)
    assert run_tool(["dvc", "remote", "default"], repo).stdout.strip() == "storage"
    run_tool(["dvc", "remote", "modify", "storage", "url", str(remote)], repo)
    assert "up to date" in run_tool(["dvc", "status"], repo).stdout
    git("add", "-A", cwd=repo)
    git("add", "-f", *GIT_TRACKED_OUTS, cwd=repo)
    git("commit", "-q", "-m", "project and results", cwd=repo)
    push = run_tool(["dvc", "push"], repo)
    assert re.search(r"\d+ files? pushed", push.stdout + push.stderr), push.stdout + push.stderr
    assert "dvc.lock" in git("ls-files", cwd=repo).split()
    assert git("status", "--porcelain", "--untracked-files=no", cwd=repo).strip() == ""
    return {"repo": repo, "remote": remote, "base": base}


@pytest.fixture(scope="module")
def clone(pushed) -> Path:
    """A fresh git clone after `dvc pull` and the timestamp fix (docs/cluster.md)."""
    dst = pushed["base"] / "clone"
    git("clone", "-q", str(pushed["repo"]), str(dst), cwd=pushed["base"])
    assert not (dst / "results").exists()
    run_tool(["dvc", "pull"], dst)
    assert "up to date" in run_tool(["dvc", "status"], dst).stdout
    # pulled files carry the time of the pull, in no particular order: Snakemake would rerun
    # jobs whose inputs look newer than their outputs. DVC has just verified every output
    # against dvc.lock, so mark them up to date for Snakemake in dependency order:
    run_tool(["snakemake", "--touch", "--cores", "1"], dst)
    return dst


def test_pull_restores_data_and_artifacts(pushed, clone):
    repo = pushed["repo"]
    for rel in ["data/raw/ml100k/u.data", "data/raw/ml100k/manifest.json", "data/tasks/ml100k.parquet",
                "reports/metrics.json", "reports/report.html", "reports/tables/table1.csv"]:
        assert (clone / rel).read_bytes() == (repo / rel).read_bytes(), rel
    models = sorted(p.relative_to(repo) for p in (repo / "results" / "train").rglob("*.pt"))
    assert models and models == sorted(p.relative_to(clone) for p in (clone / "results" / "train").rglob("*.pt"))
    evals = sorted(p.relative_to(repo) for p in (repo / "results" / "eval").rglob("*.json"))
    assert evals and all((clone / e).read_bytes() == (repo / e).read_bytes() for e in evals)


def test_after_pull_dvc_and_snakemake_have_nothing_to_do(clone):
    assert "Data and pipelines are up to date" in run_tool(["dvc", "status"], clone).stdout
    dry = run_tool(["snakemake", "-n"], clone)
    assert "Nothing to be done" in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-3000:]


def test_unusable_remote_gives_a_clear_message_and_keeps_the_cache(pushed, tmp_path):
    repo = pushed["repo"]
    before = cache_listing(repo)
    assert len(before) > 30
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    bad = blocker / "dvc-remote"
    run_tool(["dvc", "remote", "modify", "--local", "storage", "url", str(bad)], repo)
    try:
        push = run_tool(["dvc", "push"], repo, check=False)
        assert push.returncode != 0, "dvc push to an unusable remote must fail"
        check = subprocess.run([sys.executable, str(CHECK)], cwd=repo, env=tool_env(), capture_output=True, text=True)
        assert check.returncode == 2, check.stdout + check.stderr
        msg = check.stderr
        assert "'storage'" in msg and str(bad) in msg and "dvc remote modify storage url" in msg, msg
        assert cache_listing(repo) == before, "the failed push must not change the local cache"
        assert "up to date" in run_tool(["dvc", "status"], repo).stdout
    finally:
        (repo / ".dvc" / "config.local").unlink()
    ok = subprocess.run([sys.executable, str(CHECK)], cwd=repo, env=tool_env(), capture_output=True, text=True)
    assert ok.returncode == 0 and "usable for push" in ok.stdout
    again = run_tool(["dvc", "push"], repo)
    assert "up to date" in (again.stdout + again.stderr).lower() or "0 files pushed" in again.stdout


def test_pull_from_a_missing_remote_names_the_setting(pushed, tmp_path):
    dst = tmp_path / "clone"
    git("clone", "-q", str(pushed["repo"]), str(dst), cwd=tmp_path)
    missing = tmp_path / "no-such-remote"
    run_tool(["dvc", "remote", "modify", "--local", "storage", "url", str(missing)], dst)
    check = subprocess.run([sys.executable, str(CHECK), "--for", "pull"], cwd=dst, env=tool_env(),
                           capture_output=True, text=True)
    assert check.returncode == 2 and "does not exist" in check.stderr and "dvc remote modify" in check.stderr
    # `make pull` (the README's way) runs the check first and stops there, before DVC or Snakemake
    pull = subprocess.run(["make", "pull", f"PY={sys.executable}"], cwd=dst, env=tool_env(), capture_output=True,
                          text=True)
    assert pull.returncode != 0 and "'storage'" in pull.stderr and "does not exist" in pull.stderr, pull.stderr
    assert "dvc pull" not in pull.stdout.replace("--for pull", "") and not (dst / "results").exists()


def test_experiment_reruns_only_affected_stages(pushed, tmp_path):
    from dvc.repo import Repo

    repo = copy_run(pushed["repo"], tmp_path / "repo")  # the experiment changes the workspace: a private copy
    key, old, new = CHANGE
    out = run_tool(["dvc", "exp", "run", "-S", f"{key}={new}"], repo)
    text = out.stdout + out.stderr
    ran = set(re.findall(r"Running stage '([^']+)'", text))
    skipped = set(re.findall(r"Stage '([^']+)' didn't change, skipping", text))
    # the iMAML cells (one training and one evaluation stage per seed) ...
    expected = {s for s in ran | skipped if s.startswith(("train_", "evaluate_")) and re.search(r"-imaml-\d+$", s)}
    # ... and the profiles, accuracy studies, summaries and the report, which read all of `estimators`
    expected |= {s for s in ran | skipped if s.startswith(("profile@", "accuracy@"))} | {"summarize", "report"}
    # ... and the code stage, which reads the whole parameter file (which jobs exist) and rewrites only the
    # code inputs whose fingerprint changed: none here, so it reruns nothing itself
    expected |= {"code"}
    stages = {s.name for s in Repo(str(repo)).index.stages}
    params = config.load(TEST_PARAMS)
    assert ran | skipped == stages, sorted(stages - (ran | skipped))
    imaml_cells = [c for c in config.cells(params) if c.estimator == "imaml"]  # one per seed
    assert len(expected) == 2 * len(imaml_cells) + len(params["profiles"]) + len(params["accuracy"]) + 3, \
        sorted(expected)
    assert ran == expected, f"ran {sorted(ran)}"

    shown = run_tool(["dvc", "metrics", "show"], repo).stdout
    assert "reports/metrics.json" in shown and "table1.ml100k.5shot-5val.amaml.nrmse_mean" in shown
    diff = run_tool(["dvc", "metrics", "diff"], repo).stdout
    assert "fig2_100shot.cosmixture.5shot-5val.imaml.nrmse_mean" in diff and "HEAD" in diff and "workspace" in diff
    changed = json.loads(run_tool(["dvc", "metrics", "diff", "--json"], repo).stdout)["reports/metrics.json"]
    assert changed and all(".imaml." in k for k in changed), sorted(changed)
    params = run_tool(["dvc", "params", "diff"], repo).stdout
    assert re.search(rf"{re.escape(key)}\s+{old}\s+{new}", params), params
