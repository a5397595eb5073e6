"""The pipeline through the SLURM profile, on a real single-node SLURM brought up on this
machine by scripts/slurm/local_cluster.sh (Debian's slurmctld/slurmd/munge, one GPU
declared in gres.conf, accounting off).

Evidence that GPU jobs get a GPU and the others none comes from two places:
* each job's own environment: a ``sitecustomize`` put on PYTHONPATH (sbatch --export=ALL
  carries it into the jobs) records, in every ``python -m adjoint_meta ...`` process that
  runs inside a SLURM job, the variables SLURM sets for a job step holding a GPU
  (CUDA_VISIBLE_DEVICES, SLURM_STEP_GPUS, SLURM_GPUS_ON_NODE);
* SLURM's own record of each job (``squeue --states=all``: the plugin's comment
  ``rule_<rule>_...`` and TRES_PER_JOB ``gres:gpu:1``); MinJobAge=3600 keeps finished
  jobs visible to squeue.

It changes the machine (apt-get installs munge and SLURM; /etc/slurm/slurm.conf becomes a link
while the cluster is up), so it runs only where asked for: ADJOINT_META_SLURM_PROOF=1 (.ci/run
and `scripts/slurm/local_cluster.sh prove` set it); then a machine that cannot run it fails the
proof instead of skipping it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HANG_S, ROOT, TEST_PARAMS, copy_project, place_test_data, tool_env

from adjoint_meta import config, paths

pytestmark = pytest.mark.pipeline

OPT_IN = "ADJOINT_META_SLURM_PROOF"
if os.environ.get(OPT_IN) != "1":
    pytest.skip(f"SLURM proof skipped: it installs SLURM and links /etc/slurm/slurm.conf; run it (as root, "
                f"Debian/Ubuntu) with {OPT_IN}=1 make test, or scripts/slurm/local_cluster.sh prove",
                allow_module_level=True)

SCRIPT = ROOT / "scripts" / "slurm" / "local_cluster.sh"
PROFILE = "workflow/profiles/slurm"
GPU_STEPS = {"train", "profile", "accuracy", "fewshot", "protonet"}  # rules declaring resources: gpu=1
CPU_STEPS = {"fetch", "make-tasks", "evaluate", "summarize", "report"}
GPU_VARS = ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "SLURM_GPUS_ON_NODE",
            "GPU_DEVICE_ORDINAL")
SEED = 0  # the training seed the SLURM run trains (the local run trains every seed of the configuration)


def _of_the_seed(names) -> list:
    """Paths of jobs the SLURM run makes too: no cell of another seed."""
    return [p for p in names if not re.search(rf"seed(?!{SEED}\b)\d+", str(p))]


# poll squeue every 2 s (the profile's 10 s would add minutes to a run of some 30 short jobs)
FAST = ["--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
        "--max-status-checks-per-second", "5"]

# records the job's environment in every `python -m adjoint_meta` process running under SLURM;
# with FAIL_WITH_PARTIAL=<subcommand>, that subcommand writes half an output and fails
PROBE = r'''
import json, os
_dir = os.environ.get("ADJOINT_PROBE_DIR")
if _dir and os.environ.get("SLURM_JOB_ID"):
    try:
        with open("/proc/self/cmdline", "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0") if a]
    except OSError:
        argv = []
    if "adjoint_meta" in argv and argv.index("adjoint_meta") + 1 < len(argv):
        step = argv[argv.index("adjoint_meta") + 1]
        env = {k: v for k, v in os.environ.items() if k.startswith(("SLURM_", "CUDA_", "GPU_"))}
        with open(os.path.join(_dir, "%s-%d.json" % (step, os.getpid())), "w") as f:
            json.dump({"step": step, "argv": argv, "env": env}, f)
        if os.environ.get("FAIL_WITH_PARTIAL") == step and "--out" in argv:
            with open(argv[argv.index("--out") + 1], "w") as f:
                f.write('{"partial": ')
            os._exit(3)
'''


def _unmet() -> str | None:
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        return "needs apt-get (Debian/Ubuntu) to install slurmctld, slurmd and munge"
    if os.geteuid() != 0:
        return "needs root to install and start slurmctld, slurmd and munged"
    if not sys.platform.startswith("linux"):
        return "needs Linux"
    etc = Path("/etc/slurm/slurm.conf")
    if etc.exists() and not etc.is_symlink():
        return "this machine has its own SLURM configuration (/etc/slurm/slurm.conf); not touching it"
    if etc.is_symlink() and etc.exists() and _daemons_live(Path(os.readlink(etc)).parent.parent):
        return (f"another local cluster is up ({etc} -> {os.readlink(etc)}); "
                "stop it with scripts/slurm/local_cluster.sh down")
    return None


def _daemons_live(cluster_dir: Path) -> bool:
    """Whether a daemon recorded under a local cluster's directory still runs (the script's rule, asked of
    it; a link to a cluster with none is `up`'s to replace)."""
    return _sh(["bash", str(SCRIPT), "live", str(cluster_dir)], timeout=60).returncode == 0


def _sh(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request) -> Path:
    """A single-node SLURM, brought down (by PID) whatever happens."""
    reason = _unmet()
    if reason:
        pytest.fail(f"{OPT_IN}=1, but the SLURM proof cannot run here: {reason}")
    state = tmp_path_factory.mktemp("slurm")
    request.addfinalizer(lambda: _sh(["bash", str(SCRIPT), "down", str(state)], timeout=120))
    up = _sh(["bash", str(SCRIPT), "up", str(state)], timeout=HANG_S)
    assert up.returncode == 0, f"local_cluster.sh up failed:\n{up.stdout}\n{up.stderr}"
    return state


def _env(cluster: Path, probe: Path, **extra) -> dict:
    env = tool_env()
    for k in list(env):  # the jobs must get GPU variables from SLURM only
        if k.startswith(("SLURM_", "SBATCH_", "SRUN_")) or k in GPU_VARS:
            del env[k]
    env["SLURM_CONF"] = str(cluster / "etc" / "slurm.conf")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(probe), env.get("PYTHONPATH")]))
    rec = probe / "records"
    rec.mkdir(parents=True, exist_ok=True)
    env["ADJOINT_PROBE_DIR"] = str(rec)
    env.update(extra)
    return env


def _probe(tmp: Path) -> Path:
    probe = tmp / "probe"
    probe.mkdir(parents=True, exist_ok=True)
    (probe / "sitecustomize.py").write_text(PROBE)
    return probe


def _snakemake(args, cwd: Path, env: dict, timeout: float = HANG_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _all_jobs(cluster: Path) -> list[str]:
    out = _sh(["squeue", "--states=all", "--noheader", "--format=%i"],
              env={**os.environ, "SLURM_CONF": str(cluster / "etc" / "slurm.conf")})
    return out.stdout.split()


@pytest.fixture(scope="module")
def runs(cluster, snakemake_run, tmp_path_factory) -> dict:
    """The test configuration through the SLURM profile, with its first training seed only (each job
    costs seconds of submission and start-up there); the local run to compare with is the session's
    shared `snakemake --cores 2` run, whose jobs for that seed are the same jobs."""
    base = tmp_path_factory.mktemp("slurm_runs")
    remote = place_test_data(copy_project(base / "slurm", TEST_PARAMS))
    probe = _probe(base)
    run = _snakemake(["--workflow-profile", PROFILE, *FAST, "--config", f"meta={{seeds: [{SEED}]}}"], remote,
                     _env(cluster, probe))
    out = run.stdout + run.stderr
    assert run.returncode == 0, f"SLURM run failed:\n{out[-8000:]}"
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    fmt = "JobID:20,Comment:300,tres-per-job:60,State:20"
    queue = _sh(["squeue", "--states=all", "--noheader", "--name", run_id, "-O", fmt],
                env={**os.environ, "SLURM_CONF": str(cluster / "etc" / "slurm.conf")})
    jobs = []
    for line in queue.stdout.splitlines():
        if line.strip():
            jobid, comment, tres, state = line.split()
            jobs.append({"jobid": jobid, "comment": comment, "tres": tres, "state": state})
    records = [json.loads(p.read_text()) for p in sorted((probe / "records").glob("*.json"))]
    return {"local": snakemake_run, "slurm": remote, "log": out, "jobs": jobs, "records": records}


def test_cluster_has_one_gpu(cluster):
    node = _sh(["scontrol", "show", "node", "localnode"],
               env={**os.environ, "SLURM_CONF": str(cluster / "etc" / "slurm.conf")}).stdout
    assert "Gres=gpu:1" in node and re.search(r"State=(IDLE|MIXED|ALLOCATED)", node), node
    status = _sh(["bash", str(SCRIPT), "status", str(cluster)])
    assert status.returncode == 0 and "slurmd running" in status.stdout


def test_jobs_ran_under_slurm_with_gpu_only_where_declared(runs):
    """Each job's own environment: a GPU job step for train/profile/accuracy, none for the rest."""
    records = runs["records"]
    steps = {r["step"] for r in records}
    assert steps == GPU_STEPS | CPU_STEPS, f"jobs seen: {sorted(steps)}"
    local = len(_of_the_seed((runs["local"] / "logs" / "benchmarks").rglob("*.tsv")))  # one per job of the local run
    assert len(records) == len(runs["jobs"]) == local, (len(records), len(runs["jobs"]), local)
    for r in records:
        env = r["env"]
        assert env.get("SLURM_JOB_ID"), f"{r['step']} did not run inside a SLURM job"
        if r["step"] in GPU_STEPS:
            assert env.get("CUDA_VISIBLE_DEVICES") == "0" and env.get("SLURM_STEP_GPUS") == "0" \
                and env.get("SLURM_GPUS_ON_NODE") == "1", f"{r['step']} job without a GPU: {env}"
        else:
            got = {k: env[k] for k in GPU_VARS if k in env}
            assert not got, f"{r['step']} job was given a GPU: {got}"


def test_slurm_records_the_gpu_requests(runs):
    """SLURM's own record: TRES_PER_JOB gres:gpu:1 for GPU rules, nothing for the others."""
    for job in runs["jobs"]:
        rule = re.match(r"rule_([a-z_]+?)(_wildcards_|$)", job["comment"]).group(1).replace("_", "-")
        assert job["state"] == "COMPLETED", job
        if rule in GPU_STEPS:
            assert job["tres"] == "gres:gpu:1", job
        else:
            assert rule in CPU_STEPS and job["tres"] in ("N/A", "(null)", ""), job


def test_slurm_outputs_equal_local_ones(runs):
    """Every evaluation (metrics and error curves) is the local run's, byte for byte, and the summary
    holds every cell."""
    local, remote = runs["local"], runs["slurm"]
    evals = sorted(p.relative_to(remote) for p in (remote / "results" / "eval").rglob("*.json"))
    cells = [c for c in config.cells(config.load(TEST_PARAMS)) if c.seed == SEED]  # one evaluation per trained cell
    assert evals == sorted(Path(paths.EVAL.format(**c.as_dict())) for c in cells)
    for rel in evals + [Path(paths.EVAL_CURVE.format(**c.as_dict())) for c in cells]:
        assert (remote / rel).read_bytes() == (local / rel).read_bytes(), f"{rel} differs"
    metrics = json.loads((remote / "reports" / "metrics.json").read_text())
    assert {(c.experiment, c.dataset, c.setting, c.estimator) for c in cells} <= {
        (e, d, s, est) for e, x in metrics.items() for d, y in x.items() for s, z in y.items() for est in z}


def test_slurm_run_builds_the_report(runs):
    html = runs["slurm"] / "reports" / "report.html"
    assert html.stat().st_size > 10_000 and "data:image/png;base64," in html.read_text()


def test_unknown_partition_names_the_setting(cluster, tmp_path):
    root = place_test_data(copy_project(tmp_path / "project", TEST_PARAMS))
    before = _all_jobs(cluster)
    run = _snakemake(["--workflow-profile", PROFILE, *FAST, "--default-resources", "slurm_partition=no_such_partition"],
                     root, _env(cluster, _probe(tmp_path)))
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "slurm_partition" in out and "'no_such_partition'" in out and "debug (default)" in out, out[-3000:]
    assert _all_jobs(cluster) == before, "nothing may be submitted with a wrong partition"


def test_failed_job_leaves_no_partial_output(cluster, tmp_path):
    """A job that writes half its output and fails: Snakemake removes the declared output."""
    root = place_test_data(copy_project(tmp_path / "project", TEST_PARAMS))
    manifest = root / "data" / "raw" / "ml100k" / "manifest.json"
    probe = _probe(tmp_path)
    run = _snakemake(["--workflow-profile", PROFILE, *FAST, str(manifest.relative_to(root))], root,
                     _env(cluster, probe, FAIL_WITH_PARTIAL="fetch"))
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "Error in rule fetch" in out, out[-3000:]
    assert list((probe / "records").glob("fetch-*.json")), "the fetch job did not run"
    assert not manifest.exists(), "a failed job's partial output was left behind"
    # the job's own snakemake removes it (its message is in the job's SLURM log, kept for failed
    # jobs); the submitting snakemake would remove whatever were still there
    slurm_logs = "".join(p.read_text() for p in (root / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert "Removing output files of failed job fetch" in out + slurm_logs


def test_a_second_cluster_is_refused_while_one_is_up(cluster, tmp_path):
    """/etc/slurm/slurm.conf belongs to the running cluster: `up` elsewhere refuses and leaves the link alone."""
    other = tmp_path / "other"
    run = _sh(["bash", str(SCRIPT), "up", str(other)], timeout=300)
    assert run.returncode != 0 and "a local cluster that is up" in run.stderr, run.stdout + run.stderr
    assert os.readlink("/etc/slurm/slurm.conf") == str(cluster / "etc" / "slurm.conf")
    assert not list((other / "run").glob("*.pid")), "no daemon may be started for the refused cluster"


def test_a_link_to_an_ended_cluster_is_stale(tmp_path):
    """After a reboot the link's target survives but its daemons do not: that link is `up`'s to replace."""
    (tmp_path / "run").mkdir()
    fake = tmp_path / "slurmd"                      # a process whose program name is slurmd
    shutil.copy(shutil.which("sleep"), fake)
    proc = subprocess.Popen([str(fake), "60"])
    try:
        # Popen returns once the close-on-exec pipe closes, which the kernel does just before it renames
        # the process; a real daemon writes its PID file long after, so wait for the name as it would.
        comm, deadline = Path(f"/proc/{proc.pid}/comm"), time.monotonic() + 10
        while comm.read_text().strip() != "slurmd" and time.monotonic() < deadline:
            time.sleep(0.01)
        (tmp_path / "run" / "slurmd.pid").write_text(f"{proc.pid}\n")
        assert _daemons_live(tmp_path)
    finally:
        proc.kill()
        proc.wait()
    assert not _daemons_live(tmp_path), "an ended daemon's PID file must not count"
    (tmp_path / "run" / "slurmd.pid").write_text(f"{os.getpid()}\n")   # a live PID of another program
    assert not _daemons_live(tmp_path)
