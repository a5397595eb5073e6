"""Each job's code inputs through DVC: editing files in a finished `dvc repro` of the test configuration
reruns exactly the stages whose code input lists the file (Snakemake: test_codedeps.py)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from code_edits import EDITS, FINGERPRINTS, PKG, STEPS, must_rerun
from conftest import copy_run, run_tool

from adjoint_meta import config, dvc_yaml

pytestmark = pytest.mark.pipeline


def _dvc_reruns(project: Path) -> tuple[Counter, Counter]:
    """After an edit only the code stage is out of date; once it has rerun,
    {(step, code input): stages out of date for it}, {step: stages out of date}; then dvc.lock records
    the new state (dvc commit), so the next edit starts clean."""
    before = json.loads(run_tool(["dvc", "status", "--json"], project).stdout)
    assert set(before) <= {dvc_yaml.CODE_STAGE}, f"out of date before the code stage ran: {sorted(before)}"
    run_tool(["dvc", "repro", "--single-item", dvc_yaml.CODE_STAGE], project)
    status = json.loads(run_tool(["dvc", "status", "--json"], project).stdout)
    direct: Counter = Counter()
    every: Counter = Counter()
    for stage, changes in status.items():
        step = _step_of_stage(stage)
        every[step] += 1
        for change in changes:
            for f, what in (change.get("changed deps") or {}).items() if isinstance(change, dict) else ():
                assert f.startswith(FINGERPRINTS), f"{stage}: {f} {what}, though only code changed"
                direct[step, f] += 1
    if status:
        run_tool(["dvc", "commit", "-f", *sorted(status)], project)
    return direct, every


def _step_of_stage(name: str) -> str:
    base = name.split("@")[0]
    return next(s.replace("-", "_") for s in sorted(STEPS, key=len, reverse=True)
                if base == s.replace("-", "_") or base.startswith(s.replace("-", "_") + "_"))


def test_editing_a_file_reruns_exactly_the_stages_it_can_change(dvc_run, tmp_path):
    """After each edit only the code stage is out of date; once it has rerun, the stages out of date for
    their code are exactly those whose code input lists the file, and a docstring edit leaves none."""
    dvc = copy_run(dvc_run, tmp_path / "dvc")
    params = config.load(dvc / "params.yaml")
    counts = {}
    for rel, how in EDITS.items():
        how(dvc, PKG + rel)
        direct, every = _dvc_reruns(dvc)
        wanted = must_rerun(params, rel)
        assert direct == wanted, f"editing {rel}: DVC reruns {dict(direct)}, expected {dict(wanted)}"
        counts[rel] = sum(every.values())
    assert counts["estimators/imaml.py"] == 0
    print("stages DVC reruns after each edit:", counts)
