"""Speed and memory of every estimator per meta-update, against plain inner training.

Workload (docs/protocol.md §3): the 100-40-40-1 tanh MLP, 5 tasks of 20 support and 20
query examples (one-hot item inputs), float32, one thread.  For each K it times
plain inner training (K gradient steps, no meta-gradient) and every estimator in
the same process, so the printed ratios compare like with like.

Memory is measured per point, in this process, by adjoint_meta.memory.measure_peak:
the growth of memory in use during one meta-update over what was in use just
before it (CUDA: the allocator's peak; Linux CPU: the RSS high-water mark, reset
before each call after the heap's free pages are returned to the kernel; see that
module for the limits).  For the adjoint paths the bytes of the stored trajectory
are also printed, to show the slope per stored state.

    python benchmarks/bench_estimators.py                    # times, all estimators, K in 10..500
    python benchmarks/bench_estimators.py --memory           # plus peak memory
    python benchmarks/bench_estimators.py --steps 200 --estimators maml_adjoint amaml

The estimators are the meta-learner configurations of params.yaml (benchmarks/common.py), and
``amaml_td``: the paper's A-MAML with torchdiffeq's own dopri5 (the same steps, more bookkeeping).
"""
from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import VARIANTS, cf_problem, interleaved_ms  # noqa: E402

from adjoint_meta.estimators import build  # noqa: E402
from adjoint_meta.estimators.core import plain_training  # noqa: E402
from adjoint_meta.memory import measure_peak  # noqa: E402
from adjoint_meta.runtime import tune_allocator  # noqa: E402

ALPHA = 0.01
BENCH_VARIANTS = dict(VARIANTS, amaml_td=("amaml", dict(VARIANTS["amaml"][1], forward="dopri5_torchdiffeq")))


def estimator(name: str, K: int):
    kind, cfg = BENCH_VARIANTS[name]
    return build(kind, cfg, K, ALPHA, seed=0)


def measure_memory(name: str, K: int, problem, theta, device: str) -> dict:
    """Peak extra memory of one meta-update (or of plain inner training) at K, in-process."""
    if name == "plain":
        fn = lambda: plain_training(problem, theta, K, ALPHA)  # noqa: E731
    else:
        est = estimator(name, K)
        fn = lambda: est(theta, problem)  # noqa: E731
    out, peak, method = measure_peak(fn, device)
    stored = getattr(out, "stats", {}).get("stored_bytes", 0) if name != "plain" else 0
    return {"peak_bytes": peak if peak is not None else float("nan"), "memory_method": method,
            "stored_bytes": int(stored)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 50, 100, 200, 500])
    ap.add_argument("--estimators", nargs="+", default=list(BENCH_VARIANTS), choices=list(BENCH_VARIANTS))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--memory", action="store_true", help="also measure peak memory (slower)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", help="write the figures as CSV")
    args = ap.parse_args()

    torch.set_num_threads(1)
    tuned = tune_allocator()
    sync = torch.cuda.synchronize if args.device == "cuda" else None
    m, problem, theta = cf_problem(device=args.device)
    print(f"# {m.sizes} tanh, {problem.n_tasks} tasks x {problem.support.x.shape[1]} examples, "
          f"P = {m.n_params}, float32, device {args.device}, threads {torch.get_num_threads()}, "
          f"allocator tuned: {tuned}; medians of {args.repeats} interleaved rounds")
    rows = []
    print(f"{'estimator':18s} {'K':>5s} {'ms/update':>10s} {'x plain':>8s} {'peak MB':>9s} {'stored MB':>10s} "
          f"{'NFE':>6s}")
    for K in args.steps:
        ests = {name: estimator(name, K) for name in args.estimators}
        stats = {name: est(theta, problem).stats for name, est in ests.items()}
        fns = {"plain": lambda: plain_training(problem, theta, K, ALPHA)}
        fns.update({name: (lambda e=est: e(theta, problem)) for name, est in ests.items()})
        ms = interleaved_ms(fns, repeats=args.repeats, sync=sync)
        for name in ["plain", *args.estimators]:
            mem = measure_memory(name, K, problem, theta, args.device) if args.memory else {}
            st = stats.get(name, {})
            row = {"estimator": name, "K": K, "ms": ms[name], "ratio": ms[name] / ms["plain"],
                   "nfe": st.get("nfe", ""), "stored_bytes": st.get("stored_bytes", ""), **mem}
            rows.append(row)
            stored = st.get("stored_bytes")
            print(f"{name:18s} {K:5d} {ms[name]:10.2f} {row['ratio']:8.2f} "
                  f"{mem.get('peak_bytes', float('nan')) / 2**20:9.2f} "
                  f"{(stored / 2**20 if stored else float('nan')):10.2f} {str(st.get('nfe', '')):>6s}", flush=True)
    if len(args.steps) > 1:
        vector = problem.n_tasks * m.n_params * theta.element_size()  # one task-stacked parameter vector
        print(f"\n# memory growth per inner step (least-squares slope over K), in task-stacked parameter "
              f"vectors ({problem.n_tasks} x {m.n_params} x {theta.element_size()} bytes = {vector / 1024:.1f} KiB)")
        for name in args.estimators:
            pts = [r for r in rows if r["estimator"] == name]
            for column in ("stored_bytes", "peak_bytes"):
                xy = [(r["K"], float(r[column])) for r in pts if r.get(column) not in ("", None)
                      and math.isfinite(float(r[column])) and float(r[column]) > 0]
                if len(xy) >= 2:
                    slope = statistics.linear_regression(*zip(*xy)).slope
                    print(f"{name:18s} {column:13s} {slope / vector:6.2f} vectors per step")
    if args.out:
        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=sorted({k for r in rows for k in r}))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
