"""Each step's code dependencies are derived from its imports (adjoint_meta.codedeps): checked
against what the steps really used in a run, and through both front ends by editing every
module and data file of the package."""
from __future__ import annotations

import ast
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from code_edits import EDITS, FINGERPRINTS, PKG, STEPS, edit, must_rerun
from conftest import ROOT, TEST_PARAMS, copy_project, copy_run, run_tool, step_traces

from adjoint_meta import codedeps, config


def files(step: str) -> set[str]:
    return {f.removeprefix(PKG) for f in codedeps.step_files(step)}


def job(step: str, key: str | None = None, params=None) -> set[str]:
    """The files of one job of the test configuration."""
    params = params or config.load(TEST_PARAMS)
    return {f.removeprefix(PKG) for f in codedeps.job_files(step, codedeps.job_plugins(params, step, key))}


ESTIMATOR_MODULES = {"estimators/es.py", "estimators/imaml.py", "estimators/maml.py", "estimators/first_order.py",
                     "estimators/adjoint.py", "estimators/baselines.py", "estimators/learned_rates.py"}
VALIDATION = {"config/schema.py", "config/checks.py", "schema/params.schema.yaml"}


def test_every_step_runs_the_entry_point():
    for step in STEPS:
        assert {"__init__.py", "__main__.py", "cli.py", "config/__init__.py", "config/grid.py"} <= files(step), step


def test_imports_inside_functions_and_package_data_count():
    # what the hand-kept list missed: the outer optimizer, seeding, checkpoints, ...
    assert {"optim.py", "seeding.py", "runtime.py", "checkpoint.py", "io.py", "model.py", "tasks.py",
            "estimators/core.py", "estimators/dopri5.py"} <= files("train")
    assert "optim.py" in files("evaluate") and "seeding.py" in files("make-tasks")
    assert {"reference/__init__.py", "reference/paper.yaml", "timings.py"} <= files("report")


def test_other_commands_of_the_cli_are_not_dependencies():
    assert not {"train.py", "data/synthetic.py", "report/__init__.py", "dvc_yaml.py"} & files("fetch")
    assert "profile.py" not in files("train") and "train.py" not in files("profile")
    assert not any("dvc_yaml" in f or "codedeps" in f or f == "workflow.py" for step in STEPS for f in files(step))
    with pytest.raises(ValueError, match="no pipeline step 'nonsense'"):
        codedeps.step_files("nonsense")


def test_validation_and_other_plugins_are_no_step_s_own_code():
    """Every command validates the whole parameter file (with a schema the estimators fill in), but
    validation only refuses: neither it nor the estimators it reads are a step's own code. They are
    what the step imports, and the validation modules declare themselves."""
    for step in STEPS:
        assert not (VALIDATION | ESTIMATOR_MODULES | {"data/synthetic.py", "data/collab.py"}) & files(step), step
        imported = {f.removeprefix(PKG) for f in codedeps.imported_files(step)}
        assert (VALIDATION | ESTIMATOR_MODULES) <= imported and files(step) < imported, step
    flagged = {f.removeprefix(PKG) for f in codedeps.package_files() if f.endswith(".py")
               and codedeps.validation_only(codedeps._module_name(codedeps.PACKAGE_DIR / f.removeprefix(PKG)))}
    assert flagged == {"config/schema.py", "config/checks.py"}


def test_a_job_depends_on_the_plugins_it_runs():
    params = config.load(TEST_PARAMS)
    kinds_of = {name: cfg["kind"] for name, cfg in params["estimators"].items()}
    assert kinds_of["fomaml"] == "fomaml" and kinds_of["imaml"] == "imaml"
    fomaml, imaml = job("train", "fomaml", params), job("train", "imaml", params)
    assert {"estimators/first_order.py", "estimators/maml.py"} <= fomaml and not {"estimators/imaml.py",
                                                                                  "estimators/es.py"} & fomaml
    assert "estimators/imaml.py" in imaml and not {"estimators/first_order.py", "estimators/es.py"} & imaml
    # a dataset's tasks: its own builder
    synthetic, collab = job("make-tasks", "cosmixture", params), job("make-tasks", "ml100k", params)
    assert "data/synthetic.py" in synthetic and not {"data/collab.py", "data/ratings.py"} & synthetic
    assert {"data/collab.py", "data/ratings.py", "data/raw.py"} <= collab and "data/synthetic.py" not in collab
    # a profile or study runs several; summaries and the report read every estimator's class
    assert "estimators/es.py" in job("profile", "scaling", params) and "estimators/es.py" not in job("profile",
                                                                                                     "fig34", params)
    from adjoint_meta.accuracy import REFERENCE
    from adjoint_meta.estimators import REGISTRY

    for study in params["accuracy"]:  # the exact reference too
        assert REGISTRY[REFERENCE[0]].__module__ in codedeps.job_plugins(params, "accuracy", study)
    for step in ("summarize", "report"):
        assert ESTIMATOR_MODULES <= job(step, params=params)
    # every job of the configuration has one code input
    inputs = codedeps.code_inputs(params)
    assert codedeps.code_input("train", "fomaml") in inputs and codedeps.code_input("evaluate") in inputs
    assert set(inputs) == {codedeps.code_input(s, k) for s in STEPS for k in codedeps.step_keys(params, s)}


def test_a_fingerprint_sees_code_not_comments_or_docstrings(tmp_path):
    """What a job's code input holds: one line per file, hashing what the program sees."""
    rels = [PKG + "estimators/es.py", PKG + "reference/paper.yaml", PKG + "report/template.html.j2"]
    for rel in rels:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes((ROOT / rel).read_bytes())
    text = codedeps.fingerprint(rels, tmp_path)
    assert [line.split("  ", 1)[1] for line in text.splitlines()] == sorted(rels)
    assert text == codedeps.fingerprint(rels, ROOT)
    es, paper, template = (tmp_path / r for r in rels)

    def edit(path, old, new):
        path.write_text(path.read_text().replace(old, new, 1))
        return codedeps.fingerprint(rels, tmp_path)

    source = es.read_text()
    doc = source.split('"""')[1]
    assert edit(es, doc, doc + " More words.") == text  # the module's docstring
    assert edit(es, "\n\n", "\n\n# a comment\n", ) == text
    assert edit(paper, "\n", "\n# a comment\n") == text
    changed = edit(es, "import torch\n", "import torch\n_EDITED = 1\n")
    assert [a == b for a, b in zip(changed.splitlines(), text.splitlines())] == [r != rels[0] for r in sorted(rels)]
    changed = edit(template, "</html>", "</html>\n<!-- a comment -->")  # a template's comment is output
    assert changed.splitlines()[2] != text.splitlines()[2]


def test_code_inputs_are_written_where_they_changed_and_dated_like_their_files(tmp_path):
    params = config.load(TEST_PARAMS)
    project = copy_project(tmp_path / "project", TEST_PARAMS)
    written = codedeps.write_code_inputs(params, project)
    inputs = codedeps.code_inputs(params)
    assert sorted(written) == sorted(inputs)
    for rel, files in inputs.items():
        out = project / rel
        assert out.read_text() == codedeps.fingerprint(files, project)
        assert out.stat().st_mtime == max((project / f).stat().st_mtime for f in files)
    assert codedeps.write_code_inputs(params, project) == []
    es = project / PKG / "estimators" / "es.py"
    es.write_text(es.read_text().replace('"""', '"""Edited. ', 1))  # a docstring
    assert codedeps.write_code_inputs(params, project) == []
    es.write_text(es.read_text() + "\n_EDITED = 1\n")
    rewritten = codedeps.write_code_inputs(params, project)
    assert set(rewritten) == {rel for rel, files in inputs.items() if PKG + "estimators/es.py" in files}
    assert {codedeps.code_input("summarize"), codedeps.code_input("profile", "scaling")} <= set(rewritten)
    assert all((project / rel).stat().st_mtime == es.stat().st_mtime for rel in rewritten)
    # the command DVC's code stage runs writes the same
    other = copy_project(tmp_path / "other", TEST_PARAMS)
    run_tool(["adjoint_meta", "code-inputs", "--root", str(other), "--params", str(other / "params.yaml")], ROOT)
    assert all((other / rel).read_text() == codedeps.fingerprint(files, other) for rel, files in inputs.items())


def test_editing_any_file_changes_exactly_the_code_inputs_that_list_it(tmp_path):
    """Every module and data file of the package, edited one at a time in a copy: the code inputs
    rewritten are exactly those of the jobs it can change, each of them and no other."""
    params = config.load(TEST_PARAMS)
    project = copy_project(tmp_path / "project", TEST_PARAMS)
    codedeps.write_code_inputs(params, project)
    inputs = codedeps.code_inputs(params)
    every = codedeps.package_files()
    assert len(every) > 40
    for rel in every:
        edit(project, rel)
        wanted = {code for code, files in inputs.items() if rel in files}
        assert set(codedeps.write_code_inputs(params, project)) == wanted, rel
    unused = {rel for rel in every if not any(rel in files for files in inputs.values())}
    assert PKG + "dvc_yaml.py" in unused and PKG + "estimators/es.py" not in unused


def test_every_package_data_file_is_read_through_the_one_pattern():
    """A data file the scanner does not see would never be a dependency: every non-Python file
    shipped in the package is found in some step, or no module names it at all."""
    used = {f.removeprefix(PKG) for s in STEPS for f in codedeps.imported_files(s)}
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


_KEY_FLAGS = {"dataset": "--dataset", "estimator": "--estimator", "profile": "--profile", "name": "--name"}


@pytest.mark.pipeline
def test_what_each_step_really_used_is_declared(snakemake_run):
    """Every job of the test configuration recorded the package modules it imported and the package
    files it opened (tests/trace/sitecustomize.py): all of them are among what its step may import,
    and those its code input leaves out are validation or plugins it does not run."""
    params = config.load(snakemake_run / "params.yaml")
    traces = [json.loads(p.read_text()) for p in step_traces(snakemake_run).glob("*.json")]
    seen = set()
    for t in traces:
        step, argv = t["argv"][0], t["argv"]
        seen.add(step)
        key = argv[argv.index(_KEY_FLAGS[codedeps.KEYS[step]]) + 1] if step in codedeps.KEYS else None
        used = set(t["files"])
        imported = {f.removeprefix(PKG) for f in codedeps.imported_files(step)}
        assert not used - imported, f"adjoint-meta {step} used {sorted(used - imported)}, which its imports do not name"
        # validation, and plugins no job of the step runs; plugins other jobs of the step run
        excused = imported - {f.removeprefix(PKG) for f in codedeps.possible_files(step)}
        runs = codedeps.job_plugins(params, step, key)
        for m in set(codedeps.step_plugins(step)) - set(runs):
            excused |= {f.removeprefix(PKG) for f in codedeps.module_files(m)}
        unexplained = used - job(step, key, params) - excused
        assert not unexplained, f"adjoint-meta {step} {key or ''}: used {sorted(unexplained)}, not in its code input"
    assert seen == set(STEPS), f"no trace of the steps {set(STEPS) - seen}"


# -- Snakemake, after editing files in a finished run (DVC: test_codedeps_dvc.py) -------------------
def _snakemake_outputs(project: Path) -> dict[str, list[str]]:
    """{rule: its outputs}, from `snakemake --summary`."""
    outputs: dict[str, list[str]] = {}
    for line in run_tool(["snakemake", "--summary", "--cores", "1"], project).stdout.splitlines()[1:]:
        out, _, rule, *_ = line.split("\t")
        outputs.setdefault(rule, []).append(out)
    return outputs


def _snakemake_reruns(project: Path, outputs: dict[str, list[str]]) -> tuple[Counter, Counter]:
    """{(rule, code input): jobs rerun for it}, {rule: jobs rerun for any reason}; then every output is
    dated after its inputs (--touch), so the next edit starts clean.

    A dry run names only a job's first cause (a job downstream of a rerun job reruns "because its input
    is updated by another job"), so each rule that reruns is asked again on its own: its outputs as the
    targets, no other rule allowed to run."""
    every = Counter(_dry_run_jobs(run_tool(["snakemake", "-n", "--cores", "1"], project).stdout))
    direct: Counter = Counter()
    for rule in every:
        dry = run_tool(["snakemake", "-n", "--cores", "1", "--allowed-rules", rule, "--", *outputs[rule]], project)
        for name, reason in _dry_run_jobs(dry.stdout, reasons=True):
            assert name == rule, f"--allowed-rules {rule} scheduled a job of {name}"
            for f in reason:
                direct[rule, f] += 1
    run_tool(["snakemake", "--touch", "--cores", "1"], project)
    return direct, every


def _dry_run_jobs(text: str, reasons: bool = False) -> list:
    """The rule of each job a dry run lists (but `all`), with the code inputs it names as updated."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if not m or m.group(1) == "all":
            continue
        updated = re.search(r"Updated input files: ([^;\n]+)", block)
        listed = updated.group(1).split(", ") if updated else []
        codes = [f.strip() for f in listed if f.strip().startswith(FINGERPRINTS)]
        jobs.append((m.group(1), codes) if reasons else m.group(1))
    return jobs


@pytest.mark.pipeline
def test_editing_a_file_reruns_exactly_the_jobs_it_can_change(snakemake_run, tmp_path):
    """In a finished Snakemake run, each edit reruns exactly the jobs whose code input lists the file:
    each of them, and no other job for its code (the rest reruns only because an input those jobs
    make is new). A docstring and comment edit reruns nothing. Every package file is checked the same
    way, through the code inputs, by test_editing_any_file_changes_exactly_the_code_inputs_that_list_it."""
    snake = copy_run(snakemake_run, tmp_path / "snake")
    params = config.load(snake / "params.yaml")
    outputs = _snakemake_outputs(snake)
    counts = {}
    for rel, how in EDITS.items():
        how(snake, PKG + rel)
        direct, every = _snakemake_reruns(snake, outputs)
        wanted = must_rerun(params, rel)
        assert direct == wanted, f"editing {rel}: Snakemake reruns {dict(direct)}, expected {dict(wanted)}"
        assert set(every) >= {r for r, _ in wanted}
        counts[rel] = sum(every.values())
    assert counts["estimators/imaml.py"] == 0
    print("jobs Snakemake reruns after each edit:", counts)
