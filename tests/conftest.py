"""Shared fixtures: a scratch copy of the project and helpers to run its front ends."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests draw the same examples on every run (a CI run cannot fail on a case the
# previous one never met); `pytest --hypothesis-profile=explore` draws fresh ones. Neither
# times anything: no deadline per example, no health check on how slow generation is.
_untimed = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("repro", derandomize=True, **_untimed)
settings.register_profile("explore", derandomize=False, **_untimed)
settings.load_profile("repro")

# Where the tools the tests run would write outside the project (caches, settings, usage data),
# they write into one temporary directory per session instead: Snakemake's source cache,
# matplotlib's font cache, DVC's site cache (otherwise /var/tmp/dvc) and global settings, and the
# telemetry id of DVC's analytics, which are off. The processes the tests start inherit this.
SANDBOX_VARS = {
    "XDG_CACHE_HOME": "cache",
    "XDG_CONFIG_HOME": "config",
    "XDG_DATA_HOME": "data",
    "XDG_STATE_HOME": "state",
    "DVC_SITE_CACHE_DIR": "dvc-site-cache",
    "TRITON_CACHE_DIR": "triton",
}


def pytest_configure(config):
    sandbox = Path(tempfile.mkdtemp(prefix="adjoint-meta-tests-"))
    config.add_cleanup(lambda: shutil.rmtree(sandbox, ignore_errors=True))
    for var, sub in SANDBOX_VARS.items():
        os.environ[var] = str(sandbox / sub)
    os.environ["DVC_NO_ANALYTICS"] = "1"
    os.environ.pop("MPLCONFIGDIR", None)  # matplotlib then uses the XDG directories above


def pytest_collection_modifyitems(config, items):
    """Modules with the most `pipeline` tests first, the rest in collection order after them. `make test`
    hands out whole modules in this order (`--no-loadscope-reorder`), so the long runs (the SLURM proof,
    the shared `dvc repro`) start at once, one on each worker, and the many short modules fill in
    behind them, instead of the long runs starting last and running alone."""
    def module(item):
        return item.nodeid.split("::", 1)[0]

    weight = Counter(module(i) for i in items if i.get_closest_marker("pipeline"))
    items.sort(key=lambda i: -weight[module(i)])  # stable: each module keeps its own order


ROOT = Path(__file__).resolve().parents[1]
TEST_PARAMS = ROOT / "tests" / "params.test.yaml"
# How long a tool the tests start may run before it counts as hung: a guard against a hang, not a
# bound on speed, so it is far above what the slowest host takes (a DVC run of the test configuration
# took over 15 minutes on 2 cores loaded 7-fold); ADJOINT_META_TEST_HANG_S changes it.
HANG_S = float(os.environ.get("ADJOINT_META_TEST_HANG_S", "7200"))
_SKIP = {".git", ".venv", ".snakemake", "results", "logs", ".pytest_cache", "__pycache__", ".dvc_cache"}


def project_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files of the project (what a clone would hold)."""
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                             capture_output=True, check=True).stdout.decode()
        return [f for f in out.split("\0") if f and ((ROOT / f).is_file() or (ROOT / f).is_symlink())]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for p in ROOT.rglob("*"):
            rel = p.relative_to(ROOT)
            if p.is_file() and not (set(rel.parts) & _SKIP) and rel.parts[0] not in ("data", "reports"):
                files.append(str(rel))
        return files


def copy_project(dst: Path, params: Path | None = None) -> Path:
    """Copy the project into ``dst``; optionally make ``params`` its params.yaml.  Published releases
    (``published/``) are results, not code: the copies leave them out."""
    for rel in project_files():
        if rel.startswith("published/"):
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / rel).is_symlink():
            target.symlink_to(os.readlink(ROOT / rel))
        else:
            shutil.copy2(ROOT / rel, target)
    if params is not None:
        shutil.copy2(params, dst / "params.yaml")
    return dst


def tool_env(**extra: str) -> dict:
    """Environment in which `python` (used by dvc.yaml) is this interpreter."""
    env = dict(os.environ, **extra)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_tool(args: list[str], cwd: Path, check: bool = True, timeout: float = HANG_S,
             env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env or tool_env(), capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-6000:]}")
    return proc


def write_u_data(path: Path, n_users: int = 40, n_items: int = 30, seed: int = 0) -> Path:
    """A small MovieLens-100K-format ratings file (user, item, rating, timestamp; tab-separated)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lines = []
    for user in range(1, n_users + 1):
        items = rng.choice(np.arange(1, n_items + 1), size=int(rng.integers(8, 26)), replace=False)
        for item in items:
            lines.append(f"{user}\t{item}\t{int(rng.integers(1, 6))}\t{880000000 + len(lines)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def small_mlp_problem():
    """The estimator tests' problem: a 2-6-6-1 tanh MLP, 3 tasks of 10 support and 12 query examples
    (``reference.problem_data``), theta from seed 0, all in float64: (model, InnerProblem, theta)."""
    import reference as ref
    import torch

    from adjoint_meta.estimators import InnerProblem
    from adjoint_meta.model import MLP

    sizes = [2, 6, 6, 1]
    m = MLP(sizes, "tanh")
    support, query = ref.problem_data(sizes, B=3, n_support=10, n_query=12, seed=1)
    return m, InnerProblem(m, support, query), m.init(torch.Generator().manual_seed(0), torch.float64)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scratch copy of the project whose params.yaml is the test configuration, with a
    generated MovieLens-100K-format file placed by hand (the configuration forbids downloads)."""
    return place_test_data(copy_project(tmp_path / "project", TEST_PARAMS))


def place_test_data(root: Path) -> Path:
    """The raw file the test configuration reads (it forbids downloads)."""
    write_u_data(root / "data" / "raw" / "ml100k" / "u.data")
    return root


# The two full runs of the test configuration below are shared by every test that needs one
# (pipeline, SLURM, DVC remote): each takes a few minutes on two cores. Tests only read them;
# a test that changes a project works on its own copy (copy_run). With pytest-xdist (`make test`
# runs two workers), the worker that first asks for a run makes it and the others wait for it and
# read the same one, so each is made once per session.

def _made_once(tmp_path_factory, name: str, make) -> Path:
    """``make(base)`` (which returns the project root under the empty folder ``base``), once per session."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return make(tmp_path_factory.mktemp(name))
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp().parent / name  # the session's folder, shared by its workers
    done = base.with_name(name + ".done")
    with FileLock(str(base) + ".lock"):
        if not done.is_file():
            shutil.rmtree(base, ignore_errors=True)
            base.mkdir()
            done.write_text(str(make(base)))
    return Path(done.read_text())


@pytest.fixture(scope="session")
def snakemake_run(tmp_path_factory) -> Path:
    """A scratch project after one full `snakemake --cores 2` of the test configuration. Every
    job records what it imported and opened in ``step_traces(root)`` (tests/trace/)."""
    return _made_once(tmp_path_factory, "snakemake_run", _snakemake_run)


def _snakemake_run(base: Path) -> Path:
    root = place_test_data(copy_project(base / "project", TEST_PARAMS))
    traces = step_traces(root)
    traces.mkdir()
    pythonpath = os.pathsep.join(filter(None, [str(ROOT / "tests" / "trace"), os.environ.get("PYTHONPATH")]))
    run_tool(["snakemake", "--cores", "2"], root,
             env=tool_env(PYTHONPATH=pythonpath, ADJOINT_META_TRACE_DIR=str(traces)))
    return root


def step_traces(root: Path) -> Path:
    """Where the jobs of the shared Snakemake run recorded the package files they used."""
    return root.parent / "traces"


@pytest.fixture(scope="session")
def dvc_run(tmp_path_factory) -> Path:
    """A git repository (nothing committed) holding the project after `dvc repro` of the test
    configuration."""
    return _made_once(tmp_path_factory, "dvc_run", _dvc_run)


def _dvc_run(base: Path) -> Path:
    root = place_test_data(copy_project(base / "repo", TEST_PARAMS))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    run_tool(["dvc", "repro"], root)
    return root


def copy_run(src: Path, dst: Path) -> Path:
    """A private copy of a shared run (outputs, DVC cache and git metadata included)."""
    shutil.copytree(src, dst, symlinks=True)
    return dst
