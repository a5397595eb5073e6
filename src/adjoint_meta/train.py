"""Meta-training: learn theta with one estimator on one dataset and setting.

Every estimator of a (dataset, seed) starts from the same theta and sees the
same sequence of meta-batches, so differences between them come from the
meta-gradient alone.
"""
from __future__ import annotations

import csv
import io

from adjoint_meta import backends, checkpoint, config, model_file, runtime
from adjoint_meta.estimators import build
from adjoint_meta.io import atomic_path
from adjoint_meta.outer_loop import CURVE_COLUMNS, meta_train, rate_history
from adjoint_meta.seeding import derive_seed, torch_generator
from adjoint_meta.tasks import TaskPool


def run(spec: dict, cell: dict, tasks_path: str, out_model: str, out_log: str,
        log_file: str | None = None) -> dict:
    """Train and write ``out_model`` (theta and metadata) and ``out_log`` (one CSV row per meta-step).

    Every ``runtime.checkpoint_every`` meta-steps the whole state is checkpointed
    beside ``out_model``; a rerun resumes from it and ends with the same theta.
    """
    log = runtime.logger("train", log_file)
    device, dtype = runtime.setup(spec["runtime"])
    ds_cfg, setting = spec["datasets"][cell["dataset"]], spec["settings"][cell["setting"]]
    est_cfg = spec["estimators"][cell["estimator"]]
    meta, alpha = spec["meta"], float(spec["inner"]["alpha"])
    exp = spec["experiments"][cell["experiment"]]
    kind = est_cfg["kind"]
    steps = config.inner_steps(kind, exp["steps"], exp["maml_steps"])
    optimizer, lr = config.outer_optimizer(meta, est_cfg)
    master, seed = int(spec["seed"]), int(cell["seed"])

    pool = TaskPool.load(tasks_path)
    model = backends.of_dataset(ds_cfg, pool.input_dim)
    compiled = bool(spec["runtime"].get("compile"))
    if compiled:
        model.compile_passes()
    theta = model.init(torch_generator(master, "init", cell["dataset"], seed), dtype).to(device)
    estimator = build(kind, est_cfg, steps, alpha, seed=derive_seed(master, "estimator", *cell.values()))
    label = est_cfg.get("label") or estimator.label
    gen = torch_generator(master, "tasks", cell["dataset"], cell["setting"], seed)
    shot, val = int(setting["shot"]), int(setting["val"])
    eligible = int(pool.eligible(shot, val).numel())
    if eligible < int(meta["meta_batch"]):
        raise config.ParamsError(
            f"settings.{cell['setting']}: only {eligible} of the {pool.n_train_tasks} training tasks of "
            f"datasets.{cell['dataset']} have shot + val = {shot + val} examples, meta.meta_batch needs "
            f"{meta['meta_batch']}; choose a smaller setting (or, for a collaborative dataset, more items or "
            f"a lower min_ratings)")
    log.info("train %s | %s | %d parameters | K=%d alpha=%g | outer %s lr %g | %d/%d eligible training tasks "
             "| device %s %s%s", " ".join(f"{k}={v}" for k, v in cell.items()), label, model.n_params, steps, alpha,
             optimizer, lr, eligible, pool.n_train_tasks, runtime.describe_device(device),
             runtime.dtype_name(dtype), " compiled" if compiled else "")

    # an estimator that makes no outer updates (random_init) writes the initial theta as it is
    n_steps = int(meta["meta_epochs"]) if estimator.trains else 0
    sample = lambda: pool.sample(gen, int(meta["meta_batch"]), shot, val, dtype)  # noqa: E731
    loop = meta_train(estimator, model, theta, gen, sample, n_steps, what=f"{cell['dataset']} ({label}, K={steps})",
                      outer=(optimizer, lr), on_nonfinite=meta["on_nonfinite"], rt=spec["runtime"], device=device,
                      dtype=dtype, ckpt_path=checkpoint.path_for(out_model), owner=checkpoint.owner_of(spec, cell),
                      log=log)
    rows, skipped_total, extra, wall = loop.rows, loop.skipped, loop.extra, loop.wall

    if not n_steps:
        log.info("meta-step 0/0: no outer updates (%s); theta is the initial one", label)
    summary = {
        "cell": cell, "estimator_label": label, "kind": kind, "inner_steps": steps, "alpha": alpha,
        "outer": {"optimizer": optimizer, "lr": lr},
        "n_params": model.n_params, "sizes": [pool.input_dim, *ds_cfg["hidden"], 1],
        "activation": ds_cfg["activation"], "backend": ds_cfg.get("backend", backends.DEFAULT),
        "meta_steps": n_steps, "wall_seconds": wall, "skipped_tasks": skipped_total,
        "eligible_tasks": eligible, "device": runtime.describe_device(device),
        "dtype": runtime.dtype_name(dtype), "compiled": compiled,
        "stats_per_step": {k: v / n_steps for k, v in extra.items()},
        "learned_rates": rate_history(loop),
    }
    write_curve(out_log, rows, loop.columns)
    model_file.save(out_model, theta, summary, spec)
    checkpoint.path_for(out_model).unlink(missing_ok=True)
    if loop.rates and rows:
        log.info("learned step sizes (%s, %s): %s", loop.rates["learn"], loop.rates["method"],
                 ", ".join(f"{c} {v}" for c, v in zip(loop.columns, rows[-1][len(CURVE_COLUMNS):])))
    log.info("done in %.1fs; wrote %s", wall, out_model)
    return summary


def write_curve(path: str, rows: list[list], columns: tuple[str, ...] = ()) -> None:
    """The training curve: one CSV row per meta-step (and a column per learned step size)."""
    text = io.StringIO()
    csv.writer(text).writerows([[*CURVE_COLUMNS, *columns], *rows])
    with atomic_path(path) as tmp:
        tmp.write_text(text.getvalue())
