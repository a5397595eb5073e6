"""Profiling: time and peak memory of one estimator's meta-update over a profile's sweeps
(Figures 3-4 and the scaling study).

A profile varies one quantity at a time -- inner steps K, hidden layers, hidden
units -- from its ``fixed`` point.  For every point the job builds the MLP
``[input_dim, units x layers, 1]`` of the dataset's activation, initializes it
from a seeded generator, and runs the estimator on one meta-batch that was
sampled once per job (every point and every estimator of a profile sees the
same tasks).  Per point it records:

* ``ms_median/min/max``: wall time of ``repeats`` meta-updates after one
  warm-up call, timed with ``time.perf_counter`` (CUDA synchronized around each).
  The calls are interleaved with as many calls of *plain inner training* (the K
  gradient steps of ``estimators.core.plain_training``, no meta-gradient), so the
  ``plain_ms`` median and ``ratio = ms_median / plain_ms`` compare runs made side
  by side under the same machine conditions.
* ``peak_bytes``: the growth of memory in use during one more meta-update,
  measured in-process by ``memory.measure_peak`` (``memory_method`` names how:
  CUDA allocator peak, or the Linux RSS high-water mark on CPU).
* ``stored_bytes``: the bytes of the inner trajectory an adjoint estimator keeps
  for its backward sweep at its peak: the kept states (or linearizations) plus the
  largest set of linearizations held at once (a recomputed checkpoint segment, or
  a block of states linearized together); 0 for estimators that keep none;
  unrolled MAML's autograd graph is not a stored trajectory and shows in
  ``peak_bytes`` only.
* ``nfe``: batched inner-gradient evaluations of the forward pass: what the
  estimator reports (A-MAML's ODE solvers), otherwise the K steps of its inner loop.

The helpers ``sample_batch``, ``timed`` and ``write_csv`` are shared with
``adjoint_meta.accuracy``.
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable, TypeVar

import pandas as pd
import torch

from adjoint_meta import config, runtime
from adjoint_meta.estimators import InnerProblem, build
from adjoint_meta.estimators.core import plain_training
from adjoint_meta.io import atomic_path
from adjoint_meta.memory import UNAVAILABLE, measure_peak
from adjoint_meta.model import MLP, Data
from adjoint_meta.seeding import derive_seed, torch_generator
from adjoint_meta.tasks import TaskPool

T = TypeVar("T")

SWEEP_VARIABLES = ("steps", "layers", "units")  # the order rows are written in
COLUMNS = ["profile", "estimator", "kind", "label", "variable", "value", "steps", "layers", "units", "n_params",
           "ms_median", "ms_min", "ms_max", "repeats", "plain_ms", "ratio", "peak_bytes", "memory_method",
           "stored_bytes", "nfe", "device", "dtype", "threads"]


class ProfileError(RuntimeError):
    """A profiling measurement that came out unusable (non-finite or non-positive)."""


# -- helpers shared with the accuracy study ------------------------------------
def sample_batch(pool: TaskPool, gen: torch.Generator, spec: dict, setting: str,
                 dtype: torch.dtype) -> tuple[Data, Data]:
    """Support and query data of one meta-batch (``meta.meta_batch`` tasks of the setting's
    shot + val examples), on the CPU in ``dtype``."""
    st = spec["settings"][setting]
    _, support, query = pool.sample(gen, int(spec["meta"]["meta_batch"]), int(st["shot"]), int(st["val"]), dtype)
    return support, query


def sync_for(device: torch.device) -> Callable[[], None]:
    """What makes a timing honest on ``device``: CUDA synchronization, a no-op elsewhere."""
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def timed(fn: Callable[[], T], device: torch.device) -> tuple[T, float]:
    """(fn(), wall milliseconds of the call), the device synchronized before and after."""
    sync = sync_for(device)
    sync()
    t0 = time.perf_counter()
    result = fn()
    sync()
    return result, (time.perf_counter() - t0) * 1e3


def write_csv(frame: pd.DataFrame, out_csv: str) -> None:
    """Write ``frame`` to ``out_csv`` atomically (no partial file if the job dies)."""
    with atomic_path(out_csv) as tmp:
        frame.to_csv(tmp, index=False)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


# -- profiling -----------------------------------------------------------------
def sweep_points(prof: dict) -> list[tuple[str, int, dict[str, int]]]:
    """(variable, value, {steps, layers, units}) of every point, one variable varied at a time."""
    unknown = set(prof["sweep"]) - set(SWEEP_VARIABLES)
    if unknown:
        raise ValueError(f"profile sweep over {sorted(unknown)}; allowed variables: {', '.join(SWEEP_VARIABLES)}")
    points = []
    for var in SWEEP_VARIABLES:
        for value in prof["sweep"].get(var) or []:
            at = {k: int(prof["fixed"][k]) for k in SWEEP_VARIABLES}
            at[var] = int(value)
            points.append((var, int(value), at))
    return points


def time_interleaved(fns: dict[str, Callable[[], Any]], repeats: int,
                     device: torch.device) -> dict[str, list[float]]:
    """Milliseconds of ``repeats`` calls of each function after one warm-up call each, in
    interleaved rounds, so that drifts of the machine's speed hit every candidate alike."""
    for fn in fns.values():
        timed(fn, device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(timed(fn, device)[1])
    return times


def _check_finite(row: dict, keys: list[str], where: str, positive: bool = False) -> None:
    """Raise ProfileError unless every ``row[key]`` is a finite number >= 0 (> 0 with ``positive``)."""
    def ok(v: Any) -> bool:
        return isinstance(v, (int, float)) and math.isfinite(v) and (v > 0 if positive else v >= 0)
    bad = [k for k in keys if not ok(row[k])]
    if bad:
        raise ProfileError(f"{where}: unusable measurement(s) {', '.join(f'{k}={row[k]!r}' for k in bad)}")


def profile_point(model: MLP, theta: torch.Tensor, problem: InnerProblem, kind: str, est_cfg: dict,
                  steps: int, alpha: float, seed: int, repeats: int, device: torch.device) -> dict:
    """Time and memory of one estimator at one model size and K (see the module docstring)."""
    K = config.inner_steps(kind, steps)
    est = build(kind, est_cfg, K, alpha, seed)
    # the reference is plain inner training of the swept K, also for estimators that run fewer steps (MAML-1)
    plain = lambda: plain_training(problem, theta, steps, alpha)  # noqa: E731
    times = time_interleaved({"est": lambda: est(theta, problem), "plain": plain}, repeats, device)
    mg, peak, method = measure_peak(lambda: est(theta, problem), device)
    ms, plain_ms = statistics.median(times["est"]), statistics.median(times["plain"])
    return {
        "n_params": model.n_params, "ms_median": ms, "ms_min": min(times["est"]), "ms_max": max(times["est"]),
        "repeats": repeats, "plain_ms": plain_ms, "ratio": ms / plain_ms if plain_ms > 0 else math.nan,
        "peak_bytes": peak, "memory_method": method,
        "stored_bytes": int(mg.stats.get("stored_bytes", 0)), "nfe": int(mg.stats.get("nfe", K)),
        "label": est_cfg.get("label") or est.label,
    }


def run(spec: dict, profile: str, estimator: str, tasks_path: str, out_csv: str,
        log_file: str | None = None) -> pd.DataFrame:
    """Profile ``estimator`` over every sweep point of ``profiles.<profile>``; write and return the rows."""
    log = runtime.logger("profile", log_file)
    device, dtype = runtime.setup(spec["runtime"])
    prof = spec["profiles"][profile]
    ds_cfg = spec["datasets"][prof["dataset"]]
    est_cfg = spec["estimators"][estimator]
    kind, alpha, master = est_cfg["kind"], float(spec["inner"]["alpha"]), int(spec["seed"])
    repeats = int(prof["repeats"])
    cap = float(prof["memory_cap_gb"]) * 2**30

    pool = TaskPool.load(tasks_path)
    support, query = sample_batch(pool, torch_generator(master, "profile", profile), spec, prof["setting"], dtype)
    support, query = support.to(device, dtype), query.to(device, dtype)
    seed = derive_seed(master, "estimator", "profile", profile, estimator)
    points = sweep_points(prof)
    log.info("profile %s | %s (%s) on %s %s | %d point(s) | %d repeat(s) | device %s %s", profile, estimator, kind,
             prof["dataset"], prof["setting"], len(points), repeats, runtime.describe_device(device),
             dtype_name(dtype))

    rows = []
    for i, (var, value, at) in enumerate(points, 1):
        model = MLP([pool.input_dim, *[at["units"]] * at["layers"], 1], ds_cfg["activation"])
        gen = torch_generator(master, "profile", profile, "init", at["layers"], at["units"])
        theta = model.init(gen, dtype).to(device)
        problem = InnerProblem(model, support, query)
        row = {"profile": profile, "estimator": estimator, "kind": kind, "variable": var, "value": value, **at}
        row.update(profile_point(model, theta, problem, kind, est_cfg, at["steps"], alpha, seed, repeats, device))
        row.update(device=runtime.describe_device(device), dtype=dtype_name(dtype), threads=torch.get_num_threads())
        where = f"profile {profile}, {estimator}, {var}={value}"
        _check_finite(row, ["ms_median", "ms_min", "ms_max", "plain_ms", "ratio"], where, positive=True)
        _check_finite(row, ["stored_bytes", "nfe"], where)
        if row["memory_method"] != UNAVAILABLE:
            _check_finite(row, ["peak_bytes"], where)
        peak = row["peak_bytes"]
        log.info("point %d/%d  %s=%d  (K=%d layers=%d units=%d, P=%d)  %.3f ms (x%.2f plain)  peak %s MB  "
                 "stored %.3f MB", i, len(points), var, value, at["steps"], at["layers"], at["units"],
                 row["n_params"], row["ms_median"], row["ratio"], "n/a" if peak is None else f"{peak / 2**20:.3f}",
                 row["stored_bytes"] / 2**20)
        if peak is not None and peak > cap:
            log.warning("%s: peak %.2f GB exceeds profiles.%s.memory_cap_gb (%g)", where, peak / 2**30, profile,
                        prof["memory_cap_gb"])
        rows.append(row)

    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["peak_bytes"] = frame["peak_bytes"].astype("Int64")
    write_csv(frame, out_csv)
    log.info("wrote %d row(s) to %s", len(frame), out_csv)
    return frame
