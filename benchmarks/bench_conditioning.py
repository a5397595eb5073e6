"""How well the long-horizon meta-gradient of bench_library.py's problem is conditioned, in float64.

At each K it prints the relative difference of the API's exact adjoint (linearizations kept) from
other exact methods (the package's unrolled MAML, TorchOpt, ``higher``) and from itself after scaling
every entry of theta by 1 + 1e-15 * N(0, 1). Where that perturbation of rounding size moves the
meta-gradient by some amount, two exact methods that round differently disagree by about as much:
it sets the precision that any comparison can reach at that horizon.

    python benchmarks/bench_conditioning.py                  # K = 200, 1,000 and 2,000 (a few minutes)
    python benchmarks/bench_conditioning.py --steps 50 200
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_library import ALPHA, higher_maml, network, rel, sinusoids, torchopt_maml  # noqa: E402

from adjoint_meta.api import MetaLearner, Tasks  # noqa: E402

PERTURBATION = 1e-15  # relative, per entry of theta: a few float64 ulps


def flat(grads) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, nargs="+", default=[200, 1000, 2000])
    args = ap.parse_args()
    torch.set_num_threads(1)
    dtype = torch.float64
    peers = {"torchopt": torchopt_maml, "higher": higher_maml}
    peers = {name: fn for name, fn in peers.items() if importlib.util.find_spec(name)}
    print(f"# bench_library.py's LayerNorm-GELU MLP and tasks, float64, alpha = {ALPHA}, one thread, torch "
          f"{torch.__version__}; relative differences from the API's exact adjoint (linearizations kept)")
    print(f"{'K':>6} {'|g|':>9} {'theta +- 1e-15':>15} {'unrolled maml':>14}"
          + "".join(f" {name:>10}" for name in peers))
    for K in args.steps:
        net, t = network().to(dtype), sinusoids()
        tasks = Tasks(tuple(x.to(dtype) for x in t.support), tuple(x.to(dtype) for x in t.query))
        adjoint = MetaLearner(net, "mse", "maml_adjoint", steps=K, alpha=ALPHA, store="linearizations")
        ref = flat(adjoint.meta_gradient(tasks).grads.values())
        unrolled = flat(MetaLearner(net, "mse", "maml", steps=K, alpha=ALPHA).meta_gradient(tasks).grads.values())
        others = [rel(flat(fn(net, tasks, K)), ref) for fn in peers.values()]
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(1 + PERTURBATION * torch.randn(p.shape, generator=g, dtype=dtype))
        perturbed = flat(adjoint.meta_gradient(tasks).grads.values())
        print(f"{K:>6} {ref.norm():>9.3f} {rel(perturbed, ref):>15.2e} {rel(unrolled, ref):>14.2e}"
              + "".join(f" {d:>10.2e}" for d in others), flush=True)


if __name__ == "__main__":
    main()
