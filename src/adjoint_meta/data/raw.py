"""Raw collaborative-filtering data: where each dataset comes from, and how to get a verified copy.

Layout: the files of dataset ``<name>`` live in ``<raw_dir>/<name>/`` (``raw_dir``
is the root, normally ``data/raw``).  A ratings file placed there by hand is
used as it is; an archive is verified against its published checksum and the
ratings file is extracted beside it; only when nothing usable is present does
:func:`fetch` download the official archive.

Every source, with its files and checksums, is an entry of the registry
``adjoint_meta.data.sources.SOURCES`` and nowhere else.
"""
from __future__ import annotations

import hashlib
import http.client
import shutil
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from adjoint_meta.data.sources import SOURCES, Archive, Source
from adjoint_meta.io import atomic_path, digests

Progress = Callable[[str], None]

_CHUNK = 1 << 16
_TIMEOUT_S = 60


class RawDataError(ValueError):
    """A raw data file that is missing, corrupt, or not the published one."""


class MissingRawData(RawDataError):
    """No usable raw file is present (and none could be downloaded)."""


def source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise RawDataError(f"unknown dataset {name!r}; known: {', '.join(sorted(SOURCES))}") from None


def source_dir(name: str, raw_dir: str | Path) -> Path:
    """The directory that holds dataset ``name``'s raw files: ``<raw_dir>/<name>``."""
    return Path(raw_dir) / source(name).name


# -- checksums --------------------------------------------------------------
def _check_digests(label: str, archive: Archive, actual: dict[str, str], url: str) -> None:
    for algo in ("sha256", "md5"):
        expected = getattr(archive, algo)
        if expected and actual[algo] != expected.lower():
            raise RawDataError(
                f"{label}: {algo} mismatch: expected {expected}, got {actual[algo]}. It is not the "
                f"published {archive.file} ({url}); delete it and place or download the original.")


def verify(name: str, path: str | Path) -> None:
    """Raise RawDataError unless ``path`` matches the checksums of the archive of that file name."""
    src, path = source(name), Path(path)
    for arch in src.archives:
        if arch.file == path.name and arch.verified:
            _check_digests(str(path), arch, digests(path), src.url)


# -- locating and extracting ------------------------------------------------
def _safe_member(zpath: Path, zf: zipfile.ZipFile, member: str) -> zipfile.ZipInfo:
    """The zip entry ``member`` (or the only entry with its base name), refusing unsafe paths."""
    base = PurePosixPath(member).name
    entries = [i for i in zf.infolist() if not i.is_dir()]
    exact = [i for i in entries if i.filename == member]
    hits = exact or [i for i in entries if PurePosixPath(i.filename.replace("\\", "/")).name == base]
    if len(hits) != 1:
        what = "no entry" if not hits else f"{len(hits)} entries"
        raise RawDataError(f"{zpath}: {what} named {member!r} (or {base!r}) in the archive; "
                           f"it holds {[i.filename for i in entries][:10]}")
    parts = PurePosixPath(hits[0].filename.replace("\\", "/")).parts
    if hits[0].filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise RawDataError(f"{zpath}: refusing unsafe member path {hits[0].filename!r}")
    return hits[0]


def _extract(zpath: Path, archive: Archive, dest: Path) -> Path:
    """Extract the ratings member of ``zpath`` into ``dest`` atomically; return its path."""
    target = dest / PurePosixPath(archive.member).name
    if target.resolve().parent != dest.resolve():
        raise RawDataError(f"{zpath}: member {archive.member!r} would be written outside {dest}")
    try:
        with zipfile.ZipFile(zpath) as zf:
            info = _safe_member(zpath, zf, archive.member)
            with atomic_path(target) as tmp, zf.open(info) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, NotImplementedError,
            OSError) as exc:  # OSError: e.g. a damaged directory pointing before the file's start
        raise RawDataError(f"{zpath}: corrupt or truncated zip archive, or not readable "
                           f"({type(exc).__name__}: {exc}); delete it and place or download it again") from exc
    return target


def _missing_message(src: Source, dest: Path, reason: str) -> str:
    return (f"{src.title} ({src.name}): no raw ratings file in {dest.resolve()} ({reason}). "
            f"Put one of these files in that directory: {', '.join(src.accepted)}. "
            f"Get it from {src.url}")


def locate(name: str, raw_dir: str | Path) -> Path:
    """The usable ratings file of ``name`` under ``<raw_dir>/<name>/``, without any network.

    A ratings file placed by hand wins; otherwise the first accepted archive
    present is verified (when its checksum is known) and its ratings member is
    extracted beside it.  Raises MissingRawData if nothing accepted is present.
    """
    src, dest = source(name), source_dir(name, raw_dir)
    for fname in src.files:
        if (dest / fname).is_file():
            return dest / fname
    for arch in src.archives:
        zpath = dest / arch.file
        if zpath.is_file():
            verify(name, zpath)
            return _extract(zpath, arch, dest)
    raise MissingRawData(_missing_message(src, dest, "nothing found"))


# -- downloading --------------------------------------------------------------
def _human(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def _download(src: Source, dest: Path, progress: Progress | None) -> Path:
    """Download the official archive into ``dest``; it appears there only once verified."""
    arch, say = src.archive, progress or (lambda _msg: None)
    target = dest / arch.file
    say(f"{src.name}: downloading {src.url} -> {target}")
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with atomic_path(target) as tmp:
        with urllib.request.urlopen(src.url, timeout=_TIMEOUT_S) as resp, open(tmp, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or arch.size
            done, next_report = 0, 0.1
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                sha.update(chunk)
                md5.update(chunk)
                done += len(chunk)
                if total and done >= next_report * total:  # about every 10%
                    say(f"{src.name}: {_human(done)} of {_human(total)} ({100 * done / total:.0f}%)")
                    next_report = (int(10 * done / total) + 1) / 10
        _check_digests(f"download of {src.url}", arch, {"sha256": sha.hexdigest(), "md5": md5.hexdigest()},
                       src.url)
    say(f"{src.name}: {_human(done)} downloaded, sha256 {sha.hexdigest()} verified")
    return target


def fetch(name: str, raw_dir: str | Path, allow_network: bool = True, progress: Progress | None = None) -> Path:
    """The ratings file of ``name``: :func:`locate` it, or download the official archive first.

    Nothing is downloaded when a usable file is present.  A corrupt or altered
    file that is present raises rather than being silently replaced.  If the
    download is disallowed or fails, MissingRawData says which files are
    accepted, the directory to put them in, and the address to get them from.
    ``progress`` receives one-line messages about the download.
    """
    src, dest = source(name), source_dir(name, raw_dir)
    try:
        return locate(name, raw_dir)
    except MissingRawData:
        if not allow_network:
            raise MissingRawData(_missing_message(src, dest, "network access disabled")) from None
    try:
        _download(src, dest, progress)
    except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError is an OSError
        raise MissingRawData(_missing_message(src, dest, f"download failed: {exc}")) from exc
    return locate(name, raw_dir)


def manifest(name: str, path: str | Path) -> dict:
    """Record of the raw file used: path, size, sha256, and whether it matches a known checksum."""
    src, path = source(name), Path(path)
    sums = digests(path)
    expected = {a.file: a.sha256 for a in src.archives if a.sha256}
    expected.update(src.known)
    known = expected.get(path.name)
    return {
        "dataset": src.name,
        "file": str(path),
        "bytes": path.stat().st_size,
        "sha256": sums["sha256"],
        "known_sha256": known,
        "matches_known": None if known is None else sums["sha256"] == known,
        "url": src.url,
    }


def place_copies(directory: str | Path, raw_dir: str | Path, names: list[str] | None = None,
                 progress: Progress | None = None) -> dict[str, Path | None]:
    """Copy raw files found under ``directory`` (searched recursively) into ``<raw_dir>/<name>/``
    for every source that has no usable file there yet; nothing present is replaced.
    Returns the file now in place per source (None where no copy was found)."""
    directory = Path(directory)
    placed: dict[str, Path | None] = {}
    for name in names or list(SOURCES):
        try:
            placed[name] = locate(name, raw_dir)
            continue
        except MissingRawData:
            pass
        src, dest = source(name), source_dir(name, raw_dir)
        wanted = [(n, n) for n in src.accepted] + list(src.copy_patterns)
        found = next(((hit, target) for pattern, target in wanted
                      for hit in sorted(directory.rglob(pattern)) if hit.is_file()), None)
        if found is None:
            placed[name] = None
            continue
        hit, target = found
        with atomic_path(dest / target) as tmp:
            shutil.copyfile(hit, tmp)
        if progress:
            progress(f"{name}: copied {hit} -> {dest / target}")
        placed[name] = locate(name, raw_dir)
    return placed
