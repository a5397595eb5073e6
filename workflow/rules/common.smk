# Parameters, helpers and constraints shared by every rule.
import shlex
import sys
from glob import glob
from pathlib import Path

from adjoint_meta import config as amc
from adjoint_meta import paths
from snakemake.exceptions import WorkflowError

# params.yaml (or --config params=FILE), with the other --config entries as overrides,
# the preset resolved and everything validated before any job is scheduled.
PARAMS_FILE = config.get("params", amc.DEFAULT_PARAMS)
try:
    P = amc.load(PARAMS_FILE, {k: v for k, v in config.items() if k != "params"})
except amc.ParamsError as exc:
    raise WorkflowError(str(exc)) from None

# the interpreter running Snakemake has the package installed
CLI = f"{shlex.quote(sys.executable)} -m adjoint_meta"
CELLS = [c.as_dict() for c in amc.cells(P)]
CELL_NAME = "{experiment}__{dataset}__{setting}__{estimator}__seed{seed}"

wildcard_constraints:
    source=r"jester|ml100k|ml1m",
    experiment=r"[a-z][a-z0-9_]*",
    dataset=r"[a-z][a-z0-9_]*",
    setting=r"[0-9]+shot-[0-9]+val",
    estimator=r"[a-z][a-z0-9_]*",
    seed=r"[0-9]+",


def code(step):
    """The .py files a step runs (paths.CODE), so editing them reruns the step."""
    files = []
    for p in paths.CODE[step]:
        files += sorted(glob(f"{p}/**/*.py", recursive=True)) if Path(p).is_dir() else [p]
    return files


def slice_of(step, *fields):
    """params: the JSON slice of the parameters this step reads for the job's wildcards."""
    return lambda wc: amc.slice_json(P, step, **{f: (int(wc[f]) if f == "seed" else wc[f]) for f in fields})


def all_targets():
    return ([paths.REPORT, paths.METRICS] + [paths.TASKS.format(dataset=d) for d in P["datasets"]]
            + [paths.RAW_MANIFEST.format(source=s) for s in P["raw"]["sources"]])
