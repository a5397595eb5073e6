"""Strict parsers of the raw rating files: each gives a table ``user, item, rating``.  The
sources registry (``adjoint_meta.data.sources``) names the parser of each source.

Formats:

* ``ml100k`` -- ``u.data``: ``user<TAB>item<TAB>rating<TAB>timestamp``.
* ``ml1m`` -- ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp`` (a gzip of it is accepted).
* ``jester`` -- ``jester-data-1.xls`` (first sheet) or its comma-separated export
  ``jester-data-1.csv``: one row per user, no header, 101 columns; column 1 is the
  number of jokes the user rated, columns 2..101 the ratings of jokes 0..99 in
  [-10, 10], the value 99 meaning "not rated".  The user id is the 1-based row.

Output: ``user`` and ``item`` int64 (the original ids; the 0-based joke index
for Jester), ``rating`` float64.  MovieLens ratings must be integers 1..5.

Every problem raises RatingsError naming the file and the 1-based line (sheet
row for .xls) of the first offending record: wrong column count, non-numeric
or non-finite field, value out of range, duplicate (user, item), empty file,
bytes that are not UTF-8, a Jester count that disagrees with its row.  Files
are parsed with vectorized numpy/pandas; a slow scan runs only to pinpoint an
error already known to exist.
"""
from __future__ import annotations

import csv
import gzip
import io
import math
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from adjoint_meta.data.sources import SOURCES

JESTER_UNRATED = 99.0

_BOM = b"\xef\xbb\xbf"
_UNIT_SEP = b"\x1f"  # stands in for a multi-character separator while parsing

Where = Callable[[int], str]  # 0-based record index -> "line 5" / "sheet row 5"


class RatingsError(ValueError):
    """A raw rating file that does not have the expected format or contents."""

    def __init__(self, path: str | Path, message: str, where: str | None = None):
        self.path, self.where = str(path), where
        super().__init__(f"{path}, {where}: {message}" if where else f"{path}: {message}")


def _line(i: int) -> str:
    return f"line {i + 1}"


def _sheet_row(i: int) -> str:
    return f"sheet row {i + 1}"


# -- delimited text ----------------------------------------------------------
def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:2] == b"\x1f\x8b":  # gzip magic, whatever the suffix
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:  # zlib.error: damaged compressed blocks
            raise RatingsError(path, f"corrupt gzip data ({exc})") from exc
    return data


def _check_text(path: Path, data: bytes) -> bytes:
    """UTF-8 text that is not empty; a byte-order mark is dropped."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RatingsError(path, f"bytes that are not UTF-8 ({data[exc.start:exc.end]!r})",
                           _line(data.count(b"\n", 0, exc.start))) from None
    data = data.removeprefix(_BOM)
    if not data.strip():
        raise RatingsError(path, "empty file (no ratings)")
    return data


def _line_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of each line (a final newline does not open a new line)."""
    ends = np.flatnonzero(buf == ord("\n"))
    if len(buf) and buf[-1] != ord("\n"):
        ends = np.append(ends, len(buf))
    starts = np.concatenate([[0], ends[:-1] + 1])
    return starts, ends


def _check_layout(path: Path, data: bytes, sep: bytes, n_fields: int, sep_name: str) -> int:
    """Every line has exactly ``n_fields`` fields and no stray carriage return; returns the line count."""
    buf = np.frombuffer(data, dtype=np.uint8)
    starts, ends = _line_bounds(buf)
    cr = np.flatnonzero(buf == ord("\r"))
    after = cr + 1  # a "\r" must end its line ("\r\n", or the very end of the file)
    stray = cr[(after < len(buf)) & (buf[np.minimum(after, len(buf) - 1)] != ord("\n"))]
    if stray.size:
        raise RatingsError(path, "carriage return inside a line", _line(int(np.searchsorted(ends, stray[0]))))
    seps = np.flatnonzero(buf == sep[0])
    counts = np.searchsorted(seps, ends) - np.searchsorted(seps, starts) + 1
    bad = np.flatnonzero(counts != n_fields)
    if bad.size:
        i = int(bad[0])
        text = data[starts[i]:ends[i]].rstrip(b"\r")
        what = "blank line" if not text.strip() else f"{counts[i]} column(s)"
        raise RatingsError(path, f"expected {n_fields} columns separated by {sep_name}, found {what}", _line(i))
    return len(starts)


def _first_bad_field(path: Path, data: bytes, sep: str, n_fields: int) -> RatingsError:
    """Locate the first field that is not a finite number (slow path, run only after a failure)."""
    frame = pd.read_csv(io.BytesIO(data), sep=sep, header=None, names=range(n_fields), dtype=str,
                        engine="c", quoting=csv.QUOTE_NONE, skip_blank_lines=False, na_filter=False)
    best: tuple[int, int] | None = None
    for col in range(n_fields):
        num = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
        rows = np.flatnonzero(~np.isfinite(num))
        if rows.size and (best is None or rows[0] < best[0]):
            best = (int(rows[0]), col)
    if best is None:  # pragma: no cover - the fast path failed for a reason not found here
        return RatingsError(path, "could not be parsed as numbers")
    row, col = best
    text = frame.iat[row, col]
    try:
        float(text)
        why = "not a finite number"
    except ValueError:
        why = "empty" if not text.strip() else "not a number"
    return RatingsError(path, f"column {col + 1} is {text!r}: {why}", _line(row))


def read_delimited(path: str | Path, sep: str, n_fields: int) -> np.ndarray:
    """All fields of a delimited numeric text file as float64 ``[n_lines, n_fields]``, strictly."""
    path = Path(path)
    data = _check_text(path, _read_bytes(path))
    sep_b = sep.encode()
    if len(sep_b) > 1:
        if _UNIT_SEP in data:
            raise RatingsError(path, "control character 0x1f in the data",
                               _line(data.count(b"\n", 0, data.index(_UNIT_SEP))))
        data, sep_b = data.replace(sep_b, _UNIT_SEP), _UNIT_SEP
    sep_name = {"\t": "TAB", ",": "commas"}.get(sep, repr(sep))
    n_lines = _check_layout(path, data, sep_b, n_fields, sep_name)
    try:
        frame = pd.read_csv(io.BytesIO(data), sep=sep_b.decode(), header=None, names=range(n_fields),
                            dtype=np.float64, engine="c", quoting=csv.QUOTE_NONE, skip_blank_lines=False,
                            na_filter=False)
        values = frame.to_numpy(dtype=np.float64)
    except ValueError:
        values = None
    if values is None or not np.isfinite(values).all():
        raise _first_bad_field(path, data, sep_b.decode(), n_fields)
    if len(values) != n_lines:  # pragma: no cover - guarded by _check_layout
        raise RatingsError(path, f"parsed {len(values)} records from {n_lines} lines")
    return values


# -- spreadsheet ---------------------------------------------------------------
def _cell_number(path: Path, ctype: int, value: object, row: int, col: int) -> float:
    import xlrd

    if ctype == xlrd.XL_CELL_NUMBER:
        return float(value)
    if ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
        raise RatingsError(path, f"column {col + 1} is an empty cell", _sheet_row(row))
    if ctype == xlrd.XL_CELL_TEXT:
        try:
            number = float(str(value))
        except ValueError:
            raise RatingsError(path, f"column {col + 1} is {value!r}: not a number", _sheet_row(row)) from None
        if math.isfinite(number):
            return number
        raise RatingsError(path, f"column {col + 1} is {value!r}: not a finite number", _sheet_row(row))
    raise RatingsError(path, f"column {col + 1} holds a non-numeric cell ({value!r})", _sheet_row(row))


def read_sheet(path: str | Path, n_cols: int) -> np.ndarray:
    """The first sheet of an .xls workbook as float64 ``[n_rows, n_cols]``, strictly."""
    import xlrd

    path = Path(path)
    if path.stat().st_size == 0:
        raise RatingsError(path, "empty file (no ratings)")
    try:
        book = xlrd.open_workbook(str(path), ragged_rows=True)
    except Exception as exc:  # xlrd raises XLRDError, struct/assertion errors... on damaged files
        raise RatingsError(path, f"not a readable .xls workbook ({type(exc).__name__}: {exc})") from exc
    sheet = book.sheet_by_index(0)
    if sheet.nrows == 0:
        raise RatingsError(path, "empty sheet (no ratings)")
    out = np.empty((sheet.nrows, n_cols), dtype=np.float64)
    number = xlrd.XL_CELL_NUMBER
    for r in range(sheet.nrows):
        if sheet.row_len(r) != n_cols:
            raise RatingsError(path, f"expected {n_cols} columns, found {sheet.row_len(r)}", _sheet_row(r))
        types, values = sheet.row_types(r), sheet.row_values(r)
        if types.count(number) == n_cols:
            out[r] = values
        else:
            out[r] = [_cell_number(path, t, v, r, c) for c, (t, v) in enumerate(zip(types, values))]
    return out


# -- contents ----------------------------------------------------------------
def _fail_first(path: Path, bad: np.ndarray, where: Where, message: Callable[[int], str]) -> None:
    """Raise for the first True of ``bad`` (a boolean mask over records), if any."""
    idx = np.flatnonzero(bad)
    if idx.size:
        i = int(idx[0])
        raise RatingsError(path, message(i), where(i))


def _is_int(x: np.ndarray) -> np.ndarray:
    return np.floor(x) == x


def _movielens(path: Path, values: np.ndarray, scale: tuple[float, float]) -> pd.DataFrame:
    """Check user/item/rating/timestamp records and keep the first three columns."""
    user, item, rating, stamp = values.T
    lo, hi = scale
    _fail_first(path, ~(_is_int(user) & (user >= 1)), _line, lambda i: f"user id {user[i]:g} is not a positive integer")
    _fail_first(path, ~(_is_int(item) & (item >= 1)), _line, lambda i: f"item id {item[i]:g} is not a positive integer")
    _fail_first(path, ~(_is_int(rating) & (rating >= lo) & (rating <= hi)), _line,
                lambda i: f"rating {rating[i]:g} is not an integer in {lo}..{hi}")
    _fail_first(path, ~(_is_int(stamp) & (stamp >= 0)), _line,
                lambda i: f"timestamp {stamp[i]:g} is not a non-negative integer")
    table = pd.DataFrame({"user": user.astype(np.int64), "item": item.astype(np.int64), "rating": rating})
    _check_unique(path, table, _line)
    return table


def _check_unique(path: Path, table: pd.DataFrame, where: Where) -> None:
    dup = table.duplicated(["user", "item"], keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        u, it = table["user"].iat[i], table["item"].iat[i]
        first = int(np.flatnonzero((table["user"].to_numpy() == u) & (table["item"].to_numpy() == it))[0])
        raise RatingsError(path, f"duplicate rating of item {it} by user {u} (first at {where(first)})", where(i))


def _jester(path: Path, values: np.ndarray, where: Where) -> pd.DataFrame:
    """Check the Jester matrix (count column + 100 joke columns) and return the rated cells."""
    count, cells = values[:, 0], values[:, 1:]
    lo, hi = SOURCES["jester"].scale
    ok = ((cells >= lo) & (cells <= hi)) | (cells == JESTER_UNRATED)
    bad_row = ~ok.all(axis=1)

    def cell_message(i: int) -> str:
        j = int(np.flatnonzero(~ok[i])[0])
        return (f"column {j + 2} (joke {j}) is {cells[i, j]:g}: outside [{lo:g}, {hi:g}] and not "
                f"{JESTER_UNRATED:g} (not rated)")

    _fail_first(path, bad_row, where, cell_message)
    rated = cells != JESTER_UNRATED
    n_rated = rated.sum(axis=1)
    _fail_first(path, ~(_is_int(count) & (count >= 0) & (count <= cells.shape[1])), where,
                lambda i: f"column 1 (number of jokes rated) is {count[i]:g}, not an integer in 0..{cells.shape[1]}")
    _fail_first(path, count != n_rated, where,
                lambda i: f"column 1 says {count[i]:g} jokes were rated but {n_rated[i]} cells are not "
                          f"{JESTER_UNRATED:g}")
    rows, jokes = np.nonzero(rated)
    return pd.DataFrame({"user": rows.astype(np.int64) + 1, "item": jokes.astype(np.int64),
                         "rating": cells[rows, jokes].astype(np.float64)})


def movielens_100k(path: Path) -> pd.DataFrame:
    """``u.data``: ``user<TAB>item<TAB>rating<TAB>timestamp``."""
    return _movielens(path, read_delimited(path, "\t", 4), SOURCES["ml100k"].scale)


def movielens_1m(path: Path) -> pd.DataFrame:
    """``ratings.dat`` (or its gzip): ``UserID::MovieID::Rating::Timestamp``."""
    return _movielens(path, read_delimited(path, "::", 4), SOURCES["ml1m"].scale)


def jester(path: Path) -> pd.DataFrame:
    """``jester-data-1.xls`` (first sheet) or its comma-separated export."""
    columns = SOURCES["jester"].all_items + 1  # the count, then one column per joke
    if path.suffix.lower() == ".xls":
        return _jester(path, read_sheet(path, columns), _sheet_row)
    return _jester(path, read_delimited(path, ",", columns), _line)


def read(name: str, path: str | Path) -> pd.DataFrame:
    """The ratings of raw source ``name`` (``adjoint_meta.data.sources``) in file ``path``."""
    path = Path(path)
    if not path.is_file():
        raise RatingsError(path, "no such file")
    if name not in SOURCES:
        raise ValueError(f"unknown ratings format {name!r}; known: {', '.join(SOURCES)}")
    parser = globals().get(SOURCES[name].parse)  # the registry names a function of this module
    if not callable(parser):
        raise ValueError(f"sources.SOURCES[{name!r}].parse: {SOURCES[name].parse!r} is not a parser in {__name__}")
    return parser(path)
