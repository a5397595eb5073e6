"""What the Snakemake rules (workflow/rules/*.smk) call beyond one command each: the jobs' code inputs,
and the checks made when a run starts, before any job: that the jobs' ``python`` runs this package, and,
under the SLURM executor, that every partition the jobs request exists.

Each check takes what it reads from Snakemake as arguments, so its logic is tested without a run
(tests/test_workflow.py); a failed check raises ``WorkflowError``, which Snakemake reports and stops on.
"""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

import adjoint_meta
from adjoint_meta import codedeps

Run = Callable[..., subprocess.CompletedProcess]


def code(step: str) -> Callable[[Any], str] | str:
    """The code input of a job of ``step`` (``codedeps.code_input``): a path, or a function of the job's
    wildcards where the step's jobs differ in code (``codedeps.KEYS``)."""
    if step not in codedeps.KEYS:
        return codedeps.code_input(step)
    field = codedeps.KEYS[step]
    return lambda wildcards: codedeps.code_input(step, wildcards[field])


# -- the jobs' python ----------------------------------------------------------------------------
def python_problem(python: str | None, found: Path | None, here: Path) -> str | None:
    """Why the jobs' ``python`` (the first on PATH, which imports ``adjoint_meta`` from ``found``) would
    not run the package this Snakemake runs with (``here``); None when it would."""
    if python is not None and found == here:
        return None
    what = ("there is no `python` on PATH" if python is None else
            f"`python` on PATH ({python}) " + (f"imports adjoint_meta from {found}" if found else
                                                "cannot import adjoint_meta"))
    return (f"The jobs run `python -m adjoint_meta`, but {what}; this Snakemake runs with {here}. Activate the "
            "project's environment (make setup creates it: source .venv/bin/activate) or run through `make run`.")


def check_python(workflow: Any, run: Run = subprocess.run) -> None:
    """Stop the run before any job unless the jobs' ``python`` imports the adjoint_meta this Snakemake
    runs with. Not with ``--sdm conda``, where the rules' environment provides both."""
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return
    here = Path(adjoint_meta.__file__).resolve().parent
    python = shutil.which("python")
    found = None
    if python:
        out = run([python, "-c", "import adjoint_meta; print(adjoint_meta.__file__)"], capture_output=True,
                  text=True, timeout=120)
        found = Path(out.stdout.strip()).resolve().parent if out.returncode == 0 else None
    problem = python_problem(python, found, here)
    if problem:
        raise WorkflowError(problem)


# -- SLURM partitions ----------------------------------------------------------------------------
# Every partition the jobs request (resource slurm_partition: the profile's default-resources,
# --default-resources or --set-resources) must be one that `sinfo` lists, and without one the cluster
# must have a default partition. sbatch's own "invalid partition specified" comes only after the first
# submission and names neither the setting nor the partitions there are.
HOW = ("Set slurm_partition to one of them: per run with\n"
       "    snakemake --workflow-profile workflow/profiles/slurm --default-resources slurm_partition=NAME\n"
       "or under default-resources in workflow/profiles/slurm/config.yaml "
       "(one rule: --set-resources RULE:slurm_partition=NAME).")
SINFO = ["sinfo", "--all", "--noheader", "--format=%P"]


def wanted_partitions(jobs: Iterable[Any]) -> dict[str | None, set[str]]:
    """{partition (None: the cluster's default): rules} of the jobs that will be submitted to this cluster."""
    wanted: dict[str | None, set[str]] = {}
    for job in jobs:
        try:
            res = job.resources
            if job.is_local or any(res.get(k) for k in ("slurm_cluster", "cluster", "clusters")):
                continue  # not submitted, or another cluster's partitions
            part = res.get("slurm_partition")
        except Exception:  # resources that cannot be evaluated yet: the plugin decides
            continue
        for p in str(part).split(",") if part else [None]:
            wanted.setdefault(p.strip() if p else None, set()).add(job.rule.name)
    return wanted


def check_partitions(wanted: Mapping[str | None, set[str]], sinfo: str) -> None:
    """Raise naming the setting to change where a wanted partition is not among ``sinfo``'s (``%P``
    output: one name a line, the default marked ``*``), or where none is set and there is no default."""
    names = [p.strip() for p in sinfo.split() if p.strip()]
    available = sorted({p.rstrip("*") for p in names})
    default = next((p.rstrip("*") for p in names if p.endswith("*")), None)
    listed = ", ".join(f"{p} (default)" if p == default else p for p in available) or "none"
    bad = {p: rules for p, rules in wanted.items() if p is not None and p not in available}
    if bad:
        which = "; ".join(f"'{p}' (rules: {', '.join(sorted(r))})" for p, r in sorted(bad.items()))
        raise WorkflowError(f"SLURM partition not found: slurm_partition = {which}. "
                            f"Partitions on this cluster (sinfo): {listed}.\n{HOW}")
    if None in wanted and default is None:
        raise WorkflowError("No slurm_partition is set and this cluster has no default partition "
                            f"(rules: {', '.join(sorted(wanted[None]))}). "
                            f"Partitions on this cluster (sinfo): {listed}.\n{HOW}")


def slurm_preflight(workflow: Any, run: Run = subprocess.run) -> None:
    """Under the SLURM executor, stop the run before anything is submitted when a job's partition does
    not exist (``check_partitions``). Local runs, dry runs and the jobs' own Snakemake pass."""
    plugin = workflow.executor_plugin
    if plugin is None or getattr(plugin, "name", None) != "slurm":
        return
    wanted = wanted_partitions(workflow.dag.needrun_jobs())
    if not wanted:
        return
    try:
        out = run(SINFO, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WorkflowError(f"SLURM executor: cannot run sinfo to check the partitions ({exc}); "
                            "run Snakemake where the SLURM commands (sinfo, sbatch, squeue) work.") from None
    if out.returncode != 0:
        raise WorkflowError(f"SLURM executor: sinfo failed (exit {out.returncode}): {out.stderr.strip()}; "
                            "run Snakemake where the SLURM commands (sinfo, sbatch, squeue) work.")
    check_partitions(wanted, out.stdout)
