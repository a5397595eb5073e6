"""Hostile raw data: corrupted versions of every raw format either load correctly or stop with a
RatingsError naming the file (and the line, where there is one); nothing else escapes, and the
task-building step leaves no partial output behind."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adjoint_meta import config, make_tasks
from adjoint_meta.data import ratings
from adjoint_meta.data.ratings import RatingsError
from conftest import TEST_PARAMS, write_u_data
from test_data_ratings import ML1M, csv_text, jester_rows

FORMATS = {
    # source, file name, valid content, field separator
    "u.data": ("ml100k", "u.data", None, "\t"),
    "ratings.dat": ("ml1m", "ratings.dat", ML1M * 3, "::"),
    "jester.csv": ("jester", "jester-data-1.csv", csv_text(jester_rows(5)), ","),
}


def valid(kind: str, tmp_path) -> bytes:
    source, name, text, _ = FORMATS[kind]
    if text is None:
        return write_u_data(tmp_path / "gen" / "u.data", n_users=12, n_items=30).read_bytes()
    return text.encode()


CORRUPTIONS = ["truncate_line", "wrong_separator", "non_utf8", "huge_number", "nan_string", "duplicate_line",
               "drop_field", "extra_field", "blank_line", "random_bytes", "negative", "cut_file"]


def corrupt(data: bytes, how: str, sep: str, rng: random.Random) -> bytes:
    lines = data.split(b"\n")
    body = [i for i, line in enumerate(lines) if line]
    i = rng.choice(body)
    fields = lines[i].split(sep.encode())
    j = rng.randrange(len(fields))
    if how == "truncate_line":
        lines[i] = lines[i][: rng.randrange(1, max(2, len(lines[i])))]
    elif how == "wrong_separator":
        lines[i] = lines[i].replace(sep.encode(), b";")
    elif how == "non_utf8":
        lines[i] = lines[i][:2] + b"\xff\xfe" + lines[i][2:]
    elif how == "huge_number":
        fields[j] = b"1e400"
        lines[i] = sep.encode().join(fields)
    elif how == "nan_string":
        fields[j] = rng.choice([b"NaN", b"nan", b"inf", b"-Infinity"])
        lines[i] = sep.encode().join(fields)
    elif how == "duplicate_line":
        lines.insert(i, lines[i])
    elif how == "drop_field":
        del fields[j]
        lines[i] = sep.encode().join(fields)
    elif how == "extra_field":
        fields.insert(j, b"7")
        lines[i] = sep.encode().join(fields)
    elif how == "blank_line":
        lines.insert(i, b"")
    elif how == "random_bytes":
        lines[i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20)))
    elif how == "negative":
        fields[j] = b"-" + fields[j]
        lines[i] = sep.encode().join(fields)
    elif how == "cut_file":
        return data[: rng.randrange(1, len(data))]
    return b"\n".join(lines)


def check(kind: str, path) -> None:
    source = FORMATS[kind][0]
    try:
        frame = ratings.read(source, path)
    except RatingsError as exc:
        assert str(path) in str(exc), f"error does not name the file: {exc}"
        return
    # loaded: then it must be a correct table
    assert {"user", "item", "rating"} <= set(frame.columns)
    assert np.isfinite(frame["rating"]).all() and not frame.duplicated(["user", "item"]).any()


@pytest.mark.parametrize("kind", list(FORMATS))
@pytest.mark.parametrize("how", CORRUPTIONS)
def test_each_corruption_of_each_format(kind, how, tmp_path):
    data = valid(kind, tmp_path)
    for trial in range(3):
        path = tmp_path / f"{trial}-{FORMATS[kind][1]}"
        path.write_bytes(corrupt(data, how, FORMATS[kind][3], random.Random(trial)))
        check(kind, path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(list(FORMATS)), hows=st.lists(st.sampled_from(CORRUPTIONS), min_size=1, max_size=4),
       seed=st.integers(0, 10**6))
def test_random_combinations_of_corruptions(kind, hows, seed, tmp_path):
    rng = random.Random(seed)
    data = valid(kind, tmp_path)
    for how in hows:
        if data:
            data = corrupt(data, how, FORMATS[kind][3], rng)
    path = tmp_path / f"fuzz-{seed}-{FORMATS[kind][1]}"
    path.write_bytes(data)
    check(kind, path)


@pytest.mark.parametrize("how", ["nan_string", "wrong_separator", "non_utf8", "duplicate_line"])
def test_make_tasks_leaves_no_partial_output(how, tmp_path):
    raw = tmp_path / "raw" / "ml100k"
    data = write_u_data(raw / "u.data").read_bytes()
    (raw / "u.data").write_bytes(corrupt(data, how, "\t", random.Random(1)))
    spec = config.prune(config.load(TEST_PARAMS), "make-tasks", dataset="ml100k")
    out = tmp_path / "tasks"
    with pytest.raises(RatingsError, match=r"u\.data, line \d+"):
        make_tasks.run(spec, "ml100k", str(out / "ml100k.parquet"), str(out / "ml100k.json"),
                       raw_dir=str(tmp_path / "raw"))
    assert not out.exists() or not any(out.iterdir()), "a failed run must leave nothing behind"
