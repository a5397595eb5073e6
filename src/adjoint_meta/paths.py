"""Where every artifact lives, relative to the project root.

The patterns use ``{wildcard}`` fields so the Snakefile can use them as rule
outputs directly and Python code can ``.format(**cell)`` them; ``dvc_yaml`` fills
them with DVC's ``${item.*}`` fields to write dvc.yaml.
"""
from __future__ import annotations

RAW_DIR = "data/raw"
RAW_MANIFEST = "data/raw/{source}/manifest.json"
TASKS = "data/tasks/{dataset}.parquet"
TASKS_SUMMARY = "data/tasks/{dataset}.json"

_CELL = "{experiment}/{dataset}/{setting}/{estimator}/seed{seed}"
MODEL = "results/train/" + _CELL + ".pt"
TRAIN_LOG = "results/train/" + _CELL + ".csv"
EVAL = "results/eval/" + _CELL + ".json"
EVAL_CURVE = "results/eval/" + _CELL + ".csv"

FEWSHOT = "results/fewshot/{estimator}/seed{seed}.json"  # the few-shot experiment, one estimator and seed
FEWSHOT_CURVE = "results/fewshot/{estimator}/seed{seed}.csv"
PROTONET = "results/protonet/seed{seed}.json"
PROTONET_CURVE = "results/protonet/seed{seed}.csv"

PROFILE = "results/profile/{profile}.csv"  # every estimator of the profile
ACCURACY = "results/accuracy/{name}.csv"

METRICS = "reports/metrics.json"
TABLE = "reports/tables/{experiment}.csv"
NRMSE_DEFINITIONS = "reports/tables/nrmse_definitions.csv"  # every candidate nRMSE definition per cell
CURVES = "reports/plots/{experiment}_curves.csv"
JOBS = "reports/jobs.csv"
PROFILES = "reports/profiles.csv"
ACCURACY_TABLE = "reports/accuracy.csv"
FEWSHOT_TABLE = "reports/fewshot.csv"
FEWSHOT_CURVES = "reports/fewshot_curves.csv"
LEARNED_RATES = "reports/learned_rates.csv"
FIGURE = "reports/figures/{name}.png"
REPORT = "reports/report.html"

# A job's code input (adjoint_meta.codedeps): the fingerprint of the files it can be changed by; {job} is
# the step, or <step>/<key> where the step's jobs differ in code (codedeps.KEYS). No Snakemake rule
# writes them: the workflow does when it starts, DVC in its one `code` stage.
CODE_DIR = "results/code"
CODE_INPUT = CODE_DIR + "/{job}.sha256"

LOG = "logs/{step}/{name}.log"
BENCHMARK = "logs/benchmarks/{step}/{name}.tsv"
# job names in LOG and BENCHMARK (training and evaluation share the cell's name)
CELL_NAME = "{experiment}__{dataset}__{setting}__{estimator}__seed{seed}"
FEWSHOT_NAME = "{estimator}__seed{seed}"
PROTONET_NAME = "seed{seed}"
PROFILE_NAME = "{profile}"


def rate_experiments(params: dict) -> list[str]:
    """The experiments that train a configuration learning its inner step sizes (``learn_rate``): they
    make the report's section on learned step sizes (and its figure), beyond the paper."""
    learns = {name for name, cfg in params["estimators"].items() if cfg.get("learn_rate")}
    return [e for e, x in params["experiments"].items() if learns & set(x["estimators"])]


def figure_names(params: dict) -> dict[str, str]:
    """Every figure the report draws (reports/figures/<name>.png) and its kind, known before it runs."""
    names = {f"{e}_curves": "curves" for e in params["experiments"]}
    names.update({f"profile_{p}_{var}_{metric}": "profile" for p, prof in params["profiles"].items()
                  for var in prof["sweep"] for metric in ("memory", "time")})
    names.update({f"accuracy_{a}": "accuracy" for a in params["accuracy"]})
    names["fewshot_accuracy"] = "fewshot"
    if rate_experiments(params):
        names["learned_rates"] = "rates"
    return names


def summary_outputs(experiments) -> dict[str, str | list[str]]:
    """Everything the summarize step writes and the report reads, by name: the Snakemake rules'
    outputs and inputs, and (per directory where a pattern makes one file per experiment) the DVC
    stages' outs and deps."""
    return dict(
        metrics=METRICS,
        jobs=JOBS,
        profiles=PROFILES,
        accuracy=ACCURACY_TABLE,
        fewshot=FEWSHOT_TABLE,
        fewshot_curves=FEWSHOT_CURVES,
        learned_rates=LEARNED_RATES,
        nrmse_definitions=NRMSE_DEFINITIONS,
        tables=[TABLE.format(experiment=e) for e in experiments],
        curves=[CURVES.format(experiment=e) for e in experiments],
    )


def cell_name(cell: dict) -> str:
    """A file-name-safe id of a cell, for logs and benchmarks."""
    return CELL_NAME.format(**cell)

