"""The paper's published numbers (paper.yaml), the only values typed in by hand."""
from __future__ import annotations

from functools import cache
from importlib import resources

import yaml


@cache
def paper() -> dict:
    return yaml.safe_load(resources.files(__name__).joinpath("paper.yaml").read_text())


def table_value(table: str, dataset: str, setting: str, estimator: str) -> tuple[float, float] | None:
    """(mean, std) nRMSE the paper prints for a cell, or None where it reports none."""
    cell = paper()["tables"].get(table, {}).get(dataset, {}).get(setting, {}).get(estimator)
    return None if cell is None else (float(cell[0]), float(cell[1]))
