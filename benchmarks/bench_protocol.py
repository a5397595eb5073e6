"""How long would the training and evaluation jobs of a parameter file take?  Runs each
training configuration of the file (experiment x dataset x setting x estimator, first seed)
for a few meta-steps through the pipeline's own ``train`` step (same code, same thread count,
same tasks) and projects it to its configured number of meta-steps from the median time per
meta-step after a warm-up; every seed of ``meta.seeds`` costs the same.  Then times the
pipeline's ``evaluate`` step once per experiment x dataset x setting on one of the short-trained
initializations: its fine-tuning steps and the released test protocol do not depend on the
estimator, so one job stands for all of them (docs/performance.md).

Prints, per job and per experiment, milliseconds per meta-step, projected hours of training
and of evaluation, then the total, the total divided by the cores (a lower bound on wall time
with that many jobs side by side) and the longest single job (a lower bound whatever the
cores).  A projection from the first meta-steps: where the cost of a meta-step changes as
theta trains (A-MAML's adaptive forward solve), it can miss either way; docs/performance.md,
sets it beside the jobs of a protocol run as ``adjoint-meta timings`` measured them.
Few-shot, ProtoNet, profiling and accuracy jobs are not included: time them with
``adjoint-meta timings`` after a run.  Needs the task files (``snakemake --cores all --until
make_tasks``).

    python benchmarks/bench_protocol.py                      # params.yaml, 30 meta-steps a job
    python benchmarks/bench_protocol.py --steps 60 --cores 2 --only table1 fig2_100shot
    python benchmarks/bench_protocol.py --params tests/params.test.yaml --out cost.csv
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from adjoint_meta import config, evaluate, paths, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default=config.DEFAULT_PARAMS)
    ap.add_argument("--steps", type=int, default=30, help="meta-steps timed per job (the first 5 are warm-up)")
    ap.add_argument("--cores", type=int, default=2, help="jobs run side by side, for the wall-time bound")
    ap.add_argument("--only", nargs="+", help="experiments to time (default: all)")
    ap.add_argument("--no-evaluate", action="store_true", help="time the training jobs only")
    ap.add_argument("--out", help="write one row per training configuration as CSV")
    args = ap.parse_args()
    if args.steps < 10:
        ap.error("--steps must be at least 10")

    params = config.load(args.params)
    seeds = params["meta"]["seeds"]
    unknown = [e for e in args.only or [] if e not in params["experiments"]]
    if unknown:
        ap.error(f"--only: no experiment {', '.join(unknown)} in {args.params}; "
                 f"allowed values: {', '.join(params['experiments'])}")
    cells = [c for c in config.cells(params) if c.seed == seeds[0] and (not args.only or c.experiment in args.only)]
    missing = sorted({paths.TASKS.format(dataset=c.dataset) for c in cells
                      if not Path(paths.TASKS.format(dataset=c.dataset)).exists()})
    if missing:
        sys.exit(f"task files missing: {', '.join(missing)}; run `snakemake --cores all --until make_tasks` first")

    setting_of = lambda c: (c.experiment, c.dataset, c.setting)  # noqa: E731
    evaluations = Counter(map(setting_of, cells))  # evaluation jobs per setting and seed
    rows, train_h, eval_h = [], defaultdict(float), defaultdict(float)
    evaluated: dict[tuple, float] = {}  # (experiment, dataset, setting) -> seconds of one evaluate job
    print(f"# {args.params} (preset {params.get('preset')}), {len(cells)} training configurations x "
          f"{len(seeds)} seeds, {args.steps} meta-steps timed each, threads {params['runtime']['threads']}")
    print(f"{'job (every seed)':72s} {'ms/step':>9s} {'steps':>6s} {'train h':>8s} {'eval s':>7s}")
    with tempfile.TemporaryDirectory() as tmp:
        for c in cells:
            cell = c.as_dict()
            spec = config.job_slice(params, "train", **cell)
            target = int(spec["meta"]["meta_epochs"])
            spec["meta"]["meta_epochs"] = args.steps
            spec["runtime"].update(checkpoint_every=0, log_every=10 ** 9)
            out = Path(tmp) / paths.cell_name(cell)
            tasks = paths.TASKS.format(dataset=c.dataset)
            train.run(spec, cell, tasks, f"{out}.pt", f"{out}.csv")
            with open(f"{out}.csv") as fh:
                seconds = [float(r["seconds"]) for r in csv.DictReader(fh)]
            if not seconds:  # no outer updates (random_init): the job is its start-up
                target = 0
            ms = 1e3 * statistics.median(b - a for a, b in zip(seconds[4:], seconds[5:])) if seconds else 0.0
            hours = ms * target / 3.6e6
            key = setting_of(c)
            if key not in evaluated and not args.no_evaluate:
                start = time.perf_counter()
                evaluate.run(config.job_slice(params, "evaluate", **cell), cell, f"{out}.pt", tasks,
                             f"{out}.json", f"{out}.eval.csv")
                evaluated[key] = time.perf_counter() - start
                eval_h[c.experiment] += evaluated[key] * evaluations[key] * len(seeds) / 3600
            train_h[c.experiment] += hours * len(seeds)
            rows.append({**cell, "ms_per_step": round(ms, 3), "meta_steps": target, "hours": round(hours, 4),
                         "eval_seconds": round(evaluated.get(key, float("nan")), 2)})
            print(f"{paths.cell_name(cell):72s} {ms:9.2f} {target:6d} {hours:8.3f} "
                  f"{evaluated.get(key, float('nan')):7.1f}", flush=True)
    total = sum(train_h.values()) + sum(eval_h.values())
    longest = max(rows, key=lambda r: r["hours"])
    print(f"\n# projected hours on one core, every seed ({len(seeds)}): training, evaluation")
    for exp in train_h:
        print(f"{exp:24s} {train_h[exp]:7.2f} {eval_h[exp]:7.2f}")
    print(f"{'total':24s} {sum(train_h.values()):7.2f} {sum(eval_h.values()):7.2f}  ({total:.2f} h, "
          f"{len(rows) * len(seeds)} training jobs{'' if args.no_evaluate else ' and as many evaluations'})")
    print(f"lower bounds on wall time: total / {args.cores} cores = {total / args.cores:.2f} h; "
          f"longest training job {longest['hours']:.2f} h ({paths.cell_name(longest)})")
    if args.out:
        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
