"""Does torch.compile pay on this CPU?  The switch ``runtime.compile`` (off by default) runs the
model's gradient pass, linearization and Hessian-vector product through ``MLP.compile_passes``;
this times both ways side by side, per pass and per meta-update of the estimators that dominate the protocol,
with the one-time compile cost of a training job and the meta-steps it takes to recover it.

Workloads: Figure 2's 100shot-100val (2-32-32-1, K = 500) and Table 1's 10shot-15val
(100-40-40-1, K = 50), 5 tasks, float32, one thread.

    python benchmarks/bench_compile.py
    python benchmarks/bench_compile.py --updates 20 --estimators amaml fomaml
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import VARIANTS, interleaved_ms  # noqa: E402

from adjoint_meta.estimators import InnerProblem, build  # noqa: E402
from adjoint_meta.estimators.core import stack  # noqa: E402
from adjoint_meta.interface import Data  # noqa: E402
from adjoint_meta.model import MLP  # noqa: E402
from adjoint_meta.runtime import tune_allocator  # noqa: E402

WORKLOADS = {  # name: (sizes, support, query, K, one-hot inputs)
    "fig2_100shot": ([2, 32, 32, 1], 100, 100, 500, False),
    "table1_10shot": ([100, 40, 40, 1], 10, 15, 50, True),
}
PROTOCOL_META_STEPS = 5000


def data(sizes, n, onehot, g) -> Data:
    B = 5
    items = torch.randint(0, sizes[0], (B, n), generator=g) if onehot else None
    x = (torch.nn.functional.one_hot(items, sizes[0]).float() if onehot
         else torch.rand(B, n, sizes[0], generator=g) * 2 - 1)
    return Data(x, torch.randn(B, n, generator=g), torch.full((B, n), 1.0 / n), items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--estimators", nargs="+", default=["amaml", "maml_adjoint", "fomaml", "imaml"],
                    choices=list(VARIANTS))
    ap.add_argument("--updates", type=int, default=7, help="timed meta-updates per estimator (median)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tune_allocator()
    print(f"# torch {torch.__version__}, one thread; medians of interleaved rounds; compile = the first "
          f"compiled call(s) of a fresh model, i.e. what a training job pays once")
    for wname, (sizes, shot, val, K, onehot) in WORKLOADS.items():
        g = torch.Generator().manual_seed(0)
        support, query = data(sizes, shot, onehot, g), data(sizes, val, onehot, g)
        eager, compiled = MLP(sizes), MLP(sizes)
        u = stack(eager.init(g), 5)
        v = torch.randn_like(u)
        with torch.inference_mode():  # as the estimators run them
            t0 = time.perf_counter()
            compiled.compile_passes()
            lin_c = compiled.linearize(u, support)
            compiled.linearize(u, support, with_grad=False)
            compiled.hvp_at(lin_c, v, support)
            compiled.grad(u, support)
            pass_compile_s = time.perf_counter() - t0
            lin_e = eager.linearize(u, support)
            ms = interleaved_ms({
                "grad eager": lambda: eager.grad(u, support), "grad compiled": lambda: compiled.grad(u, support),
                "linearize eager": lambda: eager.linearize(u, support, with_grad=False),
                "linearize compiled": lambda: compiled.linearize(u, support, with_grad=False),
                "hvp eager": lambda: eager.hvp_at(lin_e, v, support),
                "hvp compiled": lambda: compiled.hvp_at(lin_c, v, support),
            }, repeats=7, warmup=3)
        print(f"\n## {wname}: {sizes}, 5 tasks x {shot} support / {val} query, K = {K}")
        print("passes: " + "; ".join(
            f"{p} {ms[p + ' eager'] * 1e3:.0f} -> {ms[p + ' compiled'] * 1e3:.0f} us "
            f"(x{ms[p + ' eager'] / ms[p + ' compiled']:.2f})" for p in ("grad", "linearize", "hvp"))
            + f"; first compile {pass_compile_s:.1f} s")
        print(f"{'estimator':16s} {'eager ms':>9s} {'compiled ms':>12s} {'speed-up':>9s} {'compile s':>10s} "
              f"{'pays after':>11s} {'saved/job s':>12s}")
        for name in args.estimators:
            kind, cfg = VARIANTS[name]
            est = build(kind, cfg, K if kind != "maml" else max(1, K // 10), 0.01, seed=0)
            theta = eager.init(torch.Generator().manual_seed(1))
            fresh = MLP(sizes).compile_passes()  # a new job: its compile cost counted from zero
            p_e, p_c = InnerProblem(eager, support, query), InnerProblem(fresh, support, query)
            t0 = time.perf_counter()
            est(theta, p_c)
            est(theta, p_c)  # the second call meets shapes the first did not (e.g. a block remainder)
            compile_s = time.perf_counter() - t0
            t = interleaved_ms({"e": lambda: est(theta, p_e), "c": lambda: est(theta, p_c)},
                               repeats=args.updates, warmup=1)
            gain_s = (t["e"] - t["c"]) / 1e3
            pays = f"{compile_s / gain_s:,.0f}" if gain_s > 0 else "never"
            print(f"{name:16s} {t['e']:9.2f} {t['c']:12.2f} {t['e'] / t['c']:8.2f}x {compile_s:10.1f} "
                  f"{pays:>11s} {gain_s * PROTOCOL_META_STEPS - compile_s:12.0f}", flush=True)
    print(f"\n'pays after': meta-steps until the compile time is recovered; 'saved/job': over the "
          f"protocol's {PROTOCOL_META_STEPS} meta-steps, net of compiling (compiled kernels are cached on disk "
          f"by inductor, so later jobs of the same shapes compile faster than this fresh process did)")


if __name__ == "__main__":
    main()
