"""Each step's code dependencies are derived from its imports (adjoint_meta.codedeps): checked
against what the steps really used in a run, and through both front ends by editing every
module and data file of the package."""
from __future__ import annotations

import ast
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from adjoint_meta import codedeps, config, dvc_yaml, paths
from conftest import ROOT, copy_run, run_tool, step_traces

STEPS = list(config.RELEVANT_KEYS)  # the pipeline steps, each a subcommand of the CLI
PKG = codedeps.SOURCE_DIR + "/"
FINGERPRINTS = paths.CODE_DIR + "/"


def files(step: str) -> set[str]:
    return {f.removeprefix(PKG) for f in codedeps.step_files(step)}


def test_every_step_runs_the_entry_point_and_reads_the_schema():
    for step in STEPS:
        assert {"__init__.py", "__main__.py", "cli.py", "config/__init__.py", "schema/params.schema.yaml"} <= files(step), step


def test_imports_inside_functions_and_package_data_count():
    # what the hand-kept list missed: the outer optimizer, seeding, checkpoints, ...
    assert {"optim.py", "seeding.py", "runtime.py", "checkpoint.py", "io.py", "model.py", "tasks.py",
            "estimators/core.py", "estimators/dopri5.py"} <= files("train")
    assert "optim.py" in files("evaluate") and "seeding.py" in files("make-tasks")
    assert {"reference/__init__.py", "reference/paper.yaml", "timings.py"} <= files("report")


def test_other_commands_of_the_cli_are_not_dependencies():
    # (every step validates the whole parameter file, whose schema the estimators' declarations fill in,
    # so the estimators and the model they import are dependencies of every step)
    assert not {"train.py", "data/synthetic.py", "report/__init__.py", "dvc_yaml.py"} & files("fetch")
    assert "profile.py" not in files("train") and "train.py" not in files("profile")
    assert not any("dvc_yaml" in f or "codedeps" in f for step in STEPS for f in files(step))
    with pytest.raises(ValueError, match="no pipeline step 'nonsense'"):
        codedeps.step_files("nonsense")


def test_a_fingerprint_hashes_each_file_of_its_step(tmp_path):
    """What DVC's stages depend on instead of the files (dvc_yaml): one line per file of the step."""
    text = codedeps.fingerprint("evaluate", ROOT)
    pairs = [line.split("  ", 1) for line in text.splitlines()]
    assert [rel for _, rel in pairs] == list(codedeps.step_files("evaluate"))
    for digest, rel in pairs:
        assert digest == hashlib.sha256((ROOT / rel).read_bytes()).hexdigest(), rel
    assert codedeps.fingerprint("fetch", ROOT) != text
    out = tmp_path / "evaluate.sha256"
    run_tool(["adjoint_meta", "code-fingerprint", "--step", "evaluate", "--out", str(out)], ROOT)
    assert out.read_text() == text
    copy = tmp_path / "project"  # the files under the project root given, not those of the package imported
    for rel in codedeps.step_files("evaluate"):
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes((ROOT / rel).read_bytes() + (b"# edited\n" if rel.endswith("/optim.py") else b""))
    edited = codedeps.fingerprint("evaluate", copy).splitlines()
    assert [a == b for a, b in zip(edited, text.splitlines())] == [not rel.endswith("/optim.py") for _, rel in pairs]
    bad = run_tool(["adjoint_meta", "code-fingerprint", "--step", "nonsense", "--out", str(tmp_path / "x")], ROOT,
                   check=False)
    assert bad.returncode != 0 and "--step" in bad.stderr and "nonsense" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_every_package_data_file_is_read_through_the_one_pattern():
    """A data file the scanner does not see would never be a dependency: every non-Python file
    shipped in the package is found in some step, or no module names it at all."""
    used = set().union(*(files(s) for s in STEPS))
    sources = "\n".join(Path(codedeps.PACKAGE_DIR, f.removeprefix(PKG)).read_text()
                        for f in codedeps.package_files() if f.endswith(".py"))
    for f in codedeps.package_files():
        rel = f.removeprefix(PKG)
        if not rel.endswith(".py") and rel not in used:
            assert Path(rel).name not in sources, f"{rel} is read without resources.files(...).joinpath(...)"


def test_relative_imports_and_data_reads_resolve(tmp_path):
    src = ("from . import io\nfrom .estimators import core\nfrom .. import nothing_here\n"
           "import adjoint_meta.report.tables as t\n"
           "def f():\n    from adjoint_meta.data import raw\n"
           "    return resources.files(__name__).joinpath('paper.yaml')\n")
    path = codedeps.PACKAGE_DIR / "reference" / "__init__.py"
    tree = ast.parse(src)
    assert codedeps._imports([tree], path) >= {"adjoint_meta", "adjoint_meta.reference", "adjoint_meta.report",
                                               "adjoint_meta.report.tables", "adjoint_meta.data",
                                               "adjoint_meta.data.raw"}
    assert "adjoint_meta.io" not in codedeps._imports([tree], path)  # `from . import io` in reference/ is not ../io
    assert codedeps._data_files(tree, path) == {codedeps.PACKAGE_DIR / "reference" / "paper.yaml"}
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        codedeps._data_files(ast.parse("resources.files('adjoint_meta').joinpath('missing.yaml')"), path)


@pytest.mark.pipeline
def test_what_each_step_really_used_is_declared(snakemake_run):
    """Every job of the test configuration recorded the package modules it imported and the package
    files it opened (tests/trace/sitecustomize.py); all of them are among its declared inputs."""
    traces = [json.loads(p.read_text()) for p in step_traces(snakemake_run).glob("*.json")]
    seen = set()
    for t in traces:
        step = t["argv"][0]
        seen.add(step)
        undeclared = set(t["files"]) - files(step)
        assert not undeclared, f"adjoint-meta {step} used {sorted(undeclared)}, which it does not declare"
    assert seen == set(STEPS), f"no trace of the steps {set(STEPS) - seen}"


# -- both front ends, after editing files in a finished run --------------------------------------
def _snakemake_updates(project: Path) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """{file: {rule: jobs naming it as an updated input}}, {rule: jobs}, from dry runs.

    A dry run names only a job's first cause (a job downstream of a rerun job reruns "because
    its input is updated by another job"), so each rule is asked on its own: its outputs as the
    targets, no other rule allowed to run."""
    summary = run_tool(["snakemake", "--summary", "--cores", "1"], project).stdout.splitlines()[1:]
    outputs: dict[str, list[str]] = {}
    jobs: dict[str, set[str]] = {}
    for line in summary:
        out, _, rule, log, *_ = line.split("\t")
        outputs.setdefault(rule, []).append(out)
        jobs.setdefault(rule, set()).add(log)  # one log per job
    per_file: dict[str, dict[str, int]] = {}
    for rule, targets in outputs.items():
        dry = run_tool(["snakemake", "-n", "--cores", "1", "--allowed-rules", rule, "--", *targets], project).stdout
        for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry):
            m = re.match(r"(?:local)?rule (\w+):", block)
            reason = re.search(r"Updated input files: ([^;\n]+)", block)
            if m and reason:
                assert m.group(1) == rule, f"--allowed-rules {rule} scheduled a job of {m.group(1)}"
                for f in reason.group(1).split(", "):
                    per_file.setdefault(f.strip(), {}).setdefault(rule, 0)
                    per_file[f.strip()][rule] += 1
    return per_file, {rule: len(logs) for rule, logs in jobs.items()}


def _dvc_status(project: Path) -> dict[str, dict[str, int]]:
    """From `dvc status`: {file: {stage group: stages with it as a modified dependency}}."""
    status = json.loads(run_tool(["dvc", "status", "--json"], project).stdout)
    per_file: dict[str, dict[str, int]] = {}
    for stage, changes in status.items():
        group = stage.split("@")[0]
        for change in changes:
            for f, what in (change.get("changed deps") or {}).items() if isinstance(change, dict) else ():
                if what == "modified":
                    per_file.setdefault(f, {}).setdefault(group, 0)
                    per_file[f][group] += 1
    return per_file


def _dvc_updates(project: Path) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """{file: {step: its jobs out of date}}, {step: its jobs} through DVC's two links: an edited file
    puts the code stages of the steps that run it out of date (`dvc status`); once those have rerun,
    the jobs of the steps whose fingerprint changed are out of date (`dvc status` again)."""
    from dvc.repo import Repo

    stages = [s.name for s in Repo(str(project), uninitialized=True).index.stages]
    code = {name for name in stages if name.startswith(dvc_yaml.CODE_STAGE)}
    per_file = {f: {_step_of_stage(group): n for group, n in found.items()} for f, found in _dvc_status(project).items()
                if f.startswith(PKG)}  # (not the fingerprints of an earlier round of edits)
    for f, found in per_file.items():
        assert all(n == 1 for n in found.values()), f"{f}: {found} (one code stage per step)"
    run_tool(["dvc", "repro", "--single-item", *sorted(code)], project)
    jobs_out: Counter[str] = Counter()
    for f, found in _dvc_status(project).items():
        assert f.startswith(FINGERPRINTS), f"{f} out of date after only the code stages reran"
        for group, n in found.items():
            jobs_out[_step_of_stage(group)] += n
    assert set(jobs_out) <= {step for found in per_file.values() for step in found}, jobs_out
    totals = Counter(_step_of_stage(name) for name in stages if name not in code)
    return {f: {step: jobs_out.get(step, 0) for step in found} for f, found in per_file.items()}, totals


def _step_of_stage(name: str) -> str:
    base = name.split("@")[0].removeprefix(dvc_yaml.CODE_STAGE)
    return next(s for s in sorted(STEPS, key=len, reverse=True) if base == s.replace("-", "_")
                or base.startswith(s.replace("-", "_") + "_"))


def _edit(project: Path, rel: str) -> None:
    with open(project / rel, "a") as fh:
        fh.write("\n# edited\n")


def _check(per_file, totals, rel: str, step_of) -> None:
    """Exactly the steps that use ``rel`` are out of date, each with every one of its jobs."""
    wanted = {s for s in STEPS if rel in codedeps.step_files(s)}
    found = per_file.get(rel, {})
    assert {step_of(r) for r in found} == wanted, f"editing {rel}: out of date {sorted(found)}, expected {wanted}"
    for r, n in found.items():
        assert n == totals[r], f"editing {rel}: {n} of the {totals[r]} jobs of {r} are out of date"


@pytest.mark.pipeline
def test_editing_a_file_reruns_exactly_the_steps_that_use_it(snakemake_run, dvc_run, tmp_path):
    snake = copy_run(snakemake_run, tmp_path / "snake")
    dvc = copy_run(dvc_run, tmp_path / "dvc")
    rule_step = lambda rule: rule.replace("_", "-")  # noqa: E731
    # one edit first: the outer optimizer of every training job (and of fine-tuning)
    optim = PKG + "optim.py"
    for project in (snake, dvc):
        _edit(project, optim)
    _check(*_snakemake_updates(snake), optim, rule_step)
    _check(*_dvc_updates(dvc), optim, lambda step: step)
    # then every module and data file at once: each job lists every changed input of its own,
    # so each file's steps are read off separately
    every = codedeps.package_files()
    assert len(every) > 40
    for project in (snake, dvc):
        for rel in every:
            if rel != optim or project is dvc:  # DVC's code stages took in the first edit already
                _edit(project, rel)
    snake_updates, dvc_updates = _snakemake_updates(snake), _dvc_updates(dvc)
    for rel in every:
        _check(*snake_updates, rel, rule_step)
        _check(*dvc_updates, rel, lambda step: step)
