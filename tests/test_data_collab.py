"""Ratings -> per-user task tables that tasks.TaskPool reads."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from adjoint_meta.data import collab
from adjoint_meta.data.collab import PreprocessError
from adjoint_meta.io import write_json
from adjoint_meta.tasks import TaskPool

CFG = {"n_items": 30, "min_ratings": 20, "n_test_tasks": 10, "min_test_ratings": 30, "target": "raw"}
COLUMNS = ["task", "split", "role", "order", "item", "y", "rating", "user"]


def movielens_like(n_users: int = 80, n_items: int = 60, seed: int = 0) -> pd.DataFrame:
    """Integer ratings 1..5 with skewed item popularity and varied user activity."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.7
    rows = []
    for u in range(1, n_users + 1):
        k = int(rng.integers(5, n_items))
        items = rng.choice(np.arange(1, n_items + 1) * 3, size=k, replace=False, p=pop / pop.sum())
        rows += [(u * 7, int(i), float(rng.integers(1, 6))) for i in items]
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


def jester_like(n_users: int = 60, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        jokes = np.flatnonzero(rng.random(100) < rng.uniform(0.2, 1.0))
        rows += [(u, int(j), float(np.round(rng.uniform(-10, 10), 2))) for j in jokes]
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


def build(ratings=None, seed=0, name="ml100k", **cfg):
    ratings = movielens_like() if ratings is None else ratings
    return collab.preprocess(ratings, {**CFG, **cfg}, np.random.default_rng(seed), name)


def test_table_layout_and_dtypes():
    table, summary = build()
    assert list(table.columns) == COLUMNS
    assert table.dtypes.astype(str)[["task", "order", "item", "y", "rating", "user"]].tolist() == [
        "int32", "int32", "int64", "float32", "float32", "int64"]
    assert set(table["role"]) == {"pool"} and set(table["split"]) == {"train", "test"}
    n_train, n_test = summary["n_train_tasks"], summary["n_test_tasks"]
    assert n_test == 10 and summary["n_users"] == n_train + n_test == table["task"].nunique()
    tasks_by_split = table.groupby("split")["task"].agg(["min", "max"])
    assert tuple(tasks_by_split.loc["train"]) == (0, n_train - 1)  # training users first
    assert tuple(tasks_by_split.loc["test"]) == (n_train, n_train + n_test - 1)
    assert table.groupby("task")["user"].nunique().eq(1).all()
    assert table.groupby("user")["task"].nunique().eq(1).all()
    assert summary["n_rows"] == summary["n_ratings"] == len(table)
    assert summary["source"] == "collaborative" and summary["family"] == "ml100k"
    assert summary["input"] == {"kind": "onehot", "dim": 30}
    assert (summary["train_pool"], summary["test_eval"]) == ("all", "rest")
    assert summary["paper_task_count"] == 489


def test_order_is_a_permutation_per_task():
    table, _ = build()
    for _, g in table.groupby("task"):
        assert sorted(g["order"]) == list(range(len(g)))
    a, _ = build(seed=3)
    b, _ = build(seed=3)
    c, _ = build(seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    # the order is not the input order (it is random)
    t0 = a[a["task"] == 0].sort_values("order")
    assert not (np.diff(t0["item"].to_numpy()) > 0).all() or len(t0) < 3


def test_items_most_rated_ties_to_smaller_id():
    ratings = pd.DataFrame({
        "user": [1, 2, 3, 1, 2, 1, 2, 3, 1, 2],
        "item": [50, 50, 50, 20, 20, 10, 10, 10, 90, 90],
        "rating": [1.0, 2, 3, 4, 5, 1, 2, 3, 4, 5],
    })  # counts: 10 -> 3, 50 -> 3, 20 -> 2, 90 -> 2
    cfg = {"n_items": 3, "min_ratings": 1, "n_test_tasks": 1, "min_test_ratings": 1, "target": "raw"}
    table, summary = collab.preprocess(ratings, cfg, np.random.default_rng(0), "ml100k")
    assert summary["filter"]["kept_item_ids"] == [10, 50, 20]
    got = table.set_index(["user", "item"])["rating"]
    assert 90 not in set(table["item"])  # re-indexed: items are ranks 0..2
    mapped = dict(zip(summary["filter"]["kept_item_ids"], range(3)))
    for (u, i), r in ratings.set_index(["user", "item"])["rating"].items():
        if i in mapped:
            assert got[(u, mapped[i])] == r


def test_user_filter_and_test_eligibility():
    ratings = movielens_like()
    table, summary = build(ratings)
    kept = ratings[ratings["item"].isin(summary["filter"]["kept_item_ids"])]
    counts = kept.groupby("user").size()
    assert set(table["user"]) == set(counts.index[counts >= 20])
    sizes = table.groupby("task").size()
    test_sizes = sizes[table.groupby("task")["split"].first() == "test"]
    assert (test_sizes >= 30).all() and len(test_sizes) == 10
    assert sorted(summary["test_users"]) == sorted(table.loc[table["split"] == "test", "user"].unique())
    per = summary["ratings_per_task"]
    assert per["min"] == sizes.min() and per["max"] == sizes.max() and per["median"] == sizes.median()
    assert len(per["quartiles"]) == 3
    assert sum(summary["rating_values"].values()) == len(table)
    assert set(summary["rating_values"]) <= {"1", "2", "3", "4", "5"}


def test_test_users_drawn_with_rng():
    _, a = build(seed=0, min_test_ratings=20)
    _, b = build(seed=1, min_test_ratings=20)
    assert a["n_users"] > 20 and a["test_users"] != b["test_users"]


def test_standardized_target_uses_training_users():
    table, summary = build(target="standardized")
    t = summary["target"]
    assert t["mode"] == "standardized"
    train = table[table["split"] == "train"]
    assert t["shift"] == pytest.approx(train["rating"].mean())
    assert t["scale"] == pytest.approx(train["rating"].std(ddof=0))
    assert train["y"].mean() == pytest.approx(0, abs=1e-5) and train["y"].std(ddof=0) == pytest.approx(1, abs=1e-5)
    np.testing.assert_allclose(table["y"] * t["scale"] + t["shift"], table["rating"], atol=1e-5)
    raw_table, raw_summary = build(target="raw")
    assert raw_summary["target"] == {"mode": "raw", "shift": 0.0, "scale": 1.0}
    assert (raw_table["y"] == raw_table["rating"]).all()


def test_jester_keeps_all_jokes():
    ratings = jester_like()
    cfg = {"n_items": 100, "min_ratings": 0, "n_test_tasks": 10, "min_test_ratings": 40, "target": "raw"}
    table, summary = collab.preprocess(ratings, cfg, np.random.default_rng(0), "jester")
    assert summary["n_users"] == ratings["user"].nunique() and summary["n_ratings"] == len(ratings)
    assert summary["input"]["dim"] == 100 and summary["filter"]["kept_item_ids"] == list(range(100))
    merged = table.merge(ratings, on=["user", "item"], suffixes=("", "_in"))
    assert len(merged) == len(ratings)
    np.testing.assert_allclose(merged["rating"], merged["rating_in"], atol=1e-5)
    hist = summary["rating_values"]
    assert len(hist["edges"]) == len(hist["counts"]) + 1 and sum(hist["counts"]) == len(ratings)
    assert summary["paper_task_count"] == 24983
    with pytest.raises(PreprocessError, match="all 100 items are kept"):
        collab.preprocess(ratings, {**cfg, "n_items": 50}, np.random.default_rng(0), "jester")


@pytest.mark.parametrize("cfg, match", [
    ({"n_test_tasks": 500}, "only .* users have >= min_test_ratings = 30 ratings"),
    ({"min_test_ratings": 10_000}, "only 0 users"),
    ({"target": "minmax"}, "not one of"),
    ({"n_items": 10_000}, "distinct items"),
])
def test_bad_settings(cfg, match):
    with pytest.raises(PreprocessError, match=match):
        build(**cfg)


def test_bad_input():
    with pytest.raises(PreprocessError, match="missing"):
        collab.preprocess(pd.DataFrame({"user": [1], "item": [2]}), CFG, np.random.default_rng(0), "ml100k")
    with pytest.raises(PreprocessError, match="unknown dataset"):
        collab.preprocess(movielens_like(), CFG, np.random.default_rng(0), "netflix")


def test_task_pool_reads_it(tmp_path):
    table, summary = build(target="standardized")
    table.to_parquet(tmp_path / "ml100k.parquet", index=False)
    write_json(tmp_path / "ml100k.json", {"dataset": "ml100k", **summary})
    pool = TaskPool.load(tmp_path / "ml100k.parquet")
    assert pool.onehot and pool.input_dim == 30
    assert (pool.n_train_tasks, pool.n_test_tasks) == (summary["n_train_tasks"], 10)
    tasks, support, query = pool.sample(torch.Generator().manual_seed(0), meta_batch=5, shot=10, val=15)
    assert tasks.shape == (5,) and support.x.shape == (5, 10, 30) and query.x.shape == (5, 15, 30)
    assert torch.all(support.x.sum(-1) == 1)
    support, evaluation = pool.test_split(shot=20)
    assert support.x.shape == (10, 20, 30)
    # the support of a test task is its first 20 ratings in the stored order; the rest evaluate
    test = table[table["split"] == "test"].sort_values(["task", "order"])
    first = test[test["task"] == test["task"].min()]
    assert support.y[0].tolist() == pytest.approx(first["y"].to_numpy()[:20].tolist())
    n_rest = int((evaluation.w[0] > 0).sum())
    assert n_rest == len(first) - 20
