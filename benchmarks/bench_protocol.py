"""How long would the meta-training of a parameter file take?  Runs every training job of
the file for a few meta-steps through the pipeline's own ``train`` step (same code, same
thread count, same tasks) and projects each to its configured number of meta-steps from
the median time per meta-step after a warm-up.

Prints, per job and per experiment, milliseconds per meta-step and projected hours, then
the total, the total divided by the cores (a lower bound on wall time with that many jobs
side by side) and the longest single job (a lower bound whatever the cores).  Evaluation,
profiling and accuracy jobs are not included: time them with ``adjoint-meta timings``
after a run.  Needs the task files (``snakemake --cores all --until make_tasks``).

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
from collections import defaultdict
from pathlib import Path

from adjoint_meta import config, paths, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default=config.DEFAULT_PARAMS)
    ap.add_argument("--steps", type=int, default=30, help="meta-steps timed per job (the first 5 are warm-up)")
    ap.add_argument("--cores", type=int, default=2, help="jobs run side by side, for the wall-time bound")
    ap.add_argument("--only", nargs="+", help="experiments to time (default: all)")
    ap.add_argument("--out", help="write one row per job as CSV")
    args = ap.parse_args()
    if args.steps < 10:
        ap.error("--steps must be at least 10")

    params = config.load(args.params)
    cells = [c for c in config.cells(params) if not args.only or c.experiment in args.only]
    missing = sorted({paths.TASKS.format(dataset=c.dataset) for c in cells
                      if not Path(paths.TASKS.format(dataset=c.dataset)).exists()})
    if missing:
        sys.exit(f"task files missing: {', '.join(missing)}; run `snakemake --cores all --until make_tasks` first")

    rows, per_exp = [], defaultdict(float)
    print(f"# {args.params} (preset {params.get('preset')}), {len(cells)} training jobs, "
          f"{args.steps} meta-steps timed each, threads {params['runtime']['threads']}")
    print(f"{'job':72s} {'ms/step':>9s} {'steps':>6s} {'hours':>7s}")
    with tempfile.TemporaryDirectory() as tmp:
        for c in cells:
            cell = c.as_dict()
            spec = config.prune(params, "train", **cell)
            target = int(spec["meta"]["meta_epochs"])
            spec["meta"]["meta_epochs"] = args.steps
            spec["runtime"].update(checkpoint_every=0, log_every=10 ** 9)
            out = Path(tmp) / paths.cell_name(cell)
            train.run(spec, cell, paths.TASKS.format(dataset=c.dataset), f"{out}.pt", f"{out}.csv")
            with open(f"{out}.csv") as fh:
                seconds = [float(r["seconds"]) for r in csv.DictReader(fh)]
            ms = 1e3 * statistics.median(b - a for a, b in zip(seconds[4:], seconds[5:]))
            hours = ms * target / 3.6e6
            per_exp[c.experiment] += hours
            rows.append({**cell, "ms_per_step": round(ms, 3), "meta_steps": target, "hours": round(hours, 4)})
            print(f"{paths.cell_name(cell):72s} {ms:9.2f} {target:6d} {hours:7.3f}", flush=True)
    total = sum(r["hours"] for r in rows)
    longest = max(rows, key=lambda r: r["hours"])
    print("\n# projected meta-training time per experiment (hours, one core)")
    for exp, h in per_exp.items():
        print(f"{exp:24s} {h:7.2f}")
    print(f"{'total':24s} {total:7.2f}")
    print(f"lower bounds on wall time: total / {args.cores} cores = {total / args.cores:.2f} h; "
          f"longest job {longest['hours']:.2f} h ({paths.cell_name(longest)})")
    if args.out:
        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
