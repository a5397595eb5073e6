"""What a step that reads earlier steps' results raises when one is missing or unusable.

The summary, the few-shot table and the report read the files the pipeline wrote before them;
each names the file it lacks with these, so that a caller tells a missing input from a bug.
"""
from __future__ import annotations

from pathlib import Path


class MissingResultError(FileNotFoundError):
    """An input from an earlier step is missing, or lacks a value its reader needs; the message names the file."""


class InvalidResultError(MissingResultError):
    """An input exists but cannot be used (empty, incomplete or not finite); the message starts with its path."""


def need(path: str | Path) -> str:
    """``path`` as a string, or MissingResultError when no earlier step wrote it."""
    if not Path(path).exists():
        raise MissingResultError(f"{path}: expected result is missing; run the pipeline's earlier steps")
    return str(path)
