# Parameters, helpers and constraints shared by every rule; their logic lives in adjoint_meta.workflow.
from adjoint_meta import codedeps
from adjoint_meta import config as amc
from adjoint_meta import paths
from adjoint_meta import workflow as amw
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
# on PATH (make run, make test and an activated environment put the project's first;
# amw.check_python stops a run whose `python` would run other code), or with --sdm conda the rules' own
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


# Each job's code input, the fingerprint of the package files it can be changed by, written now where it
# changed (adjoint_meta.codedeps): a job reruns after an edit to its own code, and none after a comment.
codedeps.write_code_inputs(P)
code = amw.code


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
    return (
        [paths.REPORT, paths.METRICS]
        + [paths.TASKS.format(dataset=d) for d in P["datasets"]]
        + [paths.RAW_MANIFEST.format(source=s) for s in P["raw"]["sources"]]
    )


onstart:
    amw.check_python(workflow)
    amw.slurm_preflight(workflow)
