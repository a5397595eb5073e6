"""`pip install .` is the library with torch and numpy alone: in a fresh virtual environment (no
system packages) the package installs without the workflow's dependencies, imports its API and
computes one meta-gradient, checked there against unrolled autograd (tests/bare/smoke.py).
About a minute, most of it installing torch."""
from __future__ import annotations

import shutil
import subprocess
import sys
import venv

import pytest
import torch
from conftest import ROOT

SMOKE = ROOT / "tests" / "bare" / "smoke.py"


def pip(python, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_the_bare_install_runs_the_api(tmp_path):
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(tmp_path / "env")
    python = tmp_path / "env" / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    got = pip(python, f"torch=={torch.__version__.split('+')[0]}")
    if got.returncode != 0:
        pytest.skip(f"torch {torch.__version__} cannot be installed into a fresh environment here: "
                    f"{got.stderr.strip()[-500:]}")
    project = tmp_path / "project"  # a copy, so that the build leaves nothing in the work tree
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    got = pip(python, str(project))
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
    run = subprocess.run([str(python), str(SMOKE)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "matches unrolled autograd" in run.stdout
