"""Every script of examples/ runs end to end on a reduced size and prints its progress."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT

RUNS = {
    "regression_adjoint.py": (["--steps", "16", "--meta-steps", "2", "--tasks", "2"], "meta-step    2"),
    "fewshot_amaml.py": (["--steps", "4", "--meta-steps", "6"], "maml: held-out accuracy after meta-training"),
    "learned_step_sizes.py": (["--steps", "8", "--meta-steps", "3"], "learned step sizes:"),
    "feature_weights.py": (["--steps", "300", "--meta-steps", "20", "--figure", "{tmp}/flow.png"],
                           "alias weight c1"),
}


def test_every_example_is_run_here():
    assert sorted(RUNS) == sorted(p.name for p in (ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("script", sorted(RUNS))
def test_example_runs(script, tmp_path):
    args, said = RUNS[script]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, str(ROOT / "examples" / script), *(a.format(tmp=tmp_path) for a in args)],
                         capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert said in run.stdout, run.stdout[-3000:]
    assert len(run.stdout.splitlines()) >= 3
    if script == "feature_weights.py":
        assert (tmp_path / "flow.png").stat().st_size > 0
