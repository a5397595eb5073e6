"""Two runs in one directory, and a run killed mid-way: Snakemake's lock refuses the second run with a
clear message; after a kill, nothing left behind passes for a finished output."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import HANG_S, TEST_PARAMS, copy_project, place_test_data, run_tool, tool_env
from test_pipeline import check_outputs

from adjoint_meta import config

pytestmark = pytest.mark.pipeline


def test_second_run_is_locked_out_and_a_killed_run_recovers(tmp_path):
    # the test configuration with one training seed: the lock and the recovery do not depend on the grid
    doc = config.read_yaml(TEST_PARAMS)
    doc["meta"]["seeds"] = [0]
    one_seed = tmp_path / "params.yaml"
    one_seed.write_text(yaml.safe_dump(doc, sort_keys=False))
    root = place_test_data(copy_project(tmp_path / "project", one_seed))
    first = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "1"], cwd=root, env=tool_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + HANG_S  # a guard against a hang, not a bound on speed
        while time.time() < deadline and not list((root / "results" / "train").rglob("*.pt")):
            assert first.poll() is None, "the first run ended too early"
            time.sleep(0.2)
        second = run_tool(["snakemake", "--cores", "1"], root, check=False)
        assert second.returncode != 0
        assert "cannot be locked" in (second.stdout + second.stderr)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # snakemake and every job it started
        first.wait()

    # the kill left a stale lock: Snakemake says so, and --unlock clears it
    stale = run_tool(["snakemake", "--cores", "2"], root, check=False)
    assert stale.returncode != 0 and "--unlock" in (stale.stdout + stale.stderr)
    run_tool(["snakemake", "--unlock"], root)
    run_tool(["snakemake", "--cores", "2"], root)
    check_outputs(root, config.load(one_seed))
    leftovers = [p for p in root.rglob("*.tmp") if "results" in p.parts or "reports" in p.parts]
    assert all(p.name.startswith(".") for p in leftovers), "temporary files are hidden and never taken for outputs"
