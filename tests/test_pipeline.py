"""The whole pipeline on the test configuration, through Snakemake and through DVC."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from adjoint_meta import config, paths
from conftest import TEST_PARAMS, run_tool

pytestmark = pytest.mark.pipeline


def _finite_numbers(obj) -> list[float]:
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _finite_numbers(v)]
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return [float(obj)]
    return []


def check_outputs(project: Path, params: dict) -> dict:
    html = (project / paths.REPORT).read_text()
    assert "<table>" in html and "data:image/png;base64," in html
    assert not re.search(r"<script|https?://[^\s\"']*\.(js|css)", html), "report must open offline"
    metrics = json.loads((project / paths.METRICS).read_text())
    for c in config.cells(params):
        entry = metrics[c.experiment][c.dataset][c.setting][c.estimator]
        assert math.isfinite(entry["nrmse_mean"]) and entry["nrmse_mean"] > 0
        assert math.isfinite(entry["nrmse_std"]) and math.isfinite(entry["rmse_mean"])
        ev = json.loads((project / paths.EVAL.format(**c.as_dict())).read_text())
        assert len(ev["nrmse"]["per_task"]) == ev["n_test_tasks"]
        assert all(math.isfinite(x) for x in ev["nrmse"]["per_task"])
    for exp in params["experiments"]:
        table = pd.read_csv(project / paths.TABLE.format(experiment=exp))
        assert table["nrmse_mean"].notna().all()
        assert (project / paths.FIGURE.format(name=f"{exp}_curves")).stat().st_size > 1000
    return metrics


def test_snakemake_then_nothing_to_do_then_dvc(project):
    params = config.load(TEST_PARAMS)
    run_tool(["snakemake", "--cores", "2"], project)
    snake_metrics = check_outputs(project, params)
    for c in config.cells(params):  # a log per job, with progress lines
        log = (project / paths.LOG.format(step="train", name=paths.cell_name(c.as_dict()))).read_text()
        assert re.search(r"meta-step \d+/\d+ +query loss [\d.e+-]+ +elapsed", log)

    again = run_tool(["snakemake", "--cores", "2", "--dry-run"], project)
    assert "Nothing to be done" in again.stdout + again.stderr

    # DVC in the same project (a git repository of its own), from scratch
    for sub in ("data/tasks", "results", "reports"):
        import shutil
        shutil.rmtree(project / sub, ignore_errors=True)
    import subprocess
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    run_tool(["dvc", "repro"], project)
    dvc_metrics = check_outputs(project, params)
    assert dvc_metrics == snake_metrics, "the two front ends must produce the same numbers"
    status = run_tool(["dvc", "status"], project)
    assert "up to date" in status.stdout
