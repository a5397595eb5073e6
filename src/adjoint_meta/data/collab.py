"""Collaborative-filtering tasks: one user = one task, the input is the one-hot item.

Rules (``cfg`` keys in brackets):

* Items: MovieLens keeps the ``n_items`` most-rated movies (ties broken by the
  smaller movie id) and re-indexes them by popularity rank 0..n_items-1;
  Jester keeps all 100 jokes and uses the joke index as the item.
* Users: MovieLens keeps users with at least ``min_ratings`` ratings among the
  kept movies (the paper's rule is 20); Jester keeps every user with
  ``min_ratings`` = 0 (a user with no rating cannot be a task).
* Test users: ``n_test_tasks`` users drawn with ``rng`` among those with at least
  ``min_test_ratings`` ratings, so that every shot setting leaves ratings to
  evaluate; every other kept user is a training task.  Tasks are numbered
  training users first, then test users, each group by user id.
* ``order``: a random permutation of each user's ratings drawn with ``rng``, so
  that "the first ``shot`` ratings" of a test user are a random choice.
* Target (``target``): 'raw' is the rating itself; 'standardized' is
  (rating - shift) / scale with the mean and (population) standard deviation
  of the training users' ratings.  ``rating = y * scale + shift`` maps back.

The table has the columns that :class:`adjoint_meta.tasks.TaskPool` reads (task,
split, role, order, item, y) plus ``rating`` (original units) and ``user``
(original id).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from adjoint_meta.data import raw
from adjoint_meta.data.ratings import read as read_ratings
from adjoint_meta.data.sources import SOURCES, Source
from adjoint_meta.io import read_json

TARGETS = ("raw", "standardized")


class PreprocessError(ValueError):
    """Ratings and settings from which the requested tasks cannot be built."""


def _select_items(ratings: pd.DataFrame, spec: Source, n_items: int, name: str) -> tuple[np.ndarray, str]:
    """Original ids of the kept items, in the order that defines the new item index."""
    if spec.all_items is not None:
        if n_items != spec.all_items:
            raise PreprocessError(f"{name}: n_items = {n_items}, but all {spec.all_items} items are kept "
                                  f"for this dataset")
        items = ratings["item"].to_numpy()
        if items.min() < 0 or items.max() >= spec.all_items:
            raise PreprocessError(f"{name}: item ids must lie in 0..{spec.all_items - 1}")
        return np.arange(spec.all_items, dtype=np.int64), f"all {spec.all_items} items"
    counts = ratings.groupby("item").size()
    if len(counts) < n_items:
        raise PreprocessError(f"{name}: only {len(counts)} distinct items, n_items = {n_items}")
    ranked = counts.reset_index(name="n").sort_values(["n", "item"], ascending=[False, True], kind="stable")
    return ranked["item"].to_numpy(np.int64)[:n_items], f"the {n_items} most-rated items (ties: smaller id)"


def _draw_test_users(counts: pd.Series, n_test: int, min_test: int, rng: np.random.Generator,
                     name: str) -> np.ndarray:
    eligible = np.sort(counts.index[counts.to_numpy() >= min_test].to_numpy())
    if len(eligible) < n_test:
        raise PreprocessError(f"{name}: n_test_tasks = {n_test} test users needed but only {len(eligible)} "
                              f"users have >= min_test_ratings = {min_test} ratings; lower one of the two")
    if len(counts) <= n_test:
        raise PreprocessError(f"{name}: all {len(counts)} kept users would be test users (n_test_tasks = "
                              f"{n_test}); no training tasks left")
    return np.sort(rng.choice(eligible, size=n_test, replace=False))


def _random_order(task: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row permutation sorting by (task, random key), and each row's position within its task."""
    perm = rng.permutation(len(task))
    perm = perm[np.argsort(task[perm], kind="stable")]  # by task; within a task, random
    sorted_task = task[perm]
    first = np.r_[0, np.flatnonzero(np.diff(sorted_task)) + 1]
    sizes = np.diff(np.r_[first, len(task)])
    order = np.arange(len(task)) - np.repeat(first, sizes)
    return perm, order


def _target(rating: np.ndarray, train: np.ndarray, mode: str) -> tuple[float, float]:
    """(shift, scale) of the target mode; standardization uses training users' ratings only."""
    if mode == "raw":
        return 0.0, 1.0
    if mode != "standardized":
        raise PreprocessError(f"target: {mode!r} is not one of {TARGETS}")
    shift, scale = float(rating[train].mean()), float(rating[train].std())
    if not scale > 0:
        raise PreprocessError("target: training ratings have zero spread, cannot standardize")
    return shift, scale


def _rating_values(rating: np.ndarray, spec: Source) -> dict:
    if spec.discrete:
        values, counts = np.unique(rating, return_counts=True)
        return {f"{v:g}": int(c) for v, c in zip(values, counts)}
    lo, hi = spec.scale
    edges = np.arange(float(lo), hi + 0.5, 1.0)
    counts, _ = np.histogram(rating, bins=edges)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def _per_task_stats(sizes: np.ndarray) -> dict:
    q1, q2, q3 = np.percentile(sizes, [25, 50, 75])
    return {"min": int(sizes.min()), "max": int(sizes.max()), "mean": float(sizes.mean()),
            "median": float(q2), "quartiles": [float(q1), float(q2), float(q3)]}


def build(cfg: dict, rng: np.random.Generator, *, dataset: str, raw_dir: str, log) -> tuple[pd.DataFrame, dict]:
    """The make-tasks step's builder (``data.sources.builder``): the task table and summary of dataset
    ``dataset`` from its raw source's file under ``raw_dir``, the summary holding the fetch step's
    manifest of that file (or a fresh one where fetch did not run)."""
    source = cfg["source"]
    manifest_path = raw.source_dir(source, raw_dir) / "manifest.json"
    path = raw.locate(source, raw_dir)
    log.info("%s: reading %s", dataset, path)
    try:
        table, summary = preprocess(read_ratings(source, path), cfg, rng, source)
    except PreprocessError as exc:  # name the parameters: datasets.<name>.<key>
        raise PreprocessError(f"datasets.{dataset} ({path}): {exc}") from None
    try:
        summary["raw"] = read_json(manifest_path)
    except FileNotFoundError:
        summary["raw"] = raw.manifest(source, path)
    return table, summary


def preprocess(ratings: pd.DataFrame, cfg: dict, rng: np.random.Generator,
               source_name: str) -> tuple[pd.DataFrame, dict]:
    """Task table (one task per kept user) and its summary; see the module docstring for the rules."""
    if source_name not in SOURCES:
        raise PreprocessError(f"unknown dataset {source_name!r}; known: {', '.join(SOURCES)}")
    spec = SOURCES[source_name]
    missing = {"user", "item", "rating"} - set(ratings.columns)
    if missing or ratings.empty:
        raise PreprocessError(f"{source_name}: ratings need columns user, item, rating and at least one row"
                              + (f" (missing {sorted(missing)})" if missing else ""))
    n_items = int(cfg.get("n_items", 100))
    min_ratings, n_test = int(cfg["min_ratings"]), int(cfg["n_test_tasks"])
    min_test, mode = int(cfg["min_test_ratings"]), str(cfg["target"])
    if mode not in TARGETS:
        raise PreprocessError(f"target: {mode!r} is not one of {TARGETS}")

    kept_items, item_rule = _select_items(ratings, spec, n_items, source_name)
    index = pd.Series(np.arange(len(kept_items), dtype=np.int64), index=kept_items)
    frame = ratings[ratings["item"].isin(kept_items)]
    counts = frame.groupby("user").size()
    counts = counts[counts >= max(min_ratings, 1)]
    frame = frame[frame["user"].isin(counts.index)]

    test_users = _draw_test_users(counts, n_test, min_test, rng, source_name)
    train_users = np.setdiff1d(counts.index.to_numpy(), test_users)
    task_of = pd.Series(np.arange(len(train_users) + n_test, dtype=np.int64),
                        index=np.concatenate([train_users, test_users]))
    task = task_of.loc[frame["user"].to_numpy()].to_numpy()
    perm, order = _random_order(task, rng)
    task = task[perm]
    user = frame["user"].to_numpy(np.int64)[perm]
    item = index.loc[frame["item"].to_numpy()].to_numpy()[perm]
    rating = frame["rating"].to_numpy(np.float64)[perm]
    is_train = task < len(train_users)
    shift, scale = _target(rating, is_train, mode)

    table = pd.DataFrame({
        "task": task.astype(np.int32),
        "split": np.where(is_train, "train", "test"),
        "role": "pool",
        "order": order.astype(np.int32),
        "item": item.astype(np.int64),
        "y": ((rating - shift) / scale).astype(np.float32),
        "rating": rating.astype(np.float32),
        "user": user,
    })
    sizes = np.bincount(task, minlength=len(task_of))
    summary = {
        "source": "collaborative",
        "family": source_name,
        "input": {"kind": "onehot", "dim": int(len(kept_items))},
        "train_pool": "all",  # a training task draws shot + val of all its ratings
        "test_eval": "rest",  # a test task is evaluated on all ratings after its first `shot`
        "target": {"mode": mode, "shift": shift, "scale": scale},
        "n_users": int(len(task_of)),
        "n_items": int(len(kept_items)),
        "n_ratings": int(len(table)),
        "n_train_tasks": int(len(train_users)),
        "n_test_tasks": int(n_test),
        "ratings_per_task": _per_task_stats(sizes),
        "rating_values": _rating_values(rating, spec),
        "filter": {
            "items": item_rule,
            "users": f"users with >= {max(min_ratings, 1)} ratings among the kept items",
            "test_users": f"{n_test} drawn among users with >= {min_test} ratings",
            "n_items": n_items, "min_ratings": min_ratings, "min_test_ratings": min_test,
            "users_in_input": int(ratings["user"].nunique()),
            "ratings_in_input": int(len(ratings)),
            "items_in_input": int(ratings["item"].nunique()),
            "kept_item_ids": kept_items.tolist(),
        },
        "test_users": test_users.tolist(),
        "paper_task_count": spec.paper_task_count,
        "published_ratings": spec.published_ratings,
        "n_rows": int(len(table)),
    }
    return table, summary
