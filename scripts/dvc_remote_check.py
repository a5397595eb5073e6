#!/usr/bin/env python3
"""Check that a DVC remote can be used before (or after a failed) `dvc push` / `dvc pull`.

DVC's own message for a remote it cannot use is e.g. ``ERROR: unexpected error -
[Errno 20] Not a directory: '/x/files/md5/a5/...'`` (push) or a list of "missing" files
(pull): it names neither the remote nor the setting to change. This script says which
remote is in use, where it points, what is wrong with it and the command that fixes it.

    python scripts/dvc_remote_check.py                 # the default remote, for push (must be writable)
    python scripts/dvc_remote_check.py --for pull      # ... for pull (must exist and be readable)
    python scripts/dvc_remote_check.py --remote NAME   # another remote

Exit status: 0 usable, 2 not usable (message on stderr), 1 not a DVC project / no remote.
Local remotes (a path or file://) are checked on disk, writing and removing a probe file
for push; any other remote (s3://, ssh://, ...) is checked with ``dvc status --cloud``.
The check never touches the local cache (.dvc/cache): a failed push loses nothing there.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse


def _fix(name: str) -> str:
    return (f"Point it at a directory you can write (or the remote you pushed to) with\n"
            f"    dvc remote modify {name} url /path/to/dvc-remote            (everyone: .dvc/config, commit it)\n"
            f"    dvc remote modify --local {name} url /path/to/dvc-remote    (this clone only: .dvc/config.local)\n"
            f"or use another remote: dvc push -r OTHER / dvc remote default OTHER (list: dvc remote list).")


def _cache_objects(cache_dir: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(cache_dir)) if cache_dir.is_dir() else 0


def check_local(path: Path, purpose: str) -> str | None:
    """None if a local remote directory can be used for `purpose`, else what is wrong."""
    if path.exists():
        if not path.is_dir():
            return f"{path} is not a directory"
        if purpose == "pull":
            if not os.access(path, os.R_OK | os.X_OK):
                return f"{path} cannot be read"
            return None
        try:  # for push: really write (os.access says yes to root on read-only mounts)
            with tempfile.NamedTemporaryFile(dir=path, prefix=".dvc-remote-check-"):
                pass
        except OSError as exc:
            return f"{path} cannot be written ({exc.strerror or exc})"
        return None
    if purpose == "pull":
        return f"{path} does not exist, so there is nothing to pull from it"
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{path} cannot be created: {parent} is not a directory"
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".dvc-remote-check-"):
            pass
    except OSError as exc:
        return f"{path} does not exist and cannot be created in {parent} ({exc.strerror or exc})"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--remote", help="remote name (default: the project's default remote)")
    ap.add_argument("--for", dest="purpose", choices=["push", "pull"], default="push")
    ap.add_argument("-C", "--project", default=".", help="project directory (default: .)")
    args = ap.parse_args(argv)

    try:
        from dvc.repo import Repo
        repo = Repo(args.project)
    except Exception as exc:  # not a DVC project, or DVC missing
        print(f"dvc_remote_check: not a DVC project ({args.project}): {exc}", file=sys.stderr)
        return 1
    remotes = repo.config.get("remote", {})
    name = args.remote or repo.config.get("core", {}).get("remote")
    if not name:
        print("dvc_remote_check: no default remote. Add one with\n"
              "    dvc remote add -d storage /path/to/dvc-remote", file=sys.stderr)
        return 1
    if name not in remotes:
        print(f"dvc_remote_check: no remote named '{name}' (remotes: {', '.join(remotes) or 'none'}). "
              f"Add it with\n    dvc remote add {name} /path/to/dvc-remote", file=sys.stderr)
        return 1
    url = str(remotes[name]["url"])
    label = f"DVC remote '{name}'" + (" (the default)" if not args.remote else "")
    cache = Path(repo.cache.local.path).parents[1] if repo.cache.local else None
    parsed = urlparse(url)
    if parsed.scheme in ("", "file") or (len(parsed.scheme) == 1 and os.name == "nt"):
        path = Path(parsed.path if parsed.scheme == "file" else url).expanduser()
        problem = check_local(path, args.purpose)
    else:
        cmd = ["dvc", "status", "--cloud", "--remote", name, "--quiet"]
        proc = subprocess.run(cmd, cwd=args.project, capture_output=True, text=True)
        # --quiet: exit 0 when in sync, 1 when objects differ; anything else is an error
        problem = None if proc.returncode in (0, 1) else \
            f"{shlex.join(cmd)} failed: {(proc.stderr or proc.stdout).strip()[-500:]}"
    if problem:
        kept = f" The local cache ({cache}) is untouched: {_cache_objects(cache)} objects." if cache else ""
        print(f"{label} at {url} cannot be used for {args.purpose}: {problem}.\n{_fix(name)}\n{kept.strip()}",
              file=sys.stderr)
        return 2
    print(f"{label} at {url}: usable for {args.purpose}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
