"""The two model backends side by side with what a user would otherwise run, in one process.

Identical data and theta for every row: the 100-40-40-1 tanh MLP on 5 tasks of 20 one-hot support
and 20 query examples (the collaborative-filtering workload), float32, one thread, K inner steps.

* ``hand``: the hand-derived task-stacked MLP (``model.MLP``);
* ``func``: the same network through torch.func (``backends.build(..., "torch_func")``), its
  Hessian-vector products by double backward (the default); ``func (jvp)`` the same with products
  by ``jvp`` of ``grad`` (``FuncModel(hvp="jvp")``);
* ``cnn``: the few-shot experiment's CNN (``fewshot.cnn``, 16 filters) through torch.func, 5 tasks of
  25 8x8 images, 5 classes, cross-entropy;
* ``higher``, ``torchopt``: their MAML loops (benchmarks/bench_peers.py), one task at a time;
* ``mixflow``: unrolled MAML in the style of mixed-mode meta-gradients: autograd over K custom
  steps, each of which saves only its input u_k and computes its backward as a forward-over-reverse
  product (``jvp`` of ``grad``) recomputed from u_k.

For each it prints the median ms per meta-update (interleaved rounds), the ratio to plain inner
training of the same backend, and the bytes kept for the backward pass: autograd's saved tensors
(``memory.saved_tensor_bytes``) for the autograd paths, the stored trajectory for the adjoint; on
CUDA also the peak of ``torch.cuda.max_memory_allocated`` over one call, above what was allocated
before it.  Every meta-gradient is checked against the hand-derived exact adjoint first.

    pip install -r requirements/bench.lock   # higher, torchopt (pinned)
    python benchmarks/bench_backends.py --steps 200                 # CUDA when there is a GPU
    python benchmarks/bench_backends.py --steps 200 --device cpu
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_peers import as_module, higher_maml, torchopt_maml  # noqa: E402
from common import cf_problem, interleaved_ms  # noqa: E402

from adjoint_meta import backends  # noqa: E402
from adjoint_meta.estimators import InnerProblem, build  # noqa: E402
from adjoint_meta.estimators.core import plain_training, stack  # noqa: E402
from adjoint_meta.fewshot import cnn  # noqa: E402
from adjoint_meta.fewshot.digits import SHAPE  # noqa: E402
from adjoint_meta.funcmodel import FuncModel, cross_entropy  # noqa: E402
from adjoint_meta.interface import Data  # noqa: E402
from adjoint_meta.memory import saved_tensor_bytes  # noqa: E402
from adjoint_meta.runtime import tune_allocator  # noqa: E402

ALPHA = 0.01
MB = 2 ** 20


def cnn_problem(device: str, tasks: int = 5, examples: int = 25, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    model = FuncModel(cnn.classifier(16, 5), cross_entropy, SHAPE)

    def data():
        return Data(torch.rand(tasks, examples, *SHAPE, generator=g), torch.randint(0, 5, (tasks, examples),
                    generator=g).float(), torch.full((tasks, examples), 1.0 / examples)).to(device, torch.float32)

    theta = model.init(g, torch.float32).to(device)
    return model.to(device), InnerProblem(model, data(), data()), theta


def mixflow_maml(model: FuncModel, problem: InnerProblem, theta: torch.Tensor, K: int,
                 kept: list | None = None) -> torch.Tensor:
    """dJ/dtheta by autograd over K steps that each keep only their input (MixFlow-style); the bytes
    each step saves are appended to ``kept`` (saved-tensor hooks cannot watch torch.func.grad)."""
    support = problem.support

    class Step(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u):
            ctx.save_for_backward(u)
            if kept is not None:
                kept.append(u.untyped_storage().nbytes())
            return u - ALPHA * model.grad(u, support)

        @staticmethod
        def backward(ctx, lam):
            (u,) = ctx.saved_tensors
            return lam - ALPHA * model.hvp(u, lam, support)

    with torch.enable_grad():
        u0 = stack(theta.detach(), problem.n_tasks).requires_grad_(True)
        u = u0
        for _ in range(K):
            u = Step.apply(u)
        (grad,) = torch.autograd.grad(model.loss(u, problem.query).sum(), u0)
    return grad


def peak_bytes(fn, device: str) -> int | None:
    """CUDA: the most memory allocated during one call of ``fn`` above what was allocated before it."""
    if device != "cuda":
        return None
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def passes(hand, func: FuncModel, jfunc: FuncModel, problem: InnerProblem, theta: torch.Tensor, repeats: int,
           sync) -> dict[str, float]:
    """ms of one gradient and one Hessian-vector product of the 5 tasks on each backend, the product
    both ways on the torch.func one."""
    support = problem.support
    u = stack(theta, problem.n_tasks) + 0.01
    v = torch.randn(u.shape, generator=torch.Generator().manual_seed(1)).to(u.device)
    torch.testing.assert_close(func.hvp(u, v, support), jfunc.hvp(u, v, support), rtol=1e-4, atol=1e-6)
    return interleaved_ms({"hand: gradient": lambda: hand.grad(u, support),
                           "hand: product": lambda: hand.hvp(u, v, support),
                           "func: gradient": lambda: func.grad(u, support),
                           "func: product (double backward)": lambda: func.hvp(u, v, support),
                           "func: product (jvp of grad)": lambda: jfunc.hvp(u, v, support)},
                          repeats=6 * repeats, sync=sync)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, nargs="+", default=[200])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tune_allocator()
    device = args.device
    sync = torch.cuda.synchronize if device == "cuda" else None
    hand, problem, theta = cf_problem(device=device)
    func = backends.build(hand.sizes[0], hand.sizes[1:-1], "tanh", "torch_func").to(device)
    fproblem = InnerProblem(func, problem.support, problem.query)
    jfunc = FuncModel(func.module, func.loss_fn, func.input_shape, hvp="jvp")
    jproblem = InnerProblem(jfunc, problem.support, problem.query)
    cnn, cproblem, ctheta = cnn_problem(device)
    peers = [p for p in ("higher", "torchopt") if __import__("importlib").util.find_spec(p)]
    print(f"# {hand.sizes} tanh and a small CNN ({cnn.n_params} parameters), {problem.n_tasks} tasks x "
          f"{problem.support.x.shape[1]} examples, float32, 1 thread, device {device}, torch {torch.__version__}, "
          f"torch.func products by {func.hvp_method} (func) and {jfunc.hvp_method} (func (jvp)); medians of "
          f"{args.repeats} interleaved rounds"
          + ("" if len(peers) == 2 else "; not installed: " + ", ".join({"higher", "torchopt"} - set(peers))))
    for K in args.steps:
        adj = build("maml_adjoint", {}, K, ALPHA)
        fast = build("maml_adjoint", {"store": "linearizations"}, K, ALPHA)  # maml_adjoint_fast in params.yaml
        maml = build("maml", {}, K, ALPHA)
        runs = {
            "hand: plain training": lambda: plain_training(problem, theta, K, ALPHA),
            "hand: exact adjoint": lambda: adj(theta, problem),
            "hand: exact adjoint, lin.": lambda: fast(theta, problem),
            "hand: unrolled MAML": lambda: maml(theta, problem),
            "func: plain training": lambda: plain_training(fproblem, theta, K, ALPHA),
            "func: exact adjoint": lambda: adj(theta, fproblem),
            "func: exact adjoint, lin.": lambda: fast(theta, fproblem),
            "func (jvp): exact adjoint": lambda: adj(theta, jproblem),
            "func: unrolled MAML": lambda: maml(theta, fproblem),
            "func: MixFlow-style MAML": lambda: mixflow_maml(jfunc, jproblem, theta, K),
            "cnn: plain training": lambda: plain_training(cproblem, ctheta, K, ALPHA),
            "cnn: exact adjoint": lambda: adj(ctheta, cproblem),
            "cnn: exact adjoint, lin.": lambda: fast(ctheta, cproblem),
        }
        nets = {p: as_module(hand, theta).to(device) for p in peers}
        for p, fn in (("higher", higher_maml), ("torchopt", torchopt_maml)):
            if p in peers:
                runs[p] = lambda f=fn, n=nets[p]: f(n, problem, K)
        reference = adj(theta, problem).grad
        checks = {"func: exact adjoint": adj(theta, fproblem).grad, "func: exact adjoint, lin.": fast(theta,
                                                                                                      fproblem).grad,
                  "hand: exact adjoint, lin.": fast(theta, problem).grad, "func: unrolled MAML": maml(theta,
                                                                                                      fproblem).grad,
                  "hand: unrolled MAML": maml(theta, problem).grad,
                  "func (jvp): exact adjoint": adj(theta, jproblem).grad,
                  "func: MixFlow-style MAML": mixflow_maml(jfunc, jproblem, theta, K)}
        diffs = {k: rel(v, reference) for k, v in checks.items()}
        diffs.update({p: rel(runs[p]() * problem.n_tasks, reference.sum(0)) for p in peers})
        bad = {k: d for k, d in diffs.items() if d > 1e-3}
        assert not bad, f"meta-gradients disagree with the hand-derived exact adjoint at K={K}: {bad}"
        cnn_check = rel(adj(ctheta, cproblem).grad, maml(ctheta, cproblem).grad)
        memory = {name: saved_tensor_bytes(runs[name])[1] for name in ("hand: unrolled MAML", "func: unrolled MAML",
                                                                       *peers)}
        kept: list[int] = []
        mixflow_maml(jfunc, jproblem, theta, K, kept)
        memory["func: MixFlow-style MAML"] = sum(kept)
        memory["hand: exact adjoint"] = adj(theta, problem).stats["stored_bytes"]
        memory["func: exact adjoint"] = adj(theta, fproblem).stats["stored_bytes"]
        memory["func (jvp): exact adjoint"] = adj(theta, jproblem).stats["stored_bytes"]
        memory["cnn: exact adjoint"] = adj(ctheta, cproblem).stats["stored_bytes"]
        for name, (prob, th) in {"hand": (problem, theta), "func": (fproblem, theta), "cnn": (cproblem,
                                                                                              ctheta)}.items():
            memory[f"{name}: exact adjoint, lin."] = fast(th, prob).stats["stored_bytes"]
        peaks = {name: peak_bytes(fn, device) for name, fn in runs.items()}
        ms = interleaved_ms(runs, repeats=args.repeats, sync=sync)
        floor = {"hand": ms["hand: plain training"], "func": ms["func: plain training"],
                 "cnn": ms["cnn: plain training"]}
        floor["func (jvp)"] = floor["func"]  # the same forward and gradient; only the products differ
        print(f"\nK = {K}  (CNN exact adjoint vs unrolled MAML: {cnn_check:.1e} relative)")
        print(f"{'method':28s} {'ms':>9s} {'x plain (same backend)':>23s} {'kept MB':>9s} {'peak MB':>9s} "
              f"{'rel. diff':>10s}")
        for name, t in ms.items():
            backend = name.split(":")[0]
            ratio = f"{t / floor[backend]:.2f}" if backend in floor else "-"
            kept = f"{memory[name] / MB:.2f}" if name in memory else "-"
            peak = f"{peaks[name] / MB:.2f}" if peaks[name] is not None else "-"
            print(f"{name:28s} {t:9.1f} {ratio:>23s} {kept:>9s} {peak:>9s} {diffs.get(name, float('nan')):10.1e}")
        others = {n: ms[n] for n in (*peers, "func: MixFlow-style MAML")}
        best = min(others, key=others.get)
        for name in ("func: exact adjoint", "func: exact adjoint, lin."):
            print(f"{name}: {ms[name] / floor['func']:.2f}x func plain training (target <= 3); the fastest of "
                  f"{', '.join(others)} ({best}) takes {others[best] / ms[name]:.2f}x its time (target >= 2)")
        print(f"hand-derived lead on the MLP: plain {floor['func'] / floor['hand']:.2f}x, exact adjoint "
              f"{ms['func: exact adjoint'] / ms['hand: exact adjoint']:.2f}x, with linearizations kept "
              f"{ms['func: exact adjoint, lin.'] / ms['hand: exact adjoint, lin.']:.2f}x")
    print("\none pass, 5 tasks x 20 examples:")
    for name, t in passes(hand, func, jfunc, problem, theta, args.repeats, sync).items():
        print(f"{name:34s} {t:8.3f} ms")


if __name__ == "__main__":
    main()
