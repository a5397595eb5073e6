"""Edits of the package in a finished run of the test configuration, and the jobs each must rerun:
shared by the two front ends' edit tests (Snakemake in test_codedeps.py, DVC in test_codedeps_dvc.py,
two modules so that the two run side by side)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from adjoint_meta import codedeps, config, paths

STEPS = list(config.RELEVANT_KEYS)  # the pipeline steps, each a subcommand of the CLI
PKG = codedeps.SOURCE_DIR + "/"
FINGERPRINTS = paths.CODE_DIR + "/"


def edit(project: Path, rel: str) -> None:
    """A change the program sees: a statement, a YAML key, a line of text."""
    line = {".py": "_EDITED = 1", ".yaml": "_edited: 1"}.get(Path(rel).suffix, "edited")
    with open(project / rel, "a") as fh:
        fh.write(f"\n{line}\n")


def edit_docstring(project: Path, rel: str) -> None:
    """A change the program does not see: a docstring and a comment."""
    path = project / rel
    path.write_text(path.read_text().replace('"""', '"""Edited. ', 1) + "\n# a comment\n")


# the edits the README states the reruns of: (file edited, how)
EDITS = {"estimators/es.py": edit, "data/synthetic.py": edit, "report/figures.py": edit,
         "estimators/imaml.py": edit_docstring}


def jobs(params) -> Counter:
    """{(rule, code input): jobs} of the test configuration, from the parameters."""
    out: Counter = Counter()
    for step in STEPS:
        for key in codedeps.step_keys(params, step):
            n = {"fetch": len(params["raw"]["sources"]), "protonet": len(config.protonet_jobs(params)),
                 "evaluate": len(config.cells(params)), "fewshot": len(params["meta"]["seeds"]),
                 "train": sum(c.estimator == key for c in config.cells(params))}.get(step, 1)
            out[step.replace("-", "_"), codedeps.code_input(step, key)] = n
    return out


def must_rerun(params, rel: str) -> Counter:
    """{(rule, code input): jobs} that editing package file ``rel`` as ``EDITS`` does must rerun for
    their code: every job whose code input lists the file, none for a docstring edit."""
    if EDITS[rel] is edit_docstring:
        return Counter()
    inputs = codedeps.code_inputs(params)
    return Counter({(r, c): n for (r, c), n in jobs(params).items() if PKG + rel in inputs[c]})
