"""Hostile raw data: corrupted versions of every raw format (the text files, the .xls sheet, gzip and
zip containers) either load correctly or stop with an error naming the file (and the line or sheet
row); nothing else escapes, and the task-building step leaves no partial output behind."""
from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import TEST_PARAMS, write_u_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_data_ratings import ML1M, csv_text, jester_rows

from adjoint_meta import config, make_tasks
from adjoint_meta.data import ratings
from adjoint_meta.data.ratings import RatingsError

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
        assert exc.path == str(path), f"error does not name the file: {exc}"
        whole_file = "empty file" in str(exc)  # the only problem that has no line
        assert whole_file or (exc.where or "").startswith("line "), f"error does not name the line: {exc}"
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


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
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


# ---------------------------------------------------------------- the container formats
# the official .xls sheet, a gzip of ratings.dat, and a zip holding a ratings file: damaged bytes,
# and (for the sheet) damaged cells, either load correctly or stop naming the file (and the row)
BYTE_DAMAGE = ["truncate", "flip_bytes", "zero_block", "insert_bytes"]


def damage(data: bytes, how: str, rng: random.Random) -> bytes:
    at = rng.randrange(1, len(data))
    if how == "truncate":
        return data[:at]
    if how == "flip_bytes":
        out = bytearray(data)
        for i in rng.sample(range(len(out)), k=min(8, len(out))):
            out[i] ^= 1 << rng.randrange(8)
        return bytes(out)
    if how == "zero_block":
        return data[:at] + b"\0" * min(64, len(data) - at) + data[at + 64:]
    return data[:at] + bytes(rng.randrange(256) for _ in range(16)) + data[at:]


def loads_correctly_or_names(path, read, exc_type=RatingsError) -> None:
    try:
        frame = read()
    except exc_type as exc:
        assert str(path) in str(exc), f"error does not name the file: {exc}"
        return
    assert {"user", "item", "rating"} <= set(frame.columns)
    assert np.isfinite(frame["rating"]).all() and not frame.duplicated(["user", "item"]).any()


def container(kind: str, tmp_path) -> tuple[str, bytes]:
    """(file name, valid bytes) of each container format."""
    import gzip
    import io
    import zipfile

    from test_data_ratings import write_xls

    if kind == "xls":
        return "jester-data-1.xls", write_xls(tmp_path, jester_rows(6), "valid.xls").read_bytes()
    if kind == "gz":
        return "ratings.dat.gz", gzip.compress((ML1M * 3).encode())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("jester-data-1.csv", csv_text(jester_rows(6)))
    return "jester-data-1.zip", buf.getvalue()


@pytest.mark.parametrize("kind", ["xls", "gz", "zip"])
@pytest.mark.parametrize("how", BYTE_DAMAGE)
def test_damaged_bytes_of_each_container(kind, how, tmp_path):
    from adjoint_meta.data import raw

    name, data = container(kind, tmp_path)
    for trial in range(6):
        folder = tmp_path / f"t{trial}" / "jester"
        folder.mkdir(parents=True)
        path = folder / name
        path.write_bytes(damage(data, how, random.Random(trial)))
        if kind == "zip":  # unpacking names the archive; a member that does unpack is then parsed
            try:
                member = raw.locate("jester", folder.parent)
            except raw.RawDataError as exc:
                assert str(path) in str(exc), exc
                assert [p.name for p in folder.iterdir()] == [name], "a failed unpack leaves nothing behind"
                continue
            loads_correctly_or_names(member, lambda member=member: ratings.read("jester", member))
        else:
            loads_correctly_or_names(path, lambda path=path: ratings.read("ml1m" if kind == "gz" else "jester", path))


CELL_DAMAGE = ["NaN", "1e400", "", "abc", -11.0, 10.5, 99.5, None, "extra_column", "missing_column"]


@pytest.mark.parametrize("bad", CELL_DAMAGE, ids=[repr(b) for b in CELL_DAMAGE])
def test_damaged_cells_of_the_sheet_are_named_by_row(bad, tmp_path):
    from test_data_ratings import write_xls

    for trial in range(3):
        rng = random.Random(trial)
        rows = jester_rows(6, seed=trial)
        r = rng.randrange(len(rows))
        if bad == "extra_column":
            rows[r] = rows[r] + [1.0]
        elif bad == "missing_column":
            rows[r] = rows[r][:-1]
        else:
            rows[r][rng.randrange(1, len(rows[r]))] = bad
        path = write_xls(tmp_path, rows, f"bad{trial}.xls")
        with pytest.raises(RatingsError) as info:
            ratings.read("jester", path)
        assert f"{path}, sheet row {r + 1}:" in str(info.value), str(info.value)
