"""Memory and time of the adjoint paths with and without checkpointing, for K up to 5,000.

Checkpointing keeps every c-th inner state (c = ceil(sqrt(K))) and recomputes each
segment during the backward sweep, so memory grows like sqrt(K) instead of K; the
exact discrete adjoint returns the same gradient, bit for bit.  The 100-40-40-1 tanh
model, 5 tasks of 20 examples, float32, one thread; peak memory measured in-process
(memory.measure_peak), time as the median of interleaved repeats beside plain inner
training.

    python benchmarks/bench_checkpointing.py --steps 100 500 1000 2000 5000
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cf_setup, interleaved_ms, steps_args  # noqa: E402

from adjoint_meta.estimators import build  # noqa: E402
from adjoint_meta.estimators.core import plain_training  # noqa: E402
from adjoint_meta.memory import measure_peak  # noqa: E402

ALPHA = 0.01
CONFIGS = {
    "exact adjoint, all states": ("maml_adjoint", {"store": "states", "keep_every": 1}),
    "exact adjoint, sqrt(K) checkpoints": ("maml_adjoint", {"store": "states", "keep_every": "sqrt"}),
    "A-MAML rk4/heun, all states": ("amaml", dict(forward="rk4", backward="heun", h=None, rtol=1e-5, atol=1e-6,
                                                  reg=0.0, store="states", keep_every=1)),
    "A-MAML rk4/heun, sqrt(K) checkpoints": ("amaml", dict(forward="rk4", backward="heun", h=None, rtol=1e-5,
                                                           atol=1e-6, reg=0.0, store="states", keep_every="sqrt")),
}


def main() -> None:
    args = steps_args(__doc__, [100, 500, 1000, 2000, 5000], 3)
    model, problem, theta = cf_setup()
    print(f"{'K':>5s} {'configuration':38s} {'ms':>9s} {'x plain':>8s} {'peak MB':>9s} {'stored MB':>10s} "
          f"{'rel. diff':>10s}")
    for K in args.steps:
        ests = {name: build(kind, cfg, K, ALPHA) for name, (kind, cfg) in CONFIGS.items()}
        fns = {"plain inner training": lambda: plain_training(problem, theta, K, ALPHA)}
        fns.update({name: (lambda e=e: e(theta, problem)) for name, e in ests.items()})
        ms = interleaved_ms(fns, repeats=args.repeats)
        base = {}
        for name, est in ests.items():
            result, peak, _ = measure_peak(lambda e=est: e(theta, problem), "cpu")
            kind = name.split(",")[0]
            base.setdefault(kind, result.grad)
            diff = float((result.grad - base[kind]).norm() / base[kind].norm())
            print(f"{K:5d} {name:38s} {ms[name]:9.1f} {ms[name] / ms['plain inner training']:8.2f} "
                  f"{(peak or float('nan')) / 2**20:9.1f} {result.stats['stored_bytes'] / 2**20:10.1f} {diff:10.1e}",
                  flush=True)


if __name__ == "__main__":
    main()
