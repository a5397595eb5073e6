"""Bytes autograd keeps per inner step for one MAML meta-gradient, in our code and in what a user of 2022
would have run: `higher`'s innerloop_ctx, and gradients taken with torch.autograd.grad(create_graph=True)
on an nn.Module (the way the authors' released A-MAML code computes its gradients).

The workload of Figures 3-4 (params.yaml profiles.fig34): CosMixture 100shot-100val, MLP 2-32-32-1 tanh,
one meta-batch of 5 tasks drawn as the profile job draws it, inner SGD with alpha = 0.01, float32.  Every
implementation builds the graph of the whole meta-batch (the 5 tasks' query losses summed, one backward
pass), and its gradient is checked against ours.  The figure is ``memory.saved_tensor_bytes``: the
distinct storages autograd saves for the backward pass, counted from the graph, so it is the same on a
CPU and on a GPU; no device memory is measured.  The slope over K is the bytes per inner step, set beside
what the paper's Figure 3 implies (a 24 GB card exhausted near K = 200).

    pip install -r requirements/bench.lock   # higher (pinned): a benchmark-only extra
    python benchmarks/bench_memory_2022.py --steps 10 50 100 200
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_peers import as_module, flat_grad  # noqa: E402

from adjoint_meta import config, make_tasks  # noqa: E402
from adjoint_meta.estimators import InnerProblem, build  # noqa: E402
from adjoint_meta.measure import sample_batch  # noqa: E402
from adjoint_meta.memory import saved_tensor_bytes  # noqa: E402
from adjoint_meta.model import MLP  # noqa: E402
from adjoint_meta.reference import paper  # noqa: E402
from adjoint_meta.seeding import torch_generator  # noqa: E402
from adjoint_meta.tasks import TaskPool  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MB = 2 ** 20
PROFILE = "fig34"


def fig34_problem(dtype=torch.float32) -> tuple[MLP, InnerProblem, torch.Tensor, dict]:
    """The profile's model at its fixed size, its measurement meta-batch and its initial theta."""
    params = config.load(ROOT / "params.yaml")
    prof = params["profiles"][PROFILE]
    ds = prof["dataset"]
    with tempfile.TemporaryDirectory() as d:
        make_tasks.run(config.prune(params, "make-tasks", dataset=ds), ds, f"{d}/tasks.parquet", f"{d}/tasks.json")
        pool = TaskPool.load(f"{d}/tasks.parquet")
    master = int(params["seed"])
    support, query = sample_batch(pool, torch_generator(master, "profile", PROFILE), params, prof["setting"], dtype)
    layers, units = int(prof["fixed"]["layers"]), int(prof["fixed"]["units"])
    model = MLP([pool.input_dim, *[units] * layers, 1], params["datasets"][ds]["activation"])
    theta = model.init(torch_generator(master, "profile", PROFILE, "init", layers, units), dtype)
    return model, InnerProblem(model, support, query), theta, params


def ours(model, problem, theta, K: int, alpha: float):
    est = build("maml", {}, K, alpha)
    return lambda: est(theta, problem).grad.mean(0)


def with_higher(model, problem, theta, K: int, alpha: float):
    import higher

    net = as_module(model, theta)
    inner = torch.optim.SGD(net.parameters(), lr=alpha)
    sx, sy, qx, qy = problem.support.x, problem.support.y, problem.query.x, problem.query.y

    def run():
        net.zero_grad()
        losses = []
        for b in range(problem.n_tasks):  # every task's graph is alive until the one backward pass
            with higher.innerloop_ctx(net, inner, copy_initial_weights=False) as (fnet, diffopt):
                for _ in range(K):
                    diffopt.step(F.mse_loss(fnet(sx[b]).squeeze(-1), sy[b]))
                losses.append(F.mse_loss(fnet(qx[b]).squeeze(-1), qy[b]))
        (torch.stack(losses).sum() / problem.n_tasks).backward()
        return flat_grad(net)
    return run


def with_autograd_grad(model, problem, theta, K: int, alpha: float):
    net = as_module(model, theta)
    names = [n for n, _ in net.named_parameters()]
    sx, sy, qx, qy = problem.support.x, problem.support.y, problem.query.x, problem.query.y

    def run():
        net.zero_grad()
        losses = []
        for b in range(problem.n_tasks):
            fast = list(net.parameters())
            for _ in range(K):
                out = torch.func.functional_call(net, dict(zip(names, fast)), (sx[b],))
                grads = torch.autograd.grad(F.mse_loss(out.squeeze(-1), sy[b]), fast, create_graph=True)
                fast = [p - alpha * g for p, g in zip(fast, grads)]
            out = torch.func.functional_call(net, dict(zip(names, fast)), (qx[b],))
            losses.append(F.mse_loss(out.squeeze(-1), qy[b]))
        (torch.stack(losses).sum() / problem.n_tasks).backward()
        return flat_grad(net)
    return run


METHODS = {"ours: unrolled MAML (task-stacked)": ours,
           "higher.innerloop_ctx (nn.Module)": with_higher,
           "autograd.grad(create_graph=True)": with_autograd_grad}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 50, 100, 200])
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, problem, theta, params = fig34_problem()
    alpha = float(params["inner"]["alpha"])
    fig3 = paper()["claims"]["figure3"]["numbers"]  # a 24 GB GPU exhausted near 200 inner steps
    gb, full_at = float(fig3["gpu_gb"]), float(fig3["maml_full_at"])
    paper_per_step = gb * 2 ** 30 / full_at
    methods = dict(METHODS)
    try:
        import higher  # noqa: F401
    except ImportError:
        print("# higher is not installed (pip install -r requirements/bench.lock): skipped")
        del methods["higher.innerloop_ctx (nn.Module)"]
    print(f"# {PROFILE}: {model.sizes} tanh, {problem.n_tasks} tasks x {problem.support.x.shape[1]} support + "
          f"{problem.query.x.shape[1]} query examples, float32, alpha {alpha:g}; torch {torch.__version__}; "
          "saved = distinct storages autograd saves for backward (device independent)")
    print(f"{'K':>5s} {'implementation':36s} {'saved MB':>10s} {'storages':>9s} {'rel. diff to ours':>18s}")
    saved: dict[str, list[float]] = {m: [] for m in methods}
    for K in args.steps:
        reference = ours(model, problem, theta, K, alpha)()
        for name, make in methods.items():
            grad, nbytes, storages = saved_tensor_bytes(make(model, problem, theta, K, alpha))
            diff = float((grad.detach() - reference).norm() / reference.norm())
            assert diff < 1e-3, f"{name} disagrees with ours at K={K}: {diff:.2e}"
            saved[name].append(nbytes)
            print(f"{K:5d} {name:36s} {nbytes / MB:10.2f} {storages:9d} {diff:18.2e}")
    print(f"# bytes per inner step (least-squares slope over K = {', '.join(map(str, args.steps))}) against the "
          f"{paper_per_step / MB:.1f} MB a step that a {gb:g} GB card full at K = {full_at:g} implies")
    for name, ys in saved.items():
        slope = float(np.polyfit(np.asarray(args.steps, float), np.asarray(ys, float), 1)[0])
        print(f"  {name:36s} {slope / MB:8.3f} MB/step; {gb:g} GB at K ~ {gb * 2 ** 30 / slope:,.0f}; "
              f"the paper's figure is {paper_per_step / slope:,.0f}x this")


if __name__ == "__main__":
    main()
