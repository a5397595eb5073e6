"""Profiling: time and peak memory of every estimator's meta-update over a profile's sweeps
(Figures 3-4 and the scaling study), each point timed against one plain-training floor.

A profile varies one quantity at a time -- inner steps K, hidden layers, hidden
units -- from its ``fixed`` point.  One job measures every estimator of a profile.
For every point the job builds the MLP ``[input_dim, units x layers, 1]`` of the
dataset's activation, initializes it from a seeded generator, and runs each
estimator on one meta-batch that was sampled once per job (every point and every
estimator of a profile sees the same tasks).  A point that appears in several
sweeps (the fixed point) is measured once and written in each.  Per point and
estimator it records:

* ``ms_median/min/max``: wall time of ``repeats`` meta-updates, timed with
  ``time.perf_counter`` (CUDA synchronized around each), in interleaved rounds
  (``time_interleaved``): a round calls *plain inner training* (the K gradient
  steps of ``estimators.core.plain_training``, no meta-gradient) right before each
  estimator, so the floor and every estimator are measured side by side under the
  same machine conditions.  Warm-up rule: the first ``WARMUP_ROUNDS`` = 2 rounds
  (``warmup_rounds``) are not timed, so the floor and every estimator have run at
  least twice at the point's size before their first timed call (the first call
  pays for allocator growth and lazily built kernels and caches).
* ``plain_ms``: the floor, the median of its ``plain_repeats`` = (estimators x
  repeats) timed calls, one value per (model, K) shared by every estimator of the
  profile; ``ratio = ms_median / plain_ms``.
* ``below_floor``: the ratio is below 1 although the estimator does at least the
  floor's work (the function ``below_floor``): a timing artefact, which the report
  flags instead of quoting it.
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
  estimator reports (A-MAML's ODE solvers), otherwise the K steps of its inner loop;
  ``hvp``: the Hessian-vector products of its backward sweep or linear solve.
* ``saved_bytes``: for an estimator that differentiates with autograd (unrolled
  MAML, MAML-1), the bytes of the tensors autograd saves for the backward pass
  during one more meta-update (``memory.saved_tensor_bytes``: distinct storages,
  counted from the graph, so the same on every device); 0 for the others, which
  build no graph (their kept trajectory is ``stored_bytes``).
* ``theta_meta_steps``: the meta-updates theta was trained for before the
  measurement: 0 for the sweeps, which measure at the seeded initial theta.

With ``trained`` in the profile (``{meta_steps, estimator, optimizer, lr, steps,
estimators}``), the job then trains theta itself, at the fixed model and K, for
``meta_steps`` meta-updates of ``estimator`` with the outer optimizer ``optimizer``
(learning rate ``lr``) on meta-batches of the profile's training tasks, by the outer
loop of every training job (``outer_loop.meta_train``), and
measures ``estimators`` again at that theta for every K of ``steps``, on the same
measurement batch: rows with ``variable`` = ``steps_trained`` (``TRAINED``) and
``theta_meta_steps`` = ``meta_steps``.  The job therefore depends on no file of
another job (a training cell's model); A-MAML's ``nfe`` at the two thetas are its
dopri5 evaluations there.

The meta-batch and the timing of one call are ``adjoint_meta.measure``'s, shared with the
accuracy study.
"""
from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pandas as pd
import torch

from adjoint_meta import backends, config, runtime
from adjoint_meta.estimators import InnerProblem, build
from adjoint_meta.estimators.core import plain_training
from adjoint_meta.interface import Data, TaskModel
from adjoint_meta.io import write_csv
from adjoint_meta.measure import sample_batch, timed
from adjoint_meta.memory import UNAVAILABLE, measure_peak, saved_tensor_bytes
from adjoint_meta.outer_loop import meta_train
from adjoint_meta.seeding import derive_seed, torch_generator
from adjoint_meta.tasks import TaskPool

SWEEP_VARIABLES = ("steps", "layers", "units")  # the order rows are written in
TRAINED = "steps_trained"  # the variable of the rows measured at the trained theta (after the sweeps)
COLUMNS = ["profile", "estimator", "kind", "label", "variable", "value", "theta_meta_steps", "steps", "layers",
           "units", "n_params",
           "ms_median", "ms_min", "ms_max", "repeats", "warmup_rounds", "plain_ms", "plain_repeats", "ratio",
           "below_floor",
           "peak_bytes", "memory_method", "stored_bytes", "saved_bytes", "nfe", "hvp", "device", "dtype", "threads"]
WARMUP_ROUNDS = 2  # untimed interleaved rounds before the timed ones (see the module docstring)


class ProfileError(RuntimeError):
    """A profiling measurement that came out unusable (non-finite or non-positive)."""


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


def time_interleaved(floor: Callable[[], Any], fns: dict[str, Callable[[], Any]], repeats: int,
                     device: torch.device) -> tuple[list[float], dict[str, list[float]]]:
    """Milliseconds of ``floor`` and of ``repeats`` calls of each function, in interleaved rounds
    that call the floor right before each function, so that a drift of the machine's speed hits
    the floor and every candidate alike; the floor is timed ``len(fns)`` times a round.  The
    first ``WARMUP_ROUNDS`` rounds are the same calls, untimed."""
    floor_ms: list[float] = []
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(WARMUP_ROUNDS + repeats):
        for k, fn in fns.items():
            plain, est = timed(floor, device)[1], timed(fn, device)[1]
            if r >= WARMUP_ROUNDS:
                floor_ms.append(plain)
                times[k].append(est)
    return floor_ms, times


def below_floor(frame: pd.DataFrame) -> pd.Series:
    """Rows whose time cannot be a result: the estimator made at least K inner-gradient evaluations
    and Hessian-vector products (``nfe + hvp``), each at least the work of one plain inner step on
    the same tasks (an evaluation is one such step, on more tasks for ES; a product at a stored
    linearization is a forward and a backward R-pass), so it cannot be faster than the K plain
    steps of its floor, and yet its ratio to the floor is below 1.  MAML-1, which takes one step,
    is below the floor of K > 1 legitimately."""
    return (frame["nfe"] + frame["hvp"] >= frame["steps"]) & (frame["ratio"] < 1.0)


def _check_finite(row: dict, keys: list[str], where: str, positive: bool = False) -> None:
    """Raise ProfileError unless every ``row[key]`` is a finite number >= 0 (> 0 with ``positive``)."""
    def ok(v: Any) -> bool:
        return isinstance(v, (int, float)) and math.isfinite(v) and (v > 0 if positive else v >= 0)
    bad = [k for k in keys if not ok(row[k])]
    if bad:
        raise ProfileError(f"{where}: unusable measurement(s) {', '.join(f'{k}={row[k]!r}' for k in bad)}")


def profile_point(problem: InnerProblem, theta: torch.Tensor, configs: dict[str, dict], seeds: dict[str, int],
                  steps: int, alpha: float, repeats: int, device: torch.device) -> tuple[dict, list[dict]]:
    """Time and memory of every estimator of ``configs`` at one model size and K, against one floor
    (see the module docstring): the floor's figures and one dict per estimator."""
    ests = {name: build(cfg["kind"], cfg, config.inner_steps(cfg["kind"], steps), alpha, seeds[name])
            for name, cfg in configs.items()}
    phis = {name: est.meta_init(theta, problem.model) for name, est in ests.items()}  # with learned step sizes
    # the floor is plain inner training of the swept K, also for estimators that run fewer steps (MAML-1)
    plain, times = time_interleaved(lambda: plain_training(problem, theta, steps, alpha),
                                    {name: (lambda e=est, p=phis[name]: e(p, problem)) for name, est in ests.items()},
                                    repeats, device)
    floor = {"plain_ms": statistics.median(plain), "plain_repeats": len(plain)}
    out = []
    for name, est in ests.items():
        mg, peak, method = measure_peak(partial(est, phis[name], problem), device)
        saved = saved_tensor_bytes(partial(est, phis[name], problem))[1] if est.uses_autograd else 0
        ms = statistics.median(times[name])
        out.append({"estimator": name, "kind": configs[name]["kind"], "label": configs[name].get("label") or est.label,
                    "ms_median": ms, "ms_min": min(times[name]), "ms_max": max(times[name]), "repeats": repeats,
                    "warmup_rounds": WARMUP_ROUNDS,
                    **floor, "ratio": ms / floor["plain_ms"] if floor["plain_ms"] > 0 else math.nan,
                    "peak_bytes": peak, "memory_method": method,
                    "stored_bytes": int(mg.stats.get("stored_bytes", 0)), "saved_bytes": int(saved),
                    "nfe": int(mg.stats.get("nfe", est.steps)),
                    "hvp": int(mg.stats.get("hvp", 0))})
        del mg  # before the next estimator's memory is measured
    return floor, out


def run(spec: dict, profile: str, tasks_path: str, out_csv: str, log_file: str | None = None) -> pd.DataFrame:
    """Profile every estimator of ``profiles.<profile>`` over every sweep point; write and return the rows."""
    log = runtime.logger("profile", log_file)
    device, dtype = runtime.setup(spec["runtime"])
    config.refuse_baselines(spec, "profiles", profile)
    prof = spec["profiles"][profile]
    ds_cfg = spec["datasets"][prof["dataset"]]
    configs = {name: spec["estimators"][name] for name in prof["estimators"]}
    alpha, master = float(spec["inner"]["alpha"]), int(spec["seed"])
    repeats = int(prof["repeats"])

    pool = TaskPool.load(tasks_path)
    support, query = sample_batch(pool, torch_generator(master, "profile", profile), spec, prof["setting"], dtype)
    support, query = support.to(device, dtype), query.to(device, dtype)
    seeds = {name: derive_seed(master, "estimator", "profile", profile, name) for name in configs}
    points = sweep_points(prof)
    log.info("profile %s | %s on %s %s | %d point(s) | %d repeat(s), %d warm-up round(s) | device %s %s", profile,
             ", ".join(configs), prof["dataset"], prof["setting"], len(points), repeats, WARMUP_ROUNDS,
             runtime.describe_device(device), runtime.dtype_name(dtype))

    measured: dict[tuple[int, int, int], tuple[int, list[dict]]] = {}  # (K, layers, units) -> (point, rows)
    rows = []
    for i, (var, value, at) in enumerate(points, 1):
        key = (at["steps"], at["layers"], at["units"])
        head = f"point {i}/{len(points)}  {var}={value}  (K={key[0]} layers={key[1]} units={key[2]}"
        if key in measured:
            log.info("%s): the model and K of point %d, measured there", head, measured[key][0])
        else:
            model = backends.of_dataset(ds_cfg, pool.input_dim, [at["units"]] * at["layers"])
            gen = torch_generator(master, "profile", profile, "init", at["layers"], at["units"])
            theta = model.init(gen, dtype).to(device)
            floor, ests = profile_point(InnerProblem(model, support, query), theta, configs, seeds, at["steps"],
                                        alpha, repeats, device)
            log.info("%s, P=%d)  plain inner training %.3f ms (median of %d calls)", head, model.n_params,
                     floor["plain_ms"], floor["plain_repeats"])
            for r in ests:
                r.update(n_params=model.n_params, device=runtime.describe_device(device),
                         dtype=runtime.dtype_name(dtype), threads=torch.get_num_threads())
                _check_point(r, f"profile {profile}, {r['estimator']}, {var}={value}", profile, prof, log)
            measured[key] = (i, ests)
        rows += [{"profile": profile, "variable": var, "value": value, "theta_meta_steps": 0, **at, **r}
                 for r in measured[key][1]]
    if prof.get("trained"):
        rows += _trained_rows(spec, profile, prof, pool, ds_cfg, (support, query), seeds, alpha, repeats, device,
                              dtype, log)

    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["peak_bytes"] = frame["peak_bytes"].astype("Int64")
    frame["below_floor"] = below_floor(frame)
    for r in frame[frame["below_floor"]].itertuples():
        log.warning("profile %s, %s, %s=%d: x%.3f plain inner training although it runs at least K=%d steps: "
                    "flagged as a timing artefact", profile, r.estimator, r.variable, r.value, r.ratio, r.steps)
    write_csv(frame, out_csv)
    log.info("wrote %d row(s) to %s", len(frame), out_csv)
    return frame


def train_theta(spec: dict, profile: str, prof: dict, pool: TaskPool, model: TaskModel, theta: torch.Tensor,
                device: torch.device, dtype: torch.dtype, log: logging.Logger) -> torch.Tensor:
    """A copy of theta after ``trained.meta_steps`` meta-updates of ``trained.estimator`` at the profile's fixed
    K by the training jobs' outer loop (``outer_loop.meta_train``, without checkpoints), on meta-batches of the
    profile's setting drawn from the training tasks by a generator of their own (the measurement batch is not
    among the draws' purposes); the outer optimizer and its learning rate are the profile's
    (``trained.optimizer``, ``trained.lr``)."""
    tr, master = prof["trained"], int(spec["seed"])
    name = tr["estimator"]
    cfg = spec["estimators"][name]
    steps = config.inner_steps(cfg["kind"], int(prof["fixed"]["steps"]))
    est = build(cfg["kind"], cfg, steps, float(spec["inner"]["alpha"]),
                derive_seed(master, "estimator", "profile", profile, "train", name))
    gen = torch_generator(master, "profile", profile, "train")
    st, batch = spec["settings"][prof["setting"]], int(spec["meta"]["meta_batch"])
    sample = lambda: pool.sample(gen, batch, int(st["shot"]), int(st["val"]), dtype)  # noqa: E731
    theta = theta.clone()
    meta_train(est, model, theta, gen, sample, int(tr["meta_steps"]),
               what=f"profiles.{profile}.trained ({name}, K={steps})", outer=(tr["optimizer"], float(tr["lr"])),
               on_nonfinite="stop", rt=spec["runtime"], device=device, dtype=dtype, log=log)
    return theta


def _trained_rows(spec: dict, profile: str, prof: dict, pool: TaskPool, ds_cfg: dict, batch: tuple[Data, Data],
                  seeds: dict[str, int], alpha: float, repeats: int, device: torch.device, dtype: torch.dtype,
                  log) -> list[dict]:
    """The rows of ``trained.estimators`` at every K of ``trained.steps``, measured at the theta of
    ``train_theta`` (see the module docstring)."""
    tr, master = prof["trained"], int(spec["seed"])
    unknown = [e for e in tr["estimators"] if e not in prof["estimators"]]
    if unknown:
        raise config.ParamsError(f"profiles.{profile}.trained.estimators: {unknown} are not among the profile's "
                                 "estimators")
    at = {k: int(prof["fixed"][k]) for k in SWEEP_VARIABLES}
    model = backends.of_dataset(ds_cfg, pool.input_dim, [at["units"]] * at["layers"])
    theta0 = model.init(torch_generator(master, "profile", profile, "init", at["layers"], at["units"]), dtype)
    start = time.perf_counter()
    theta = train_theta(spec, profile, prof, pool, model, theta0.to(device), device, dtype, log)
    n = int(tr["meta_steps"])
    log.info("trained theta: %d meta-update(s) of %s at K=%d (%s, lr %g) in %.1f s; |theta - theta0| = %.4g", n,
             tr["estimator"], at["steps"], tr["optimizer"], float(tr["lr"]), time.perf_counter() - start,
             float((theta - theta0.to(device)).norm()))
    configs = {name: spec["estimators"][name] for name in tr["estimators"]}
    problem = InnerProblem(model, *batch)
    rows = []
    for k in tr["steps"]:
        k = int(k)
        floor, ests = profile_point(problem, theta, configs, seeds, k, alpha, repeats, device)
        log.info("trained theta, K=%d  plain inner training %.3f ms (median of %d calls)", k, floor["plain_ms"],
                 floor["plain_repeats"])
        for r in ests:
            r.update(n_params=model.n_params, device=runtime.describe_device(device),
                     dtype=runtime.dtype_name(dtype), threads=torch.get_num_threads())
            _check_point(r, f"profile {profile}, {r['estimator']}, trained theta, K={k}", profile, prof, log)
            rows.append({"profile": profile, "variable": TRAINED, "value": k, "theta_meta_steps": n,
                         **at, "steps": k, **r})
    return rows


def _check_point(row: dict, where: str, profile: str, prof: dict, log) -> None:
    """Refuse an unusable measurement, log the row, warn past the memory cap."""
    _check_finite(row, ["ms_median", "ms_min", "ms_max", "plain_ms", "ratio"], where, positive=True)
    _check_finite(row, ["stored_bytes", "saved_bytes", "nfe", "hvp"], where)
    if row["memory_method"] != UNAVAILABLE:
        _check_finite(row, ["peak_bytes"], where)
    peak = row["peak_bytes"]
    log.info("  %-20s %.3f ms (x%.2f plain)  peak %s MB  stored %.3f MB  saved %.3f MB  nfe %d  hvp %d",
             row["estimator"], row["ms_median"], row["ratio"], "n/a" if peak is None else f"{peak / 2**20:.3f}",
             row["stored_bytes"] / 2**20, row["saved_bytes"] / 2**20, row["nfe"], row["hvp"])
    if peak is not None and peak > float(prof["memory_cap_gb"]) * 2**30:
        log.warning("%s: peak %.2f GB exceeds profiles.%s.memory_cap_gb (%g)", where, peak / 2**30, profile,
                    prof["memory_cap_gb"])
