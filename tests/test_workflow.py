"""What the Snakemake rules call (adjoint_meta.workflow), without a run: the jobs' code inputs, the check
of the jobs' `python` and the SLURM partition check, on stand-ins for what Snakemake hands them."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

import adjoint_meta
from adjoint_meta import codedeps, workflow

HERE = Path(adjoint_meta.__file__).resolve().parent


def _job(rule: str, local: bool = False, **resources):
    return SimpleNamespace(rule=SimpleNamespace(name=rule), is_local=local, resources=resources)


class _Unevaluated:
    is_local = False
    rule = SimpleNamespace(name="late")

    @property
    def resources(self):
        raise ValueError("needs the job's input first")


def _workflow(plugin: str | None = "slurm", jobs=(), conda: bool = False):
    return SimpleNamespace(
        executor_plugin=None if plugin is None else SimpleNamespace(name=plugin),
        dag=SimpleNamespace(needrun_jobs=lambda: list(jobs)),
        deployment_settings=SimpleNamespace(deployment_method={DeploymentMethod.CONDA} if conda else set()))


def _sinfo(stdout: str = "", returncode: int = 0, stderr: str = ""):
    calls = []

    def run(args, **kw):
        calls.append(args)
        return subprocess.CompletedProcess(args, returncode, stdout, stderr)

    return run, calls


def test_code_names_the_job_s_code_input():
    assert workflow.code("fetch") == codedeps.code_input("fetch")
    for step, field in codedeps.KEYS.items():
        assert workflow.code(step)({field: "x"}) == codedeps.code_input(step, "x")
    assert codedeps.code_input("train", "es") == "results/code/train/es.sha256"


def test_wanted_partitions_skip_local_and_other_clusters_jobs():
    jobs = [_job("train", slurm_partition="gpu"), _job("evaluate", slurm_partition="cpu, gpu"), _job("report"),
            _job("all", local=True, slurm_partition="nowhere"), _job("far", slurm_partition="x", slurm_cluster="c2"),
            _Unevaluated()]
    assert workflow.wanted_partitions(jobs) == {"gpu": {"train", "evaluate"}, "cpu": {"evaluate"}, None: {"report"}}


def test_check_partitions_names_the_setting_and_the_partitions():
    workflow.check_partitions({"gpu": {"train"}, None: {"report"}}, "cpu*\ngpu\n")
    with pytest.raises(WorkflowError, match=r"slurm_partition = 'big' \(rules: train\).*cpu \(default\), gpu"
                                            r"(.|\n)*--default-resources slurm_partition=NAME"):
        workflow.check_partitions({"big": {"train"}}, "cpu*\ngpu\n")
    with pytest.raises(WorkflowError, match=r"no default partition \(rules: report\)"):
        workflow.check_partitions({None: {"report"}}, "cpu\ngpu\n")


def test_slurm_preflight_runs_sinfo_only_under_the_slurm_executor():
    run, calls = _sinfo("cpu*\n")
    for wf in (_workflow(None, [_job("train")]), _workflow("local", [_job("train")]), _workflow("slurm", [])):
        workflow.slurm_preflight(wf, run)
    assert calls == []
    workflow.slurm_preflight(_workflow("slurm", [_job("train")]), run)
    assert calls == [workflow.SINFO]
    with pytest.raises(WorkflowError, match="'gpu'"):
        workflow.slurm_preflight(_workflow("slurm", [_job("train", slurm_partition="gpu")]), run)
    failing, _ = _sinfo(returncode=1, stderr="slurm_load_partitions: Unable to contact slurm controller")
    with pytest.raises(WorkflowError, match=r"sinfo failed \(exit 1\): slurm_load_partitions"):
        workflow.slurm_preflight(_workflow("slurm", [_job("train")]), failing)

    def missing(args, **kw):
        raise FileNotFoundError("sinfo")

    with pytest.raises(WorkflowError, match="cannot run sinfo"):
        workflow.slurm_preflight(_workflow("slurm", [_job("train")]), missing)


def test_python_problem_says_which_python_and_what_it_imports():
    assert workflow.python_problem("/env/bin/python", HERE, HERE) is None
    assert "there is no `python` on PATH" in workflow.python_problem(None, None, HERE)
    other = workflow.python_problem("/other/bin/python", Path("/elsewhere/adjoint_meta"), HERE)
    assert "/other/bin/python" in other and "/elsewhere/adjoint_meta" in other and str(HERE) in other
    assert "cannot import adjoint_meta" in workflow.python_problem("/other/bin/python", None, HERE)


def test_check_python_asks_the_python_on_path(monkeypatch):
    monkeypatch.setattr(workflow.shutil, "which", lambda name: sys.executable)
    workflow.check_python(_workflow(), subprocess.run)  # this interpreter imports this package
    run, calls = _sinfo(stdout="/elsewhere/adjoint_meta/__init__.py\n")
    with pytest.raises(WorkflowError, match="imports adjoint_meta from /elsewhere/adjoint_meta"):
        workflow.check_python(_workflow(), run)
    assert calls and calls[0][0] == sys.executable
    calls.clear()
    workflow.check_python(_workflow(conda=True), run)  # the rules' conda environment provides both
    assert calls == []
