"""Speed and memory of every estimator per meta-update, against plain inner training.

Workload (PROTOCOL §2): the 100-40-40-1 tanh MLP, 5 tasks of 20 support and 20
query examples (one-hot item inputs), float32, one thread.  For each K it times
plain inner training (K gradient steps, no meta-gradient) and every estimator in
the same process, so the printed ratios compare like with like.

Memory is measured honestly per point: on CPU each (estimator, K) runs in a
fresh process and reports the growth of its peak resident set size (ru_maxrss)
over a warmed-up baseline; on CUDA, torch.cuda.max_memory_allocated.  For the
adjoint paths the bytes of the stored trajectory are also printed, to show the
slope per stored state.

    python benchmarks/bench_estimators.py                    # times, all estimators, K in 10..500
    python benchmarks/bench_estimators.py --memory           # plus peak memory (fresh process per point)
    python benchmarks/bench_estimators.py --steps 200 --estimators maml_adjoint amaml_paper
"""
from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import VARIANTS, cf_problem, interleaved_ms  # noqa: E402

from adjoint_meta.estimators import build  # noqa: E402
from adjoint_meta.estimators.core import descend, stack  # noqa: E402
from adjoint_meta.runtime import tune_allocator  # noqa: E402

ALPHA = 0.01
BENCH_VARIANTS = dict(VARIANTS)
BENCH_VARIANTS["maml_adjoint_lin"] = ("maml_adjoint", {"store": "linearizations"})
BENCH_VARIANTS["tbptt"] = ("tbptt", dict(window=10, store="states"))


def estimator(name: str, K: int):
    est, cfg = BENCH_VARIANTS[name]
    return build(est, {"store": "states", **cfg} if est in ("maml_adjoint", "amaml") else cfg, K, ALPHA, seed=0)


def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure_memory(name: str, K: int, device: str) -> dict:
    """Peak extra memory of one meta-update at K (run in a fresh process on CPU)."""
    torch.set_num_threads(1)
    tune_allocator()
    m, problem, theta = cf_problem(device=device)
    if name == "plain":
        run = lambda k: descend(problem, stack(theta, problem.n_tasks), k, ALPHA)  # noqa: E731
    else:
        run = lambda k: estimator(name, k)(theta, problem)  # noqa: E731
    run(1)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = run(K)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        base = _peak_kb()
        out = run(K)
        peak = (_peak_kb() - base) * 1024
    stored = getattr(out, "stats", {}).get("stored_bytes", 0) if name != "plain" else 0
    return {"peak_bytes": int(peak), "stored_bytes": int(stored)}


def memory_point(name: str, K: int, device: str) -> dict:
    if device == "cuda":
        return measure_memory(name, K, device)
    proc = subprocess.run([sys.executable, __file__, "--memory-point", name, str(K), "--device", device],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 50, 100, 200, 500])
    ap.add_argument("--estimators", nargs="+", default=list(BENCH_VARIANTS), choices=list(BENCH_VARIANTS))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--memory", action="store_true", help="also measure peak memory (slower)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", help="write the figures as CSV")
    ap.add_argument("--memory-point", nargs=2, metavar=("NAME", "K"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_point:
        print(json.dumps(measure_memory(args.memory_point[0], int(args.memory_point[1]), args.device)))
        return

    torch.set_num_threads(1)
    tuned = tune_allocator()
    sync = torch.cuda.synchronize if args.device == "cuda" else None
    m, problem, theta = cf_problem(device=args.device)
    print(f"# {m.sizes} tanh, {problem.n_tasks} tasks x {problem.support.x.shape[1]} examples, "
          f"P = {m.n_params}, float32, device {args.device}, threads {torch.get_num_threads()}, "
          f"allocator tuned: {tuned}; medians of {args.repeats} interleaved rounds")
    rows = []
    print(f"{'estimator':18s} {'K':>5s} {'ms/update':>10s} {'x plain':>8s} {'peak MB':>9s} {'stored MB':>10s} {'NFE':>6s}")
    for K in args.steps:
        ests = {name: estimator(name, K) for name in args.estimators}
        stats = {name: est(theta, problem).stats for name, est in ests.items()}
        fns = {"plain": lambda: descend(problem, stack(theta, problem.n_tasks), K, ALPHA)}
        fns.update({name: (lambda e=est: e(theta, problem)) for name, est in ests.items()})
        ms = interleaved_ms(fns, repeats=args.repeats, sync=sync)
        for name in ["plain", *args.estimators]:
            mem = memory_point(name, K, args.device) if args.memory else {}
            st = stats.get(name, {})
            row = {"estimator": name, "K": K, "ms": ms[name], "ratio": ms[name] / ms["plain"],
                   "nfe": st.get("nfe", ""), "stored_bytes": st.get("stored_bytes", ""), **mem}
            rows.append(row)
            stored = st.get("stored_bytes")
            print(f"{name:18s} {K:5d} {ms[name]:10.2f} {row['ratio']:8.2f} "
                  f"{mem.get('peak_bytes', float('nan')) / 2**20:9.2f} "
                  f"{(stored / 2**20 if stored else float('nan')):10.2f} {str(st.get('nfe', '')):>6s}", flush=True)
    if args.out:
        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=sorted({k for r in rows for k in r}))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
