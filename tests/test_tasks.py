"""Task pools (tasks.py): meta-batch sampling and the test split, on small hand-built pools.

In the hand-built pools every rating carries its own identity: task t's example at stored
position k has target y = 1000 t + k and item (5 k + t) mod 41, so a sampled example can be
traced back to the exact row it came from.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from test_data_collab import build

from adjoint_meta.data import synthetic
from adjoint_meta.io import write_json
from adjoint_meta.tasks import TaskError, TaskPool

DIM = 41  # one-hot width; 5 is invertible mod 41, so a user's items are distinct (n <= 41)


def item_of(t: int, k: int) -> int:
    return (5 * k + t) % DIM


def hand_table(train_counts, test_counts, seed=0) -> pd.DataFrame:
    rows = []
    for t, (split, n) in enumerate([("train", n) for n in train_counts] + [("test", n) for n in test_counts]):
        rows += [(t, split, "pool", k, item_of(t, k), float(1000 * t + k)) for k in range(n)]
    table = pd.DataFrame(rows, columns=["task", "split", "role", "order", "item", "y"])
    table = table.astype({"task": "int32", "order": "int32", "item": "int64", "y": "float32"})
    # stored rows shuffled: the pool must follow the 'order' column, not the row position
    return table.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def hand_pool(train_counts, test_counts, mode="all", seed=0) -> TaskPool:
    summary = {"input": {"kind": "onehot", "dim": DIM}, "train_pool": mode, "test_eval": "rest"}
    return TaskPool(hand_table(train_counts, test_counts, seed), summary, name="hand")


def decode(data, row: int, n: int | None = None):
    """(task, position) of the first n examples of one task of a Data batch; checks x agrees with y."""
    y = data.y[row].to(torch.float64).numpy()
    y = y if n is None else y[:n]
    t, k = (y // 1000).astype(int), (y % 1000).astype(int)
    x = data.x[row] if n is None else data.x[row, :n]
    assert torch.all(x.sum(-1) == 1)  # one-hot rows
    items = x.argmax(-1).numpy()
    assert [item_of(a, b) for a, b in zip(t, k)] == items.tolist()
    return t, k


TRAIN = [3, 25, 8, 30, 24, 26, 9, 40, 12, 33]  # shot + val = 25: tasks 1, 3, 5, 7, 9 are eligible
TEST = [13, 20, 11, 40]


# -- training tasks ------------------------------------------------------------------

def test_support_and_query_come_from_one_user_without_overlap():
    pool = hand_pool(TRAIN, TEST)
    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        tasks, support, query = pool.sample(gen, meta_batch=3, shot=10, val=15)
        assert support.x.shape == (3, 10, DIM) and query.x.shape == (3, 15, DIM)
        assert len(set(tasks.tolist())) == 3  # distinct tasks in a meta-batch
        for r, task in enumerate(tasks.tolist()):
            ts, ks = decode(support, r)
            tq, kq = decode(query, r)
            assert set(ts) == set(tq) == {task}  # the returned index is the user the data are of
            assert len(set(ks)) == 10 and len(set(kq)) == 15  # no rating twice
            assert not set(ks) & set(kq)  # support and query disjoint
            assert max(ks.max(), kq.max()) < TRAIN[task]  # real ratings, no padding


def test_short_users_are_never_drawn():
    pool = hand_pool(TRAIN, TEST)
    eligible = {t for t, n in enumerate(TRAIN) if n >= 25}
    assert sorted(pool.eligible(10, 15).tolist()) == sorted(eligible)
    gen = torch.Generator().manual_seed(1)
    drawn = Counter()
    for _ in range(300):
        tasks, _, _ = pool.sample(gen, meta_batch=4, shot=10, val=15)
        drawn.update(tasks.tolist())
    assert set(drawn) == eligible  # 24 ratings (task 4) is one short; 25 (task 1) is enough
    # drawn uniformly: each of 5 eligible tasks in about 4/5 of 300 batches
    assert all(180 < c < 300 for c in drawn.values())


def test_all_ratings_of_a_user_can_be_drawn():
    """'all' mode (real data): support and query are random subsets of all of a user's ratings."""
    pool = hand_pool([40, 40], [5], mode="all")
    gen = torch.Generator().manual_seed(2)
    seen_s, seen_q, firsts = set(), set(), set()
    for _ in range(60):
        tasks, support, query = pool.sample(gen, meta_batch=2, shot=5, val=5)
        for r in range(2):
            _, ks = decode(support, r)
            _, kq = decode(query, r)
            seen_s |= set(ks.tolist())
            seen_q |= set(kq.tolist())
            firsts.add(int(ks[0]))
    assert seen_s == seen_q == set(range(40))
    assert len(firsts) > 10  # the support is not the first ratings in the stored order


def test_first_mode_uses_only_the_first_shot_plus_val_examples():
    """'first' mode (synthetic): a training task contributes its first shot + val points."""
    pool = hand_pool([40, 30, 26], [5], mode="first")
    gen = torch.Generator().manual_seed(3)
    seen = set()
    for _ in range(40):
        _, support, query = pool.sample(gen, meta_batch=3, shot=6, val=4)
        for r in range(3):
            _, ks = decode(support, r)
            _, kq = decode(query, r)
            assert not set(ks) & set(kq)
            assert set(ks) | set(kq) == set(range(10))  # exactly the first 10, split at random
            seen.add(tuple(sorted(ks)))
    assert len(seen) > 5


def test_sampling_is_reproducible_from_the_generator_seed():
    pool = hand_pool(TRAIN, TEST)

    def draws(seed, k=5):
        gen = torch.Generator().manual_seed(seed)
        return [pool.sample(gen, meta_batch=3, shot=10, val=15) for _ in range(k)]

    a, b, c = draws(7), draws(7), draws(8)
    for (ta, sa, qa), (tb, sb, qb) in zip(a, b):
        assert torch.equal(ta, tb)
        for da, db in ((sa, sb), (qa, qb)):
            assert torch.equal(da.x, db.x) and torch.equal(da.y, db.y) and torch.equal(da.w, db.w)
    assert any(not torch.equal(sa.y, sc.y) for (_, sa, _), (_, sc, _) in zip(a, c))
    # the generator advances: successive batches from one generator differ
    assert any(not torch.equal(a[0][1].y, later[1].y) for later in a[1:])
    # the pool itself holds no random state: a fresh generator with the same seed repeats
    assert torch.equal(draws(7, 1)[0][1].y, a[0][1].y)


def test_too_few_eligible_tasks():
    pool = hand_pool(TRAIN, TEST)
    with pytest.raises(TaskError, match="only 5 training task"):
        pool.sample(torch.Generator().manual_seed(0), meta_batch=6, shot=10, val=15)
    with pytest.raises(TaskError, match="only 0 training task"):
        pool.sample(torch.Generator().manual_seed(0), meta_batch=1, shot=30, val=11)
    tasks, _, _ = pool.sample(torch.Generator().manual_seed(0), meta_batch=5, shot=10, val=15)
    assert sorted(tasks.tolist()) == [1, 3, 5, 7, 9]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sample_weights_are_a_mean(dtype):
    pool = hand_pool(TRAIN, TEST)
    _, support, query = pool.sample(torch.Generator().manual_seed(4), meta_batch=5, shot=10, val=15, dtype=dtype)
    for data, n in ((support, 10), (query, 15)):
        assert data.w.dtype == data.y.dtype == data.x.dtype == dtype
        assert data.w.shape == data.y.shape == data.x.shape[:2]
        assert torch.allclose(data.w, torch.full_like(data.w, 1.0 / n))
        # sum_n w (f - y)^2 with f = 0 is the mean of y^2 over the n examples
        loss = (data.w * data.y ** 2).sum(1)
        assert torch.allclose(loss, (data.y ** 2).mean(1), rtol=1e-6)


# -- test tasks ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_test_split_first_shot_train_all_rest_evaluate(dtype):
    pool = hand_pool(TRAIN, TEST)
    shot = 10
    support, evaluation = pool.test_split(shot, dtype=dtype)
    n_train = len(TRAIN)
    assert support.x.shape == (len(TEST), shot, DIM)
    assert evaluation.x.shape[:2] == evaluation.y.shape == evaluation.w.shape == (len(TEST), max(TEST) - shot)
    for r, n in enumerate(TEST):
        ts, ks = decode(support, r)
        assert set(ts) == {n_train + r}  # rows follow the test tasks in id order
        assert ks.tolist() == list(range(shot))  # the first `shot` in the stored order
        te, ke = decode(evaluation, r, n - shot)
        assert set(te) == {n_train + r}
        assert ke.tolist() == list(range(shot, n))  # every remaining rating, once
        assert not set(ks) & set(ke) and len(ks) + len(ke) == n
        # weights: 1/n on real entries, 0 (and y = 0) on padding
        assert torch.allclose(support.w[r], torch.full((shot,), 1.0 / shot, dtype=dtype))
        w = evaluation.w[r]
        assert w.dtype == dtype
        assert torch.allclose(w[:n - shot], torch.full((n - shot,), 1.0 / (n - shot), dtype=dtype))
        assert torch.all(w[n - shot:] == 0) and torch.all(evaluation.y[r, n - shot:] == 0)
        assert float(w.sum()) == pytest.approx(1.0)
    # the weighted error is the mean over each task's real evaluation ratings
    rest = [np.arange(shot, n) + 1000.0 * (n_train + r) for r, n in enumerate(TEST)]
    loss = (evaluation.w * evaluation.y.double() ** 2).sum(1)
    np.testing.assert_allclose(loss.numpy(), [np.mean(v ** 2) for v in rest], rtol=1e-6)


def test_test_split_is_deterministic_and_limited():
    pool = hand_pool(TRAIN, TEST)
    s1, e1 = pool.test_split(5)
    other = hand_pool(TRAIN, TEST, seed=9)  # the same tasks, rows stored in another order
    s2, e2 = other.test_split(5)
    assert torch.equal(s1.y, s2.y) and torch.equal(e1.y, e2.y) and torch.equal(e1.w, e2.w)
    s3, e3 = pool.test_split(5, limit=2)
    assert s3.y.shape[0] == e3.y.shape[0] == 2
    assert torch.equal(s3.y, s1.y[:2]) and torch.equal(e3.w, e1.w[:2, :e3.w.shape[1]])


def test_test_split_needs_one_rating_to_evaluate():
    pool = hand_pool(TRAIN, [13, 20, 11])
    support, evaluation = pool.test_split(10)  # 11 ratings: 10 train, 1 evaluates
    assert (evaluation.w[2] > 0).sum() == 1 and float(evaluation.w[2, 0]) == 1.0
    with pytest.raises(TaskError, match="1 test task"):
        pool.test_split(11)  # the task with 11 ratings has none left to evaluate
    with pytest.raises(TaskError, match="2 test task"):
        pool.test_split(13)  # 13 and 11 ratings are too few


# -- pools from the real builders ------------------------------------------------------

def test_collab_pool_samples_a_users_own_ratings(tmp_path):
    table, summary = build(seed=5)
    table.to_parquet(tmp_path / "ml100k.parquet", index=False)
    write_json(tmp_path / "ml100k.json", {"dataset": "ml100k", **summary})
    pool = TaskPool.load(tmp_path / "ml100k.parquet")
    ratings = {t: set(zip(g["item"], g["y"].astype(float))) for t, g in table.groupby("task")}
    sizes = table.groupby("task").size()
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        tasks, support, query = pool.sample(gen, meta_batch=5, shot=10, val=15)
        for r, t in enumerate(tasks.tolist()):
            assert sizes[t] >= 25 and (table.loc[table["task"] == t, "split"] == "train").all()
            s = list(zip(support.x[r].argmax(-1).tolist(), support.y[r].double().tolist()))
            q = list(zip(query.x[r].argmax(-1).tolist(), query.y[r].double().tolist()))
            assert set(s) <= ratings[t] and set(q) <= ratings[t]
            items_s, items_q = {i for i, _ in s}, {i for i, _ in q}
            assert len(items_s) == 10 and len(items_q) == 15 and not items_s & items_q
            assert support.items[r].tolist() == [i for i, _ in s] and query.items[r].tolist() == [i for i, _ in q]
    support, evaluation = pool.test_split(20)
    n_test = summary["n_test_tasks"]
    test_ids = sorted(table.loc[table["split"] == "test", "task"].unique())
    for r, t in enumerate(test_ids):
        n_eval = int((evaluation.w[r] > 0).sum())
        assert n_eval == sizes[t] - 20 and float(evaluation.w[r].sum()) == pytest.approx(1.0)
        g = table[table["task"] == t].sort_values("order")
        np.testing.assert_array_equal(support.x[r].argmax(-1).numpy(), g["item"].to_numpy()[:20])
        np.testing.assert_array_equal(evaluation.x[r, :n_eval].argmax(-1).numpy(), g["item"].to_numpy()[20:])
    assert r == n_test - 1


def test_synthetic_pool_uses_first_points_and_eval_rows():
    cfg = {"family": "alpine", "variant": "paper", "standardize": True, "n_train_tasks": 6,
           "n_test_tasks": 3, "train_points": 30, "test_support_points": 12, "test_eval_points": 9}
    table, summary = synthetic.generate(cfg, np.random.default_rng(0))
    pool = TaskPool(table, summary)
    assert not pool.onehot and pool.input_dim == 2 and (pool.n_train_tasks, pool.n_test_tasks) == (6, 3)
    rows = {}
    for t, g in table.groupby("task"):
        for k, x0, x1, y in g[["order", "x0", "x1", "y"]].itertuples(index=False):
            rows[(float(x0), float(x1), float(y))] = (t, k)
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        tasks, support, query = pool.sample(gen, meta_batch=4, shot=5, val=7, dtype=torch.float64)
        for r, t in enumerate(tasks.tolist()):
            got = [rows[(a, b, c)] for (a, b), c in zip(support.x[r].tolist(), support.y[r].tolist())]
            got_q = [rows[(a, b, c)] for (a, b), c in zip(query.x[r].tolist(), query.y[r].tolist())]
            assert {tt for tt, _ in got + got_q} == {t}
            ks, kq = {k for _, k in got}, {k for _, k in got_q}
            assert len(ks) == 5 and len(kq) == 7 and not ks & kq and ks | kq == set(range(12))
    support, evaluation = pool.test_split(4, dtype=torch.float64)
    assert support.x.shape == (3, 4, 2) and evaluation.x.shape == (3, 9, 2)
    assert torch.allclose(evaluation.w, torch.full((3, 9), 1.0 / 9, dtype=torch.float64))
    for r in range(3):
        t = 6 + r
        ks = [rows[(a, b, c)] for (a, b), c in zip(support.x[r].tolist(), support.y[r].tolist())]
        ke = [rows[(a, b, c)] for (a, b), c in zip(evaluation.x[r].tolist(), evaluation.y[r].tolist())]
        assert ks == [(t, k) for k in range(4)]  # first 4 pool points
        assert ke == [(t, k) for k in range(12, 21)]  # the fresh eval points, never pool points


def test_a_test_task_without_evaluation_rows_is_refused():
    """Evaluation rows are matched to test tasks by id: a task lacking them must not shift the others."""
    cfg = {"family": "cosmixture", "variant": "paper", "standardize": False, "n_train_tasks": 4,
           "n_test_tasks": 3, "train_points": 10, "test_support_points": 5, "test_eval_points": 6}
    table, summary = synthetic.generate(cfg, np.random.default_rng(0))
    test_ids = sorted(table.loc[table["split"] == "test", "task"].unique())
    damaged = table[~((table["task"] == test_ids[1]) & (table["role"] == "eval"))]
    with pytest.raises(TaskError, match=rf"test task\(s\) \[{test_ids[1]}\] have no evaluation rows"):
        TaskPool(damaged, summary, name="t")
    TaskPool(table, summary)  # the intact table loads
