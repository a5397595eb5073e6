"""The command-line interface: one subcommand per step, each with --help; errors name the key."""
from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

from adjoint_meta.cli import build_parser, main
from adjoint_meta.config import RELEVANT_KEYS

# every pipeline step (the rules and stages call these), and the helpers around them
STEPS = list(RELEVANT_KEYS)
HELPERS = ["params", "place-raw", "timings", "dvc-yaml", "code-inputs", "publish", "progress", "readme"]


def test_every_step_is_a_subcommand():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(STEPS) | set(HELPERS)


@pytest.mark.parametrize("step", STEPS + HELPERS)
def test_help(step):
    proc = subprocess.run([sys.executable, "-m", "adjoint_meta", step, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage: adjoint-meta" in proc.stdout


def test_console_script_is_installed():
    import shutil
    exe = shutil.which("adjoint-meta") or str(__import__("pathlib").Path(sys.executable).parent / "adjoint-meta")
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "make-tasks" in proc.stdout


def test_bad_parameter_stops_with_key(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code = main(["params", "--set", "meta.optimizer=lbfgs"])
    assert code == 2
    assert "meta.optimizer: 'lbfgs' is not allowed; allowed values: adam, sgd" in capsys.readouterr().err


def test_unknown_cell_is_refused(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    code = main(["train", "--experiment", "fig2_50shot", "--dataset", "cosmixture", "--setting", "50shot-50val",
                 "--estimator", "es", "--seed", "0", "--tasks", "x", "--out-model", str(tmp_path / "m.pt"),
                 "--out-log", str(tmp_path / "l.csv")])
    assert code == 2 and "no experiment in the parameters has the cell" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()
