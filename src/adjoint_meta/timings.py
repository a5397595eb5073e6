"""Where a Snakemake run's time went: every job's `benchmark:` record, totals, and the critical path.

Each rule writes logs/benchmarks/<step>/<job>.tsv (Snakemake's benchmark format:
wall seconds ``s``, ``cpu_time``, ``max_rss`` in MB, ...).  Snakemake samples CPU time
and memory (every 30 s after the first 15 s), so where the job's log ends with its own
accounting (``usage.py``) that is used instead, and the sampled totals are shown beside
it.  The critical path is the
longest chain of dependent jobs (fetch -> make-tasks -> train -> evaluate, or
make-tasks -> profile / accuracy; then summarize -> report): no number of cores
finishes the run faster than it.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from adjoint_meta import config, paths, usage

COLUMNS = ["step", "job", "wall_s", "cpu_s", "max_rss_mb", "sampled_cpu_s", "sampled_rss_mb", "from_log"]


def read_benchmarks(root: str | Path = ".") -> pd.DataFrame:
    """One row per job: step, job, wall_s, cpu_s, max_rss_mb (from the job's log where it has
    them, else Snakemake's samples), Snakemake's sampled figures, and which source was used."""
    rows = []
    for tsv in sorted(Path(root).glob(paths.BENCHMARK.format(step="*", name="*"))):
        frame = pd.read_csv(tsv, sep="\t")
        if frame.empty:
            continue
        last = frame.iloc[-1]
        step, job = tsv.parent.name, tsv.stem
        sampled = (float(last.get("cpu_time", float("nan"))), float(last.get("max_rss", float("nan"))))
        own = usage.read(Path(root) / paths.LOG.format(step=step, name=job))
        cpu, rss = own if own is not None else sampled
        rows.append({"step": step, "job": job, "wall_s": float(last["s"]), "cpu_s": cpu, "max_rss_mb": rss,
                     "sampled_cpu_s": sampled[0], "sampled_rss_mb": sampled[1], "from_log": own is not None})
    return pd.DataFrame(rows, columns=COLUMNS)


def critical_path(params: dict, bench: pd.DataFrame) -> tuple[float, list[str]]:
    """Length (wall seconds) and jobs of the longest dependent chain among the recorded jobs."""
    wall = {(r.step, r.job): r.wall_s for r in bench.itertuples()}
    get = lambda step, name: wall.get((step, name), 0.0)  # noqa: E731

    def data_chain(dataset: str) -> tuple[float, list[str]]:
        source = params["datasets"][dataset]["source"]
        chain = [("make_tasks", dataset)] + ([] if source == "synthetic" else [("fetch", source)])
        return sum(get(*c) for c in chain), [f"{s}:{n}" for s, n in reversed(chain)]

    chains = []
    for _, dataset, steps in _jobs(params):
        t, jobs = data_chain(dataset)
        chains.append((t + sum(get(*s) for s in steps), jobs + [f"{step}:{name}" for step, name in steps]))
    longest, jobs = max(chains, default=(0.0, []))
    tail = get("summarize", "summarize") + get("report", "report")
    return longest + tail, jobs + ["summarize:summarize", "report:report"]


def _jobs(params: dict) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(part of the study, dataset, its dependent (step, job name) chain) of every job the parameters
    name after the data: each cell's training then evaluation, each profile job, each accuracy study."""
    out = [(c.experiment, c.dataset, [("train", n), ("evaluate", n)])
           for c in config.cells(params) for n in [paths.cell_name(c.as_dict())]]
    out += [(f"profile {j['profile']}", j["dataset"], [("profile", paths.PROFILE_NAME.format(**j))])
            for j in config.profile_jobs(params)]
    out += [(f"accuracy {j['name']}", j["dataset"], [("accuracy", j["name"])]) for j in config.accuracy_jobs(params)]
    return out


def parts(params: dict, bench: pd.DataFrame) -> pd.Series:
    """The part of the study each job belongs to: its experiment (training and evaluation),
    ``profile <name>``, ``accuracy <name>``, ``data`` (fetch, make-tasks) or ``report``
    (summarize, report); a job the parameters no longer name keeps its step."""
    owner = {job: part for part, _, steps in _jobs(params) for job in steps}
    by_step = {"fetch": "data", "make_tasks": "data", "summarize": "report", "report": "report"}
    return pd.Series([owner.get((r.step, r.job), by_step.get(r.step, r.step)) for r in bench.itertuples()],
                     index=bench.index, name="part")


def _totals(bench: pd.DataFrame, by) -> pd.DataFrame:
    """Jobs, summed wall and CPU time and the largest peak memory per group, largest first."""
    return bench.groupby(by).agg(jobs=("job", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"),
                                 max_rss_mb=("max_rss_mb", "max")).sort_values("wall_s", ascending=False)


def summary(params: dict, root: str | Path = ".", cores: int = 2) -> str:
    bench = read_benchmarks(root)
    if bench.empty:
        return f"no benchmark records under {Path(root) / 'logs' / 'benchmarks'}: run the pipeline with Snakemake first"
    per_step = _totals(bench, "step")
    per_part = _totals(bench, parts(params, bench))
    per_part[f"min_on_{cores}_cores"] = per_part["wall_s"] / cores / 60  # this part's share of the lower bound
    length, chain = critical_path(params, bench)
    total = bench["wall_s"].sum()
    shown = ["step", "job", "wall_s", "cpu_s", "max_rss_mb"]
    lines = ["# slowest jobs", bench.sort_values("wall_s", ascending=False)[shown].head(15).to_string(index=False),
             "", "# per step", per_step.to_string(), "",
             "# per part of the study (experiment, profile, accuracy study, data, report)",
             per_part.round(2).to_string(), "",
             f"jobs: {len(bench)}; summed wall time {total / 3600:.2f} h; summed CPU time "
             f"{bench['cpu_s'].sum() / 3600:.2f} h; largest peak memory {bench['max_rss_mb'].max():.0f} MB",
             f"CPU time and peak memory from the jobs' own logs for {int(bench['from_log'].sum())} of {len(bench)} "
             f"jobs (Snakemake's samples for the rest); Snakemake's samples alone: "
             f"{bench['sampled_cpu_s'].sum() / 3600:.2f} h "
             f"CPU, largest peak {bench['sampled_rss_mb'].max():.0f} MB",
             f"critical path: {length / 60:.1f} min ({' -> '.join(chain)})",
             f"no run on {cores} cores can finish in less than {max(length, total / cores) / 60:.1f} min "
             "(the longer of the critical path and the summed wall time divided by the cores)"]
    return "\n".join(lines)
