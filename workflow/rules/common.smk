# Parameters, helpers and constraints shared by every rule.
import shutil
import subprocess
from pathlib import Path

import adjoint_meta
from adjoint_meta import codedeps
from adjoint_meta import config as amc
from adjoint_meta import paths
from adjoint_meta.data.sources import SOURCES
from snakemake.exceptions import WorkflowError

# params.yaml (or --config params=FILE), with the other --config entries as overrides,
# the preset resolved and everything validated before any job is scheduled.
PARAMS_FILE = config.get("params", amc.DEFAULT_PARAMS)
try:
    P = amc.load(PARAMS_FILE, amc.snakemake_overrides(config))
except amc.ParamsError as exc:
    raise WorkflowError(str(exc)) from None

# The rules run `python -m adjoint_meta ...`, as dvc.yaml does, where `python` is the first
# on PATH (make run, make test and an activated environment put the project's first; check_python
# below stops a run whose `python` would run other code), or with --sdm conda the rules' own
# environment (CONDA_ENV; the path is relative to the rule files). The interpreter's path is not
# passed through params: params are a rerun trigger, so the same environment at another path (a
# fresh clone after `make pull`, another machine) would rerun every job.
CONDA_ENV = "../envs/adjoint-meta.yaml"
CELLS = [c.as_dict() for c in amc.cells(P)]
CELL_NAME = paths.CELL_NAME
# what summarize writes and the report reads, named by path rather than through
# `rules.summarize.output` (a rule reference would make the report job schedule summarize
# even under --allowed-rules report)
SUMMARY_OUTPUTS = paths.summary_outputs(P["experiments"])
PROFILE_JOBS = {j["profile"]: j for j in amc.profile_jobs(P)}
ACCURACY_JOBS = {j["name"]: j for j in amc.accuracy_jobs(P)}
# The data jobs are short and every training job waits for them: they go before any training
# job (whose priorities, from their cost, lie below this), so the longest jobs start early.
DATA_PRIORITY = 100

wildcard_constraints:
    source="|".join(SOURCES),
    experiment=r"[a-z][a-z0-9_]*",
    dataset=r"[a-z][a-z0-9_]*",
    setting=r"[0-9]+shot-[0-9]+val",
    estimator=r"[a-z][a-z0-9_]*",
    seed=r"[0-9]+",


def code(step):
    """The package files a step runs or reads (derived from its imports), so editing one reruns the step."""
    return list(codedeps.step_files(step))


def slice_of(step, *fields):
    """params: the JSON slice of the parameters this step reads for the job's wildcards (config.job_slice,
    which the CLI uses too)."""
    return lambda wc: amc.slice_json(P, step, **{f: (int(wc[f]) if f == "seed" else wc[f]) for f in fields})


def raw_input(wildcards):
    """The raw manifest a dataset's tasks are built from (none for synthetic families)."""
    src = P["datasets"][wildcards.dataset]["source"]
    return [] if src == "synthetic" else [paths.RAW_MANIFEST.format(source=src)]


def profile_job(wildcards):
    return PROFILE_JOBS[wildcards.profile]


def all_targets():
    return ([paths.REPORT, paths.METRICS] + [paths.TASKS.format(dataset=d) for d in P["datasets"]]
            + [paths.RAW_MANIFEST.format(source=s) for s in P["raw"]["sources"]])


# Pre-flight check for runs through the SLURM executor (workflow/profiles/slurm):
# every partition the jobs request (resource slurm_partition: the profile's
# default-resources, --default-resources or --set-resources) must be one that
# `sinfo` lists, and without one the cluster must have a default partition.
# Otherwise the run stops here, before anything is submitted, naming the setting
# to change; sbatch's own "invalid partition specified" comes only after the
# first submission and names neither the setting nor the partitions there are.
def slurm_preflight():
    import subprocess

    plugin = workflow.executor_plugin
    if plugin is None or getattr(plugin, "name", None) != "slurm":
        return  # local runs, dry runs, and the jobs' own snakemake (slurm-jobstep)
    wanted = {}  # partition (None: the cluster's default) -> rules
    for job in workflow.dag.needrun_jobs():
        try:
            res = job.resources
            if job.is_local or any(res.get(k) for k in ("slurm_cluster", "cluster", "clusters")):
                continue  # not submitted, or another cluster's partitions
            part = res.get("slurm_partition")
        except Exception:  # resources that cannot be evaluated yet: the plugin decides
            continue
        for p in str(part).split(",") if part else [None]:
            wanted.setdefault(p.strip() if p else None, set()).add(job.rule.name)
    if not wanted:
        return
    try:
        out = subprocess.run(["sinfo", "--all", "--noheader", "--format=%P"], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WorkflowError(f"SLURM executor: cannot run sinfo to check the partitions ({exc}); "
                            "run Snakemake where the SLURM commands (sinfo, sbatch, squeue) work.") from None
    if out.returncode != 0:
        raise WorkflowError(f"SLURM executor: sinfo failed (exit {out.returncode}): {out.stderr.strip()}; "
                            "run Snakemake where the SLURM commands (sinfo, sbatch, squeue) work.")
    names = [p.strip() for p in out.stdout.split() if p.strip()]
    available = sorted({p.rstrip("*") for p in names})
    default = next((p.rstrip("*") for p in names if p.endswith("*")), None)
    listed = ", ".join(f"{p} (default)" if p == default else p for p in available) or "none"
    how = ("Set slurm_partition to one of them: per run with\n"
           "    snakemake --workflow-profile workflow/profiles/slurm --default-resources slurm_partition=NAME\n"
           "or under default-resources in workflow/profiles/slurm/config.yaml "
           "(one rule: --set-resources RULE:slurm_partition=NAME).")
    bad = {p: rules for p, rules in wanted.items() if p is not None and p not in available}
    if bad:
        which = "; ".join(f"'{p}' (rules: {', '.join(sorted(r))})" for p, r in sorted(bad.items()))
        raise WorkflowError(f"SLURM partition not found: slurm_partition = {which}. "
                            f"Partitions on this cluster (sinfo): {listed}.\n{how}")
    if None in wanted and default is None:
        raise WorkflowError("No slurm_partition is set and this cluster has no default partition "
                            f"(rules: {', '.join(sorted(wanted[None]))}). "
                            f"Partitions on this cluster (sinfo): {listed}.\n{how}")


def check_python():
    """The jobs' `python` (the first on PATH) imports the adjoint_meta this Snakemake runs with;
    otherwise the run stops before any job, saying which `python` that is. Not with --sdm conda,
    where the rules' environment provides both."""
    from snakemake.settings.types import DeploymentMethod

    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return
    here = Path(adjoint_meta.__file__).resolve().parent
    python = shutil.which("python")
    found = None
    if python:
        out = subprocess.run([python, "-c", "import adjoint_meta; print(adjoint_meta.__file__)"],
                             capture_output=True, text=True, timeout=120)
        found = Path(out.stdout.strip()).resolve().parent if out.returncode == 0 else None
    if found != here:
        what = ("there is no `python` on PATH" if python is None else
                f"`python` on PATH ({python}) " + (f"imports adjoint_meta from {found}" if found else
                                                    "cannot import adjoint_meta"))
        raise WorkflowError(f"The jobs run `python -m adjoint_meta`, but {what}; this Snakemake runs "
                            f"with {here}. Activate the project's environment (make setup creates "
                            "it: source .venv/bin/activate) or run through `make run`.")


onstart:
    check_python()
    slurm_preflight()
