"""A job's own CPU time and peak memory, as the last line of its log.

Snakemake's ``benchmark:`` records sample the job's process tree: twice a second for
the first 15 s, then every 30 s, so a job's CPU time misses everything after the last
sample (a 29 s job was recorded with 14.5 s of CPU time while it used 32 s) and a peak
of memory between samples is missed.  The kernel's accounting at exit has neither gap;
``adjoint-meta timings`` prefers it where a log has it.
"""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from adjoint_meta.units import MB

PREFIX = "resources used:"
_LINE = re.compile(re.escape(PREFIX) + r" ([0-9.]+) s CPU \(user \+ system\), peak memory ([0-9.]+) MB")


def measure() -> tuple[float, float] | None:
    """(CPU seconds, peak resident MB) of this process and its finished children; None off POSIX."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    unit = 1.0 if sys.platform == "darwin" else 1024.0  # ru_maxrss: bytes on macOS, KiB on Linux
    peak = max(me.ru_maxrss, kids.ru_maxrss) * unit / MB
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime, peak


def append_to(log_file: str | Path) -> None:
    """Append the usage line to ``log_file`` (nothing when it cannot be measured or written:
    the job itself has succeeded by then)."""
    used = measure()
    if used is None:
        return
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        with open(log_file, "a") as fh:
            fh.write(f"{stamp} INFO {PREFIX} {used[0]:.2f} s CPU (user + system), peak memory {used[1]:.1f} MB\n")
    except OSError:
        pass


def read(log_file: str | Path) -> tuple[float, float] | None:
    """(CPU seconds, peak MB) from the last usage line of ``log_file``; None if it has none."""
    try:
        found = _LINE.findall(Path(log_file).read_text(errors="replace"))
    except OSError:
        return None
    return (float(found[-1][0]), float(found[-1][1])) if found else None
