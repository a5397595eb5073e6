"""What docs/architecture.md promises: an estimator is one module, a raw source one registry entry.

In a scratch copy of the project, a toy estimator module (``estimators/toy.py``) and a toy source
(one entry appended to ``data/sources.py``) are added, and params.yaml names them; no other file
changes.  Both are then validated (their own messages), scheduled and run by Snakemake: the toy
source is fetched from a file placed by hand and made into tasks, and the toy estimator is trained
on them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import HANG_S, TEST_PARAMS, copy_project, place_test_data, tool_env, write_u_data

from adjoint_meta import config, paths

pytestmark = pytest.mark.pipeline

TOY_ESTIMATOR = '''\
"""A toy estimator: FOMAML's direction, scaled."""
from dataclasses import dataclass

from adjoint_meta.estimators.base import Estimator, MetaGradient, hyper, register
from adjoint_meta.estimators.core import descend, stack


@dataclass(frozen=True)
class ToyHyper:
    shrink: float = hyper(0.5, "scale of the first-order direction", above=0)


@register
class Toy(Estimator):
    name = "toy"
    label = "Toy (scaled FOMAML)"
    Hyper = ToyHyper
    step_cost = 7.0

    @classmethod
    def checks(cls, hp, key, experiments, alpha):
        return [f"{key}.shrink: {hp.shrink} is above 1"] if hp.shrink > 1 else []

    def estimate(self, theta, problem):
        phi = descend(problem, stack(theta, problem.n_tasks), self.steps, self.alpha)
        loss, grad = problem.query_loss_and_grad(phi)
        return MetaGradient(self.hp.shrink * grad, loss)
'''

TOY_SOURCE = '''

# a toy source: MovieLens-100K's format under another name
SOURCES["toyrate"] = Source(
    name="toyrate", title="Toy ratings", url="https://example.invalid/toyrate.zip",
    archive=Archive("toyrate.zip", "toyrate/ratings.tsv"), files=("ratings.tsv",),
    parse="movielens_100k", scale=(1, 5), paper_task_count=0, published_ratings=1000)
'''

TOY_CELL = dict(experiment="table2", dataset="toy", setting="5shot-5val", estimator="toy", seed=0)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = place_test_data(copy_project(tmp_path_factory.mktemp("extension") / "project", TEST_PARAMS))
    pkg = root / "src" / "adjoint_meta"
    (pkg / "estimators" / "toy.py").write_text(TOY_ESTIMATOR)
    with open(pkg / "data" / "sources.py", "a") as fh:
        fh.write(TOY_SOURCE)
    doc = config.read_yaml(root / "params.yaml")
    doc["estimators"]["toy"] = {"kind": "toy", "label": "Toy"}  # shrink: its declared default
    doc["experiments"]["table2"]["estimators"].append("toy")
    doc["raw"]["sources"].append("toyrate")
    doc["datasets"]["toy"] = dict(doc["datasets"]["ml100k"], source="toyrate")
    doc["experiments"]["table2"]["datasets"].append("toy")
    (root / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    write_u_data(root / "data" / "raw" / "toyrate" / "ratings.tsv", seed=3)
    return root


def _env(root: Path) -> dict:
    """This project's package first on the path, for the CLI and for Snakemake."""
    return tool_env(PYTHONPATH=os.pathsep.join(filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")])))


def _run(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m <args>`` (or ``python -c <code>``) in the scratch project."""
    argv = [sys.executable, *args] if args[0] == "-c" else [sys.executable, "-m", *args]
    proc = subprocess.run(argv, cwd=root, env=_env(root), capture_output=True, text=True,
                          timeout=HANG_S)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def test_the_toy_estimator_is_validated_from_its_declaration(project):
    shown = json.loads(_run(project, "adjoint_meta", "params", "--show").stdout)
    assert shown["estimators"]["toy"] == {"kind": "toy", "label": "Toy", "shrink": 0.5}  # the declared default
    for override, message in [("estimators.toy.shrink=-1", "estimators.toy.shrink: must be > 0"),
                              ("estimators.toy.shrink=fast", "estimators.toy.shrink: must be of type number"),
                              ("estimators.toy.nope=1", "unknown key estimators.toy.nope"),
                              ("estimators.toy.shrink=3", "estimators.toy.shrink: 3 is above 1")]:
        bad = _run(project, "adjoint_meta", "params", "--set", override, check=False)
        assert bad.returncode == 2 and message in bad.stderr, (override, bad.stderr)
    kinds = _run(project, "adjoint_meta", "params", "--set", "estimators.toy.kind=toy2", check=False).stderr
    assert "'toy2' is not allowed; allowed values:" in kinds and "toy" in kinds.rsplit("allowed values:", 1)[1]


def test_the_toy_source_is_validated_from_its_entry(project):
    bad = _run(project, "adjoint_meta", "params", "--set", "datasets.toy.source=toyrat", check=False).stderr
    assert "datasets.toy.source: 'toyrat' is not allowed" in bad and "toyrate" in bad
    assert "toyrate" in _run(project, "adjoint_meta", "fetch", "--help").stdout  # the CLI's choices


def test_both_are_scheduled_fetched_and_trained(project):
    cost = _run(project, "-c", "from adjoint_meta import config; p = config.load(); "
                               f"c = {TOY_CELL!r}; print(config.train_cost(p, c) / "
                               "config.train_cost(p, dict(c, estimator='fomaml')))").stdout
    assert float(cost) == pytest.approx(7.0)  # the declared cost per step, against FOMAML's 1
    model = paths.MODEL.format(**TOY_CELL)
    dry = _run(project, "snakemake", "-n", "--cores", "1", model).stdout
    assert "rule fetch" in dry and "source=toyrate" in dry and "rule make_tasks" in dry and "estimator=toy" in dry
    _run(project, "snakemake", "--cores", "2", model)
    manifest = json.loads((project / paths.RAW_MANIFEST.format(source="toyrate")).read_text())
    assert manifest["file"].endswith("ratings.tsv")
    summary = json.loads((project / paths.TASKS_SUMMARY.format(dataset="toy")).read_text())
    assert summary["family"] == "toyrate" and summary["n_test_tasks"] == 4
    log = (project / paths.LOG.format(step="train", name=paths.cell_name(TOY_CELL))).read_text()
    assert "| Toy |" in log and "meta-step 20/20" in log
