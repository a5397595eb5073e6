"""Strict parsing of the three raw rating formats (small files written here; no network)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from adjoint_meta.data import ratings
from adjoint_meta.data.ratings import RatingsError

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n244\t51\t2\t880606923\n"
ML1M = "1::1193::5::978300760\n1::661::3::978302109\n2::914::3::978301968\n"


def jester_rows(n_users: int = 4, seed: int = 0) -> list[list[float]]:
    """Valid Jester rows: count, then 100 ratings in [-10, 10] or 99."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        cells = np.round(rng.uniform(-10, 10, 100), 2)
        cells[rng.random(100) < 0.3 + 0.1 * u] = 99
        if u == 0:
            cells[:] = np.round(rng.uniform(-10, 10, 100), 2)  # a user who rated all jokes
        rows.append([float((cells != 99).sum()), *cells.tolist()])
    return rows


def csv_text(rows: list[list[float]]) -> str:
    return "".join(",".join(f"{v:g}" for v in row) + "\n" for row in rows)


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def write_xls(tmp_path: Path, rows: list[list[object]], name: str = "jester-data-1.xls") -> Path:
    xlwt = pytest.importorskip("xlwt", reason="xlwt (test-only) writes the small .xls files")
    book = xlwt.Workbook()
    sheet = book.add_sheet("jester-data-1")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value is not None:
                sheet.write(r, c, value)
    path = tmp_path / name
    book.save(str(path))
    return path


def raises_at(name: str, path: Path, where: str, *words: str) -> RatingsError:
    with pytest.raises(RatingsError) as info:
        ratings.read(name, path)
    msg = str(info.value)
    assert str(path) in msg and where in msg, msg
    for w in words:
        assert w in msg, msg
    return info.value


# -- formats parse -----------------------------------------------------------
def test_u_data_parses(tmp_path):
    table = ratings.read("ml100k", write(tmp_path, "u.data", U_DATA))
    assert list(table.columns) == ["user", "item", "rating"]
    assert table.dtypes.astype(str).tolist() == ["int64", "int64", "float64"]
    assert table.values.tolist() == [[196, 242, 3], [186, 302, 3], [22, 377, 1], [244, 51, 2]]


def test_u_data_crlf_and_missing_final_newline(tmp_path):
    text = U_DATA.replace("\n", "\r\n").rstrip("\r\n")
    assert len(ratings.read("ml100k", write(tmp_path, "u.data", text))) == 4


def test_ratings_dat_and_gzip(tmp_path):
    plain = ratings.read("ml1m", write(tmp_path, "ratings.dat", ML1M))
    packed = ratings.read("ml1m", write(tmp_path, "ratings.dat.gz", gzip.compress(ML1M.encode())))
    assert plain.equals(packed)
    assert plain.values.tolist() == [[1, 1193, 5], [1, 661, 3], [2, 914, 3]]


def test_jester_csv_parses(tmp_path):
    rows = jester_rows()
    table = ratings.read("jester", write(tmp_path, "jester-data-1.csv", csv_text(rows)))
    assert len(table) == sum(int(r[0]) for r in rows)
    assert table["item"].between(0, 99).all() and table["rating"].between(-10, 10).all()
    assert table["user"].min() == 1 and table["user"].max() == len(rows)
    first = table[table["user"] == 1]
    assert first["item"].tolist() == list(range(100))
    assert np.allclose(first["rating"], rows[0][1:])


def test_jester_xls_matches_csv(tmp_path):
    rows = jester_rows()
    from_xls = ratings.read("jester", write_xls(tmp_path, rows))
    from_csv = ratings.read("jester", write(tmp_path, "jester-data-1.csv", csv_text(rows)))
    assert from_xls.equals(from_csv)


def test_jester_xls_numeric_text_cells_accepted(tmp_path):
    rows = jester_rows(2)
    rows[1][5] = f"{rows[1][5]:g}"
    assert len(ratings.read("jester", write_xls(tmp_path, rows))) == sum(int(r[0]) for r in jester_rows(2))


def test_byte_order_mark_is_ignored(tmp_path):
    assert len(ratings.read("ml100k", write(tmp_path, "u.data", b"\xef\xbb\xbf" + U_DATA.encode()))) == 4


# -- MovieLens errors ----------------------------------------------------------
BAD_U_DATA = [
    ("commas", U_DATA.replace("186\t302\t3\t891717742", "186,302,3,891717742"), "line 2", ["expected 4 columns",
                                                                                           "TAB"]),
    ("extra column", U_DATA.replace("891717742", "891717742\t7"), "line 2", ["5 column(s)"]),
    ("blank line", U_DATA.replace("\n22", "\n\n22"), "line 3", ["blank line"]),
    ("blank line at end", U_DATA + "\n", "line 5", ["blank line"]),
    ("non-numeric", U_DATA.replace("\t377\t", "\tabc\t"), "line 3", ["column 2", "'abc'", "not a number"]),
    ("empty field", U_DATA.replace("\t377\t", "\t\t"), "line 3", ["column 2", "empty"]),
    ("nan", U_DATA.replace("\t1\t878887116", "\tnan\t878887116"), "line 3", ["column 3", "not a finite number"]),
    ("inf", U_DATA.replace("\t2\t880606923", "\tinf\t880606923"), "line 4", ["column 3", "not a finite number"]),
    ("rating 6", U_DATA.replace("\t1\t878887116", "\t6\t878887116"), "line 3", ["rating 6", "1..5"]),
    ("rating 0", U_DATA.replace("\t2\t880606923", "\t0\t880606923"), "line 4", ["rating 0"]),
    ("rating 3.5", U_DATA.replace("\t1\t878887116", "\t3.5\t878887116"), "line 3", ["rating 3.5"]),
    ("user 0", U_DATA.replace("22\t377", "0\t377"), "line 3", ["user id 0"]),
    ("item 2.5", U_DATA.replace("\t377\t", "\t2.5\t"), "line 3", ["item id 2.5"]),
    ("duplicate", U_DATA + "186\t302\t5\t891717799\n", "line 5", ["duplicate", "item 302", "user 186", "line 2"]),
    ("stray CR", U_DATA.replace("\t377\t", "\t377\r\t"), "line 3", ["carriage return"]),
]


@pytest.mark.parametrize("text, where, words", [c[1:] for c in BAD_U_DATA], ids=[c[0] for c in BAD_U_DATA])
def test_u_data_errors(tmp_path, text, where, words):
    raises_at("ml100k", write(tmp_path, "u.data", text), where, *words)


def test_non_utf8_bytes(tmp_path):
    data = U_DATA.encode().replace(b"22\t377", b"2\xff\t377")
    raises_at("ml100k", write(tmp_path, "u.data", data), "line 3", "not UTF-8")


@pytest.mark.parametrize("content", ["", "\n\n  \n"], ids=["zero bytes", "whitespace"])
def test_empty_file(tmp_path, content):
    with pytest.raises(RatingsError, match="empty file") as info:
        ratings.read("ml100k", write(tmp_path, "u.data", content))
    assert str(tmp_path / "u.data") in str(info.value)


def test_ratings_dat_errors(tmp_path):
    raises_at("ml1m", write(tmp_path, "ratings.dat", ML1M.replace("1::661::3", "1::661:3")), "line 2",
              "expected 4 columns")
    raises_at("ml1m", write(tmp_path, "ratings.dat", ML1M.replace("2::914::3", "2\t914\t3")), "line 3",
              "2 column(s)")
    raises_at("ml1m", write(tmp_path, "ratings.dat", ML1M.replace("::661::", "::66x::")), "line 2", "'66x'")
    gz = write(tmp_path, "ratings.dat.gz", gzip.compress((ML1M + "2::914::4::978301999\n").encode()))
    raises_at("ml1m", gz, "line 4", "duplicate", "line 3")


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(RatingsError, match="no such file"):
        ratings.read("ml100k", tmp_path / "u.data")
    with pytest.raises(ValueError, match="unknown ratings format"):
        ratings.read("netflix", write(tmp_path, "u.data", U_DATA))


# -- Jester errors -------------------------------------------------------------
def jester_case(kind: str) -> tuple[list[list[object]], int, list[str]]:
    """Rows with one defect at 0-based row 2, and words the message must contain."""
    rows: list[list[object]] = jester_rows()
    if kind == "count":
        rows[2][0] = float(rows[2][0]) + 1
        return rows, 2, ["column 1 says", "jokes were rated"]
    if kind == "above 10":
        rows[2][8] = 10.5
        return rows, 2, ["column 9", "joke 7", "10.5"]
    if kind == "below -10":
        rows[2][1] = -11.0
        return rows, 2, ["column 2", "joke 0", "-11"]
    if kind == "98":
        rows[2][100] = 98.0
        return rows, 2, ["column 101", "joke 99"]
    if kind == "count not integer":
        rows[2][0] = 50.5
        return rows, 2, ["column 1", "50.5"]
    raise AssertionError(kind)


JESTER_KINDS = ["count", "above 10", "below -10", "98", "count not integer"]


@pytest.mark.parametrize("kind", JESTER_KINDS)
def test_jester_csv_content_errors(tmp_path, kind):
    rows, row, words = jester_case(kind)
    raises_at("jester", write(tmp_path, "jester-data-1.csv", csv_text(rows)), f"line {row + 1}", *words)


@pytest.mark.parametrize("kind", JESTER_KINDS)
def test_jester_xls_content_errors(tmp_path, kind):
    rows, row, words = jester_case(kind)
    raises_at("jester", write_xls(tmp_path, rows), f"sheet row {row + 1}", *words)


def test_jester_csv_format_errors(tmp_path):
    text = csv_text(jester_rows()).splitlines(keepends=True)
    short = text[:1] + [text[1].rsplit(",", 1)[0] + "\n"] + text[2:]
    raises_at("jester", write(tmp_path, "a.csv", "".join(short)), "line 2", "expected 101 columns", "100 column(s)")
    semi = text[:2] + [text[2].replace(",", ";")] + text[3:]
    raises_at("jester", write(tmp_path, "b.csv", "".join(semi)), "line 3", "1 column(s)")
    fields = text[3].split(",")
    fields[5] = "NaN"
    nan = text[:3] + [",".join(fields)] + text[4:]
    raises_at("jester", write(tmp_path, "c.csv", "".join(nan)), "line 4", "column 6", "'NaN'",
              "not a finite number")


def test_jester_xls_format_errors(tmp_path):
    rows: list[list[object]] = jester_rows()
    rows[1] = rows[1][:100]
    raises_at("jester", write_xls(tmp_path, rows, "a.xls"), "sheet row 2", "expected 101 columns, found 100")
    rows = jester_rows()
    rows[3][40] = "n/a"
    raises_at("jester", write_xls(tmp_path, rows, "b.xls"), "sheet row 4", "column 41", "'n/a'", "not a number")
    rows = jester_rows()
    rows[2][40] = None  # a hole in the middle of the row
    raises_at("jester", write_xls(tmp_path, rows, "c.xls"), "sheet row 3", "column 41", "empty cell")
    rows = jester_rows()
    rows[0][3] = "inf"
    raises_at("jester", write_xls(tmp_path, rows, "d.xls"), "sheet row 1", "not a finite number")


def test_jester_xls_damaged_or_empty(tmp_path):
    with pytest.raises(RatingsError, match="empty file"):
        ratings.read("jester", write(tmp_path, "jester-data-1.xls", b""))
    with pytest.raises(RatingsError, match="not a readable .xls workbook") as info:
        ratings.read("jester", write(tmp_path, "x.xls", b"this is not a workbook" * 40))
    assert "x.xls" in str(info.value)
    good = write_xls(tmp_path, jester_rows(), "good.xls").read_bytes()
    with pytest.raises(RatingsError, match="not a readable .xls workbook"):
        ratings.read("jester", write(tmp_path, "cut.xls", good[: len(good) // 2]))
