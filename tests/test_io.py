"""Atomic outputs: a write is all or nothing, and what a killed writer left is neither taken for an
output nor versioned."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT

from adjoint_meta.io import atomic_path, write_csv, write_text


def test_a_failed_write_leaves_neither_target_nor_temporary_file(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(target.parent.iterdir()) == []


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    stale = tmp_path / ".theta.pt.abc123.tmp"        # what SIGKILL leaves behind
    other = tmp_path / ".theta.pt.csv.def456.tmp"    # another target's, and a name that only looks alike
    stale.write_text("partial")
    other.write_text("partial")
    write_text(tmp_path / "theta.pt", "done")
    assert (tmp_path / "theta.pt").read_text() == "done"
    assert not stale.exists() and other.exists()


def test_write_csv_rounds_floats_only_when_asked(tmp_path):
    frame = pd.DataFrame({"name": ["a", "b"], "value": [1 / 3, 2.0e-7]})
    write_csv(frame, tmp_path / "full.csv")
    write_csv(frame, tmp_path / "short.csv", "%.6g")
    assert (tmp_path / "short.csv").read_text() == "name,value\na,0.333333\nb,2e-07\n"
    assert pd.read_csv(tmp_path / "full.csv")["value"].tolist() == frame["value"].tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.csv", "short.csv"]


def test_dvc_ignores_temporary_files():
    probe = subprocess.run([sys.executable, "-m", "dvc", "check-ignore", "results/train/x/.seed0.pt.abc.tmp",
                            "results/train/x/seed0.pt"], cwd=ROOT, capture_output=True, text=True)
    assert probe.stdout.split() == ["results/train/x/.seed0.pt.abc.tmp"], probe.stdout + probe.stderr
