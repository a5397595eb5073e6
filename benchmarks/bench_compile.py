"""Does torch.compile pay on this CPU?  Times the batched gradient and Hessian-vector product of
the model eagerly and compiled (inductor), and the one-time compile cost, side by side.

The pipeline does not compile: on the 2-core CPU this project was measured on, compiling each
primitive took tens of seconds per distinct shape for a speed-up of well under 2x, which a
training job of a few thousand meta-steps does not recover (see the closing figures printed here).

    python benchmarks/bench_compile.py
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adjoint_meta.estimators.core import stack  # noqa: E402
from adjoint_meta.model import MLP, Data  # noqa: E402
from adjoint_meta.runtime import tune_allocator  # noqa: E402


def bench(fn, repeats: int = 7, inner: int = 100) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner * 1e3)
    return statistics.median(times)


def main() -> None:
    torch.set_num_threads(1)
    tune_allocator()
    for sizes, n in (([2, 32, 32, 1], 100), ([100, 40, 40, 1], 20)):
        model, B = MLP(sizes), 5
        data = Data(torch.randn(B, n, sizes[0]), torch.randn(B, n), torch.full((B, n), 1.0 / n))
        u = stack(model.init(torch.Generator().manual_seed(0)), B)
        v = torch.randn_like(u)

        def grad(u, x, y, w):
            return model.grad(u, Data(x, y, w))

        def hvp(u, v, x, y, w):
            return model.hvp(u, v, Data(x, y, w))

        for name, fn, args in (("grad", grad, (u, data.x, data.y, data.w)),
                               ("hvp", hvp, (u, v, data.x, data.y, data.w))):
            eager = bench(lambda: fn(*args))
            t0 = time.perf_counter()
            compiled = torch.compile(fn, dynamic=False)
            compiled(*args)
            compile_s = time.perf_counter() - t0
            fast = bench(lambda: compiled(*args))
            calls = compile_s / max((eager - fast) / 1e3, 1e-9)
            print(f"{str(sizes):16s} N={n:3d} {name:4s}: eager {eager:.3f} ms, compiled {fast:.3f} ms "
                  f"(x{eager / fast:.2f}), compile {compile_s:.0f} s, pays back after {calls:,.0f} calls", flush=True)


if __name__ == "__main__":
    main()
