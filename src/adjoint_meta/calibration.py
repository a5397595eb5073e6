"""How often the verdicts' interval decides when it should not, and how often it finds a true difference:
simulated [seeds, tasks] differences d = μ + seed effect + task effect + interaction (docs/statistics.md,
tests/test_verdicts.py).  Beside it, the percentile bootstrap that resamples seeds and tasks, crossed (one
draw of tasks shared by the drawn seeds) or nested (fresh tasks for every drawn seed).

    python -m adjoint_meta.calibration [--replicates N] [--seed S]

prints the false-decision rate in each regime and the detection rate of a difference of 0.2, 0.5 and 1
task-SD (the standard deviation of the per-task differences within one seed).
"""
from __future__ import annotations

import argparse

import numpy as np

from adjoint_meta import verdicts as v

SEEDS, TASKS = 3, 100
REGIMES = {  # standard deviations of (seed effect, task effect, seed × task interaction)
    "seed-dominated": (1.0, 1.0, 1.0),
    "moderate seed effect": (0.2, 1.0, 1.0),
    "no seed effect": (0.0, 1.0, 1.0),
    "interaction only": (0.0, 0.0, 1.0),
}
EFFECTS = (0.2, 0.5, 1.0)  # true differences, in task-SDs, whose detection rate docs/statistics.md states


def simulate(rng: np.random.Generator, sds: tuple[float, float, float], n: int, seeds: int = SEEDS,
             tasks: int = TASKS, mean: float = 0.0) -> np.ndarray:
    """``n`` arrays [seeds, tasks] of differences with the given mean and component standard deviations."""
    seed_sd, task_sd, res_sd = sds
    return (mean + seed_sd * rng.standard_normal((n, seeds, 1)) + task_sd * rng.standard_normal((n, 1, tasks))
            + res_sd * rng.standard_normal((n, seeds, tasks)))


def task_sd(sds: tuple[float, float, float]) -> float:
    """The standard deviation of the per-task differences within one seed: the unit of the power statement."""
    return float(np.hypot(sds[1], sds[2]))


def decided(d: np.ndarray, level: float = v.LEVEL) -> np.ndarray:
    """Whether the verdicts' interval of each array [seeds, tasks] excludes zero."""
    mean, seed_var, task_var, df = v.crossed(d)
    return np.abs(mean) > v.half_width(np.sqrt(seed_var + task_var), df, level)


def bootstrap_decided(d: np.ndarray, rng: np.random.Generator, replicates: int = 1000, nested: bool = False,
                      level: float = v.LEVEL) -> np.ndarray:
    """Whether the percentile bootstrap interval of each array [seeds, tasks] excludes zero.  Each replicate
    draws the seeds with replacement, then the tasks with replacement: once for all drawn seeds (crossed), or
    afresh for each drawn seed (``nested``); the same draws serve every array."""
    n, seeds, tasks = d.shape
    means = np.empty((n, replicates))
    for r in range(replicates):
        drawn = rng.integers(0, seeds, seeds)
        counts = rng.multinomial(tasks, np.full(tasks, 1 / tasks), size=1 if not nested else seeds)
        counts = np.broadcast_to(counts, (seeds, tasks))
        means[:, r] = np.einsum("njt,jt->n", d[:, drawn, :], counts) / (seeds * tasks)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail], axis=1)
    return (lo > 0) | (hi < 0)


def false_decisions(rng: np.random.Generator, replicates: int) -> dict[str, float]:
    """Regime -> share of null arrays (μ = 0) the verdicts' interval decides."""
    return {name: float(decided(simulate(rng, sds, replicates)).mean()) for name, sds in REGIMES.items()}


def power(rng: np.random.Generator, replicates: int) -> dict[str, dict[float, float]]:
    """Regime -> {difference in task-SDs: share of arrays with that true mean the interval decides}."""
    return {name: {e: float(decided(simulate(rng, sds, replicates, mean=e * task_sd(sds))).mean()) for e in EFFECTS}
            for name, sds in REGIMES.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=20000, help="simulated comparisons per regime")
    parser.add_argument("--bootstrap-replicates", type=int, default=2000, help="comparisons for the bootstrap")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"{SEEDS} seeds x {TASKS} tasks, nominal {1 - v.LEVEL:.0%}; false-decision rate under the null")
    print(f"{'regime':24s} {'interval':>9s} {'bootstrap, crossed':>19s}")
    nulls = false_decisions(rng, args.replicates)
    for name, sds in REGIMES.items():
        boot = bootstrap_decided(simulate(rng, sds, args.bootstrap_replicates), rng).mean()
        print(f"{name:24s} {nulls[name]:9.2%} {boot:19.1%}")
    print(f"detection rate of a true difference (in task-SDs), {args.replicates} comparisons each")
    print(f"{'regime':24s}" + "".join(f"{e:>9g}" for e in EFFECTS))
    for name, rates in power(rng, args.replicates).items():
        print(f"{name:24s}" + "".join(f"{rates[e]:9.1%}" for e in EFFECTS))


if __name__ == "__main__":
    main()
