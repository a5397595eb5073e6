"""The pinned environment (requirements/*.lock, the rules' conda environment), the linter's verdict
on the workflow, the check of the jobs' `python`, and where the tools the tests run write."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import HANG_S, ROOT, SANDBOX_VARS, TEST_PARAMS, copy_project, run_tool
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

sys.path.insert(0, str(ROOT / "scripts"))
import lock  # noqa: E402


def read(rel: str) -> str:
    return (ROOT / rel).read_text()


def pinned(lock_text: str) -> dict[str, str]:
    """name -> version of the pins that apply here (their markers hold on this machine)."""
    out = {}
    for pin in map(Requirement, lock.pins(lock_text)):
        if pin.marker is None or pin.marker.evaluate():
            (spec,) = pin.specifier
            assert spec.operator == "==", pin
            assert canonicalize_name(pin.name) not in out, f"{pin.name} pinned twice for this machine"
            out[canonicalize_name(pin.name)] = spec.version
    return out


def pyproject_requirements(*groups: str) -> list[Requirement]:
    project = tomllib.loads(read("pyproject.toml"))["project"]
    reqs = [r for g in groups for r in (project["dependencies"] if g == "" else project["optional-dependencies"][g])]
    return [Requirement(r) for r in reqs]


@pytest.mark.parametrize(("path", "extra"), [(lock.MAIN, "workflow"), (lock.BENCH, "bench"), (lock.LINT, "lint")])
def test_locks_pin_every_package_with_hashes_and_no_torch_build(path, extra):
    text = read(path)
    assert lock.torch_builds(text) == [], f"{path} must leave torch (and CUDA packages) to scripts/setup.sh"
    pins = lock.pins(text)
    assert all("==" in p for p in pins)
    pinned = {lock.name(p) for p in pins}
    assert {r.name.lower() for r in pyproject_requirements(extra)} <= pinned, f"{path} lacks its extra's packages"
    # every requirement line continues with its hashes (pip then checks every download)
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line and not line[0].isspace() and not line.startswith("#")]
    assert len(starts) == len(pins)
    for i in starts:
        assert lines[i].endswith("\\") and lines[i + 1].strip().startswith("--hash=sha256:"), lines[i]


@pytest.mark.parametrize("path,groups", [(lock.MAIN, ("", "workflow", "test")), (lock.BENCH, ("", "bench"))])
def test_lock_meets_pyproject(path, groups):
    """Each dependency pyproject.toml names (torch aside) is pinned at a version it accepts:
    an edit of pyproject.toml without `make lock` fails here."""
    pins = pinned(read(path))
    for req in pyproject_requirements(*groups):
        if req.name == "torch":
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not in {path}: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"{path} pins {name}=={pins[name]}, outside {req}"


def test_bench_lock_agrees_with_main_lock():
    main, bench = pinned(read(lock.MAIN)), pinned(read(lock.BENCH))
    assert {n: v for n, v in bench.items() if n in main and main[n] != v} == {}


def test_conda_env_is_main_lock_with_cpu_torch():
    text = read(lock.ENV)
    assert text == lock.env_file(read(lock.MAIN), lock.torch_version()), "stale conda environment: run make lock"
    env = yaml.safe_load(text)
    assert f"python={lock.ENV_PYTHON}" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    torch = [Requirement(p) for p in pip if p.startswith("torch==")]
    on_linux = [t for t in torch if t.marker.evaluate({"sys_platform": "linux"})]
    assert len(on_linux) == 1 and str(on_linux[0].specifier).endswith("+cpu"), on_linux
    assert f"--extra-index-url {lock.TORCH_CPU_INDEX}" in pip
    assert lock.torch_version() in str(on_linux[0].specifier)
    # Snakemake runs <env>.post-deploy.sh beside the file once in the new environment: the package
    deploy = (ROOT / lock.ENV).with_name("adjoint-meta.post-deploy.sh").read_text()
    assert "pip install --disable-pip-version-check --no-deps -e ." in deploy and "pip check" in deploy


def test_snakemake_lint_is_clean(tmp_path):
    project = copy_project(tmp_path / "p", TEST_PARAMS)
    out = run_tool(["snakemake", "--lint"], project, check=False)
    text = out.stdout + out.stderr
    assert out.returncode == 0 and "Lints for" not in text, text[-4000:]


@pytest.mark.parametrize("fake,said", [
    ("exit 1", "cannot import adjoint_meta"),
    ("echo /elsewhere/adjoint_meta/__init__.py", "imports adjoint_meta from /elsewhere/adjoint_meta"),
])
def test_a_run_whose_python_is_not_this_package_stops_first(tmp_path, fake, said):
    """The rules run `python -m adjoint_meta`: a `python` on PATH that would run other code (or
    none) stops the run before any job, naming it."""
    project = copy_project(tmp_path / "p", TEST_PARAMS)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f"#!/bin/sh\n{fake}\n")
    (bin_dir / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "data/tasks/cosmixture.parquet"],
                         cwd=project, env=env, capture_output=True, text=True, timeout=HANG_S)
    out = run.stdout + run.stderr
    assert run.returncode != 0 and said in out and str(bin_dir / "python") in out, out[-3000:]
    assert "source .venv/bin/activate" in out
    assert not (project / "data" / "tasks").exists(), "no job may run"


def test_tools_write_into_the_session_sandbox():
    """Caches, settings and usage data of the tools the tests run go into one temporary directory
    (conftest.SANDBOX_VARS), not into $HOME, /var/tmp or /etc."""
    import matplotlib
    from dvc import analytics, dirs
    from snakemake.common import get_appdirs

    sandbox = Path(os.environ["XDG_CACHE_HOME"]).parent
    assert sandbox.is_relative_to(Path(tempfile.gettempdir()))
    assert set(SANDBOX_VARS) <= set(os.environ)
    for where in (dirs.site_cache_dir(), dirs.global_config_dir(), get_appdirs().user_cache_dir,
                  matplotlib.get_cachedir(), matplotlib.get_configdir()):
        assert Path(where).is_relative_to(sandbox), where
    assert not analytics.is_enabled()


def test_each_rule_file_uses_only_what_common_smk_defines():
    """A rule file may use the names common.smk defines, never one another rule file defines: the
    files then do not depend on the order the Snakefile includes them in."""
    rules = ROOT / "workflow" / "rules"
    defined = {p.name: set(re.findall(r"^(?:def\s+(\w+)|(\w+)\s*=(?!=))", p.read_text(), flags=re.M))
               for p in rules.glob("*.smk")}
    defined = {name: {a or b for a, b in found} for name, found in defined.items()}
    assert "common.smk" in defined and defined["common.smk"]
    for name, text in ((p.name, p.read_text()) for p in rules.glob("*.smk") if p.name != "common.smk"):
        for other, names in defined.items():
            if other in ("common.smk", name):
                continue
            used = {n for n in names if re.search(rf"\b{re.escape(n)}\b", text)}
            assert not used, f"{name} uses {sorted(used)}, defined in {other}; define them in common.smk"
