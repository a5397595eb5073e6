"""Time and memory of learning the inner step sizes, beside plain inner training in one run.

For each K: plain inner training (the floor); the exact adjoint with a fixed alpha; the same
sweep also giving dJ/dalpha for 1 (scalar), L (per layer) and P (per parameter) learned rates
(reverse); forward mode for a scalar and per-layer alpha (tangents carried along the inner loop,
nothing kept); one generation of selection ES (16 particles).  On the torch.func backend (the same
network): its plain inner training and forward mode for a scalar alpha with the tangents carried by
``jvp`` of ``grad`` (what the backend does) and, for comparison, by one linearization's
double-backward products.  Printed: median milliseconds of
interleaved repeats, the ratio to plain inner training (of the same backend) and to the fixed-alpha adjoint, the
process's peak memory above its baseline (``memory.measure_peak``, RSS high-water mark on Linux)
and the bytes the backward sweep keeps (``stored_bytes``).  The 100-40-40-1 tanh model, 5 tasks x
20 one-hot examples, float32, one thread.  Targets (docs/learned_rates.md): reverse with per-layer
alpha at most 1.1x the fixed-alpha adjoint; forward mode for a scalar alpha at most 3x plain
training, its memory flat in K.

    python benchmarks/bench_rates.py --steps 50 200 800
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cf_setup, interleaved_ms, steps_args  # noqa: E402

from adjoint_meta import backends  # noqa: E402
from adjoint_meta.estimators import InnerProblem, build  # noqa: E402
from adjoint_meta.estimators.core import plain_training  # noqa: E402
from adjoint_meta.interface import linearized_grad_and_hvps  # noqa: E402
from adjoint_meta.memory import measure_peak  # noqa: E402
from adjoint_meta.rates import Layout, SelectionEs, forward_rate_grad  # noqa: E402

ALPHA = 0.01
REVERSE = {"reverse, fixed alpha": None, "reverse, scalar alpha": "scalar", "reverse, per-layer alpha": "layer",
           "reverse, per-parameter alpha": "parameter"}
FORWARD = {"forward, scalar alpha": "scalar", "forward, per-layer alpha": "layer"}


def main() -> None:
    args = steps_args(__doc__, [50, 200, 800], 5)
    model, problem, theta = cf_setup()
    func = backends.build(model.sizes[0], model.sizes[1:-1], "tanh", "torch_func")
    func_problem = InnerProblem(func, problem.support, problem.query)
    linearized = backends.build(model.sizes[0], model.sizes[1:-1], "tanh", "torch_func")
    linearized.grad_and_hvps = lambda u, vs, data: linearized_grad_and_hvps(linearized, u, vs, data)
    linearized_problem = InnerProblem(linearized, problem.support, problem.query)
    scalar = Layout.of("scalar", model)
    print(f"{'K':>5s} {'path':30s} {'ms':>9s} {'x plain':>8s} {'x fixed':>8s} {'peak MB':>8s} {'kept MB':>8s}")
    for K in args.steps:
        fns = {"plain inner training": lambda: plain_training(problem, theta, K, ALPHA)}
        runs = {}
        for name, learn in REVERSE.items():
            est = build("maml_adjoint", {"learn_rate": learn}, K, ALPHA)
            phi = est.meta_init(theta, model)
            runs[name] = fns[name] = lambda e=est, p=phi: e(p, problem)
        for name, learn in FORWARD.items():
            layout = Layout.of(learn, model)
            log_alpha = layout.initial(ALPHA, theta)
            fns[name] = lambda lo=layout, la=log_alpha: _inference(forward_rate_grad, problem, theta, K, lo, la)
        fns["torch.func: plain inner training"] = lambda: plain_training(func_problem, theta, K, ALPHA)
        for name, prob in {"torch.func: forward, jvp": func_problem,
                           "torch.func: forward, double bw": linearized_problem}.items():
            fns[name] = lambda p=prob: _inference(forward_rate_grad, p, theta, K, scalar, scalar.initial(ALPHA, theta))
        es = SelectionEs(ALPHA, 0.25 * ALPHA, 16, 4)
        gen = torch.Generator().manual_seed(0)
        fns["selection ES, 16 particles"] = lambda: _inference(es.step, problem, theta, K, gen)
        ms = interleaved_ms(fns, repeats=args.repeats)
        plain, fixed = ms["plain inner training"], ms["reverse, fixed alpha"]
        for name, t in ms.items():
            result, peak, _ = measure_peak(fns[name], "cpu")
            kept = result.stats["stored_bytes"] / 2**20 if name in runs else 0.0
            own_plain = ms["torch.func: plain inner training"] if name.startswith("torch.func") else plain
            print(f"{K:5d} {name:30s} {t:9.1f} {t / own_plain:8.2f} {t / fixed:8.2f} "
                  f"{(peak or float('nan')) / 2**20:8.1f} {kept:8.1f}", flush=True)


def _inference(fn, *args):
    with torch.inference_mode():
        return fn(*args)


if __name__ == "__main__":
    main()
