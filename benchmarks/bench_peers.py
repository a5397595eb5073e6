"""Exact MAML meta-gradients side by side with what users would otherwise pick: `higher` and TorchOpt.

The same 100-40-40-1 tanh network, the same theta, the same 5 tasks of 20 support
and 20 query examples, K inner SGD steps with alpha = 0.01, float32, one thread.
The peers run their documented MAML loops (one task at a time, an nn.Module whose
inner steps are differentiated by autograd); ours are the exact discrete adjoint
(`maml_adjoint`, both storage modes) and unrolled autograd on task-stacked
parameters (`maml`).  Every gradient is checked against ours before timing.

    pip install -r requirements/bench.lock   # higher, torchopt (pinned): benchmark-only extras
    python benchmarks/bench_peers.py --steps 50 200
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cf_problem, interleaved_ms  # noqa: E402

from adjoint_meta.estimators import build  # noqa: E402
from adjoint_meta.estimators.core import plain_training  # noqa: E402
from adjoint_meta.runtime import tune_allocator  # noqa: E402

ALPHA = 0.01


def as_module(model, theta: torch.Tensor) -> torch.nn.Sequential:
    """The same network as an nn.Module holding theta (nn.Linear stores W transposed)."""
    layers = []
    for l, (W, b) in enumerate(model.unflatten(theta.unsqueeze(0))):
        lin = torch.nn.Linear(W.shape[1], W.shape[2])
        with torch.no_grad():
            lin.weight.copy_(W[0].T)
            lin.bias.copy_(b[0])
        layers.append(lin)
        if l < len(model.layers) - 1:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def flat_grad(net: torch.nn.Sequential) -> torch.Tensor:
    parts = []
    for m in net:
        if isinstance(m, torch.nn.Linear):
            parts += [m.weight.grad.T.reshape(-1), m.bias.grad.reshape(-1)]
    return torch.cat(parts)


def higher_maml(net, problem, K: int) -> torch.Tensor:
    import higher

    net.zero_grad()
    inner = torch.optim.SGD(net.parameters(), lr=ALPHA)
    sx, sy, qx, qy = problem.support.x, problem.support.y, problem.query.x, problem.query.y
    for b in range(problem.n_tasks):
        with higher.innerloop_ctx(net, inner, copy_initial_weights=False) as (fnet, diffopt):
            for _ in range(K):
                diffopt.step(F.mse_loss(fnet(sx[b]).squeeze(-1), sy[b]))
            (F.mse_loss(fnet(qx[b]).squeeze(-1), qy[b]) / problem.n_tasks).backward()
    return flat_grad(net)


def torchopt_maml(net, problem, K: int) -> torch.Tensor:
    import torchopt

    net.zero_grad()
    inner = torchopt.MetaSGD(net, lr=ALPHA)
    sx, sy, qx, qy = problem.support.x, problem.support.y, problem.query.x, problem.query.y
    for b in range(problem.n_tasks):
        net_state, opt_state = torchopt.extract_state_dict(net), torchopt.extract_state_dict(inner)
        for _ in range(K):
            inner.step(F.mse_loss(net(sx[b]).squeeze(-1), sy[b]))
        (F.mse_loss(net(qx[b]).squeeze(-1), qy[b]) / problem.n_tasks).backward()
        torchopt.recover_state_dict(net, net_state)
        torchopt.recover_state_dict(inner, opt_state)
    return flat_grad(net)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tune_allocator()
    model, problem, theta = cf_problem()
    peers = {}
    for name, fn in (("higher", higher_maml), ("torchopt", torchopt_maml)):
        try:
            __import__(name)
            peers[name] = fn
        except ImportError:
            print(f"# {name} is not installed (pip install -r requirements/bench.lock): skipped")
    print(f"# {model.sizes} tanh, {problem.n_tasks} tasks x {problem.support.x.shape[1]} examples, float32, "
          f"1 thread; medians of {args.repeats} interleaved rounds; gradients checked against ours first")
    print(f"{'K':>5s} {'method':28s} {'ms':>9s} {'rel. diff to ours':>18s}")
    for K in args.steps:
        ours = {
            "ours: exact adjoint (lin.)": build("maml_adjoint", {"store": "linearizations"}, K, ALPHA),
            "ours: exact adjoint (states)": build("maml_adjoint", {"store": "states"}, K, ALPHA),
            "ours: unrolled autograd": build("maml", {}, K, ALPHA),
        }
        reference = ours["ours: exact adjoint (lin.)"](theta, problem).grad.mean(0)
        fns = {"plain inner training": lambda: plain_training(problem, theta, K, ALPHA)}
        diffs = {}
        for name, est in ours.items():
            diffs[name] = float((est(theta, problem).grad.mean(0) - reference).norm() / reference.norm())
            fns[name] = lambda e=est: e(theta, problem)
        for name, fn in peers.items():
            net = as_module(model, theta)
            diffs[name] = float((fn(net, problem, K) - reference).norm() / reference.norm())
            assert diffs[name] < 1e-3, f"{name} disagrees with ours at K={K}: {diffs[name]:.2e}"
            fns[name] = lambda f=fn, n=net: f(n, problem, K)
        ms = interleaved_ms(fns, repeats=args.repeats)
        for name, t in ms.items():
            print(f"{K:5d} {name:28s} {t:9.1f} {diffs.get(name, float('nan')):18.2e}")
        if peers:
            best_peer = min(ms[p] for p in peers)
            fastest = min(ms[n] for n in ours)
            print(f"{K:5d} speed-up of our fastest exact gradient over the faster peer: {best_peer / fastest:.1f}x")


if __name__ == "__main__":
    main()
