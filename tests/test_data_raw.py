"""Locating, verifying, extracting and downloading raw files (the network is always faked)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from adjoint_meta.data import raw
from adjoint_meta.data.raw import MissingRawData, RawDataError

U_DATA = b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n"
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a URL fails the test unless a test installs its own fake."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"unexpected network access: {args}")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def make_zip(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def trust(monkeypatch, name: str, data: bytes) -> None:
    """Make the registry's official checksum that of ``data`` (a test archive)."""
    src = raw.SOURCES[name]
    arch = dataclasses.replace(src.archive, sha256=sha256(data), md5=hashlib.md5(data).hexdigest(), size=len(data))
    monkeypatch.setitem(raw.SOURCES, name, dataclasses.replace(src, archive=arch))


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


# -- registry ------------------------------------------------------------------
def test_registry():
    assert set(raw.SOURCES) == {"jester", "ml100k", "ml1m"}
    jester, ml100k, ml1m = (raw.SOURCES[k] for k in ("jester", "ml100k", "ml1m"))
    assert jester.url == "https://goldberg.berkeley.edu/jester-data/jester_dataset_1_1.zip"
    assert ml100k.url == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    assert ml1m.url == "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
    assert jester.archive.sha256 == "cb7841756ded125b15f3d95c9f8241224065e96354c132a46ae4214deeab7615"
    assert (jester.archive.member, ml100k.archive.member, ml1m.archive.member) == (
        "jester-data-1.xls", "ml-100k/u.data", "ml-1m/ratings.dat")
    assert set(jester.accepted) >= {"jester-data-1.xls", "jester-data-1.csv", "jester_dataset_1_1.zip",
                                    "jester-data-1.zip"}
    assert set(ml100k.accepted) == {"u.data", "ml-100k.zip"}
    assert set(ml1m.accepted) >= {"ratings.dat", "ml-1m.zip"}
    for src in raw.SOURCES.values():
        arch = src.archive
        assert arch.file == src.url.rsplit("/", 1)[1]
        assert arch.sha256 and len(arch.sha256) == 64 and int(arch.sha256, 16) >= 0
        assert arch.md5 is None or len(arch.md5) == 32


def test_checksums_live_only_in_the_registry():
    hashes = [a.sha256 for s in raw.SOURCES.values() for a in s.archives if a.sha256]
    hashes += [a.md5 for s in raw.SOURCES.values() for a in s.archives if a.md5]
    for path in SRC.rglob("*.py"):
        if path.name != "sources.py":  # the registry
            text = path.read_text()
            assert not [h for h in hashes if h in text], path


def test_unknown_dataset(tmp_path):
    with pytest.raises(RawDataError, match="unknown dataset 'netflix'"):
        raw.locate("netflix", tmp_path)


# -- locate ---------------------------------------------------------------------
def test_hand_placed_file_wins_and_no_network(tmp_path):
    d = tmp_path / "ml100k"
    d.mkdir()
    (d / "u.data").write_bytes(U_DATA)
    (d / "ml-100k.zip").write_bytes(b"not even a zip")  # would fail verification if it were looked at
    assert raw.locate("ml100k", tmp_path) == d / "u.data"
    assert raw.fetch("ml100k", tmp_path) == d / "u.data"  # urlopen refuses: no download happened
    assert listing(d) == ["ml-100k.zip", "u.data"]


def test_extracts_verified_archive_atomically(tmp_path, monkeypatch):
    data = make_zip({"ml-100k/README": b"readme", "ml-100k/u.data": U_DATA})
    trust(monkeypatch, "ml100k", data)
    d = tmp_path / "ml100k"
    d.mkdir()
    (d / "ml-100k.zip").write_bytes(data)
    path = raw.locate("ml100k", tmp_path)
    assert path == d / "u.data" and path.read_bytes() == U_DATA
    assert listing(d) == ["ml-100k.zip", "u.data"]  # only the member, no temporary left
    assert raw.locate("ml100k", tmp_path) == path


def test_jester_export_zip_found_by_base_name(tmp_path):
    d = tmp_path / "jester"
    d.mkdir()
    (d / "jester-data-1.zip").write_bytes(make_zip({"export/jester-data-1.csv": b"1,2\n"}))
    assert raw.locate("jester", tmp_path).read_bytes() == b"1,2\n"
    assert listing(d) == ["jester-data-1.csv", "jester-data-1.zip"]


def test_checksum_mismatch_names_file_and_hashes(tmp_path):
    d = tmp_path / "ml100k"
    d.mkdir()
    data = make_zip({"ml-100k/u.data": U_DATA})
    (d / "ml-100k.zip").write_bytes(data)
    with pytest.raises(RawDataError) as info:
        raw.locate("ml100k", tmp_path)
    msg = str(info.value)
    assert str(d / "ml-100k.zip") in msg and "sha256 mismatch" in msg
    assert raw.SOURCES["ml100k"].archive.sha256 in msg and sha256(data) in msg
    assert listing(d) == ["ml-100k.zip"]


def test_md5_is_checked_too(tmp_path, monkeypatch):
    data = make_zip({"ml-100k/u.data": U_DATA})
    trust(monkeypatch, "ml100k", data)
    src = raw.SOURCES["ml100k"]
    monkeypatch.setitem(raw.SOURCES, "ml100k",
                        dataclasses.replace(src, archive=dataclasses.replace(src.archive, md5="0" * 32)))
    (tmp_path / "ml100k").mkdir()
    (tmp_path / "ml100k" / "ml-100k.zip").write_bytes(data)
    with pytest.raises(RawDataError, match="md5 mismatch: expected 0{32}, got " + hashlib.md5(data).hexdigest()):
        raw.locate("ml100k", tmp_path)


def test_truncated_zip(tmp_path):
    d = tmp_path / "jester"
    d.mkdir()
    data = make_zip({"jester-data-1.csv": b"7,1.5,99\n" * 1000})
    (d / "jester-data-1.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(RawDataError, match="corrupt or truncated zip") as info:
        raw.locate("jester", tmp_path)
    assert str(d / "jester-data-1.zip") in str(info.value)
    assert listing(d) == ["jester-data-1.zip"]


def test_corrupt_member_leaves_no_partial_file(tmp_path):
    payload = b"7,1.5,99\n" * 30000  # several 64 KiB chunks are written before the CRC check
    data = bytearray(make_zip({"jester-data-1.csv": payload}, method=zipfile.ZIP_STORED))
    at = bytes(data).index(payload) + len(payload) - 10  # damage the end: CRC fails after writing began
    data[at] ^= 0xFF
    d = tmp_path / "jester"
    d.mkdir()
    (d / "jester-data-1.zip").write_bytes(bytes(data))
    with pytest.raises(RawDataError, match="corrupt or truncated zip"):
        raw.locate("jester", tmp_path)
    assert listing(d) == ["jester-data-1.zip"]


def test_member_missing_from_archive(tmp_path, monkeypatch):
    data = make_zip({"ml-100k/u.item": b"x"})
    trust(monkeypatch, "ml100k", data)
    (tmp_path / "ml100k").mkdir()
    (tmp_path / "ml100k" / "ml-100k.zip").write_bytes(data)
    with pytest.raises(RawDataError, match="no entry named 'ml-100k/u.data'"):
        raw.locate("ml100k", tmp_path)


def test_path_traversal_refused(tmp_path, monkeypatch):
    data = make_zip({"../u.data": U_DATA})
    trust(monkeypatch, "ml100k", data)
    d = tmp_path / "ml100k"
    d.mkdir()
    (d / "ml-100k.zip").write_bytes(data)
    with pytest.raises(RawDataError, match="unsafe member path"):
        raw.locate("ml100k", tmp_path)
    assert listing(tmp_path) == ["ml100k"] and listing(d) == ["ml-100k.zip"]


# -- fetch --------------------------------------------------------------------
def assert_missing_message(msg: str, name: str, directory: Path) -> None:
    src = raw.SOURCES[name]
    assert str(directory.resolve()) in msg and src.url in msg
    for fname in src.accepted:
        assert fname in msg


@pytest.mark.parametrize("name", ["jester", "ml100k", "ml1m"])
def test_offline_and_nothing_placed(tmp_path, name):
    with pytest.raises(MissingRawData) as info:
        raw.fetch(name, tmp_path, allow_network=False)
    assert_missing_message(str(info.value), name, tmp_path / name)
    assert "network access disabled" in str(info.value)
    with pytest.raises(MissingRawData):
        raw.locate(name, tmp_path)


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes, fail_after: int | None = None):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}
        self.fail_after = fail_after

    def read(self, n: int = -1) -> bytes:
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        return super().read(n if n and n > 0 else -1)


def serve(monkeypatch, data: bytes, fail_after: int | None = None) -> list[str]:
    calls: list[str] = []

    def urlopen(url, timeout=None):
        calls.append(url)
        return FakeResponse(data, fail_after)
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return calls


def test_download_verify_extract(tmp_path, monkeypatch):
    data = make_zip({"ml-100k/u.data": U_DATA * 5000})
    trust(monkeypatch, "ml100k", data)
    calls = serve(monkeypatch, data)
    messages: list[str] = []
    path = raw.fetch("ml100k", tmp_path, progress=messages.append)
    assert calls == [raw.SOURCES["ml100k"].url]
    assert path == tmp_path / "ml100k" / "u.data" and path.read_bytes() == U_DATA * 5000
    assert listing(tmp_path / "ml100k") == ["ml-100k.zip", "u.data"]
    assert any("downloading" in m for m in messages) and any("verified" in m for m in messages)
    assert raw.fetch("ml100k", tmp_path) == path and len(calls) == 1  # second call: no network


def test_download_with_wrong_checksum_keeps_nothing(tmp_path, monkeypatch):
    serve(monkeypatch, make_zip({"ml-1m/ratings.dat": b"1::2::3::4\n"}))
    with pytest.raises(MissingRawData) as info:
        raw.fetch("ml1m", tmp_path)
    msg = str(info.value)
    assert "download failed" in msg and "sha256 mismatch" in msg
    assert_missing_message(msg, "ml1m", tmp_path / "ml1m")
    assert listing(tmp_path / "ml1m") == []


def test_interrupted_download_keeps_nothing(tmp_path, monkeypatch):
    data = make_zip({"ml-100k/u.data": U_DATA * 20000})
    trust(monkeypatch, "ml100k", data)
    serve(monkeypatch, data, fail_after=len(data) // 2)
    with pytest.raises(MissingRawData, match="connection reset"):
        raw.fetch("ml100k", tmp_path)
    assert listing(tmp_path / "ml100k") == []


def test_unreachable_server(tmp_path, monkeypatch):
    def urlopen(url, timeout=None):
        raise urllib.error.URLError("Name or service not known")
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(MissingRawData) as info:
        raw.fetch("jester", tmp_path)
    assert "Name or service not known" in str(info.value)
    assert_missing_message(str(info.value), "jester", tmp_path / "jester")
    assert listing(tmp_path / "jester") == []


def test_corrupt_placed_archive_is_not_replaced_by_download(tmp_path):
    d = tmp_path / "ml1m"
    d.mkdir()
    (d / "ml-1m.zip").write_bytes(b"garbage")
    with pytest.raises(RawDataError, match="sha256 mismatch"):
        raw.fetch("ml1m", tmp_path)  # urlopen refuses: fetch must not have tried
    assert listing(d) == ["ml-1m.zip"]


# -- manifest -------------------------------------------------------------------
def test_manifest(tmp_path):
    path = tmp_path / "u.data"
    path.write_bytes(U_DATA)
    m = raw.manifest("ml100k", path)
    assert m["file"] == str(path) and m["bytes"] == len(U_DATA) and m["sha256"] == sha256(U_DATA)
    assert m["known_sha256"] == raw.SOURCES["ml100k"].known["u.data"] and m["matches_known"] is False
    other = tmp_path / "ratings.dat"
    other.write_bytes(b"1::2::3::4\n")
    assert raw.manifest("ml1m", other)["matches_known"] is None


def test_place_copies_fills_only_what_is_missing(tmp_path):
    """A directory of local copies fills data/raw/<source>/ where nothing usable is present;
    a file already placed is never replaced; a partial ML-1M copy is taken under ratings.dat.gz."""
    import gzip

    copies = tmp_path / "copies"
    (copies / "ml-100k").mkdir(parents=True)
    (copies / "ml-100k" / "u.data").write_text("1\t1\t5\t1\n")
    (copies / "ml-1m-sample").mkdir()
    with gzip.open(copies / "ml-1m-sample" / "ratings-users-1-9.dat.gz", "wt") as fh:
        fh.write("1::1::5::1\n")
    raw_dir = tmp_path / "raw"
    (raw_dir / "ml100k").mkdir(parents=True)
    (raw_dir / "ml100k" / "u.data").write_text("2\t2\t3\t1\n")  # placed by hand earlier
    placed = raw.place_copies(copies, raw_dir, ["jester", "ml100k", "ml1m"])
    assert placed["jester"] is None
    assert (raw_dir / "ml100k" / "u.data").read_text() == "2\t2\t3\t1\n"
    assert placed["ml1m"] == raw_dir / "ml1m" / "ratings.dat.gz"
    assert not [p for p in (raw_dir / "ml1m").iterdir() if p.name.startswith(".")]
