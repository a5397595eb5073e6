"""Published releases: a run's finished units copied with a manifest, the report rebuilt from them,
refusals of a folder that was tampered with, "not yet run" for claims whose results are not all in,
and the README's results block kept equal to the published folder."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, run_tool, tool_env

from adjoint_meta import config, paths, publish
from adjoint_meta.reference import paper
from adjoint_meta.report.provenance import params_hash

RELEASE = "study-v1"


def test_every_claim_names_the_units_it_rests_on():
    assert set(publish.CLAIM_GROUPS) == set(paper()["claims"])


def test_readme_block_is_the_published_one():
    """The README's results block is generated from published/<release>; it never drifts from it."""
    folder = ROOT / "published" / RELEASE
    if (folder / publish.MANIFEST).is_file():
        publish.verify(folder)
    assert publish.readme_current(ROOT / "README.md") == publish.readme_block(Path("published") / RELEASE)


def test_readme_without_a_block_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# nothing here\n")
    with pytest.raises(publish.PublishError, match="README.md: no results block"):
        publish.write_readme(tmp_path / "published" / RELEASE, readme)


def test_a_unit_is_finished_only_with_every_file_and_its_reference(tmp_path):
    params = config.load(ROOT / "tests" / "params.test.yaml")
    units = publish.unit_files(params)
    for files in units.values():
        for f in files["required"]:
            (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / f).write_text("x")
    done, pending = publish.finished(params, tmp_path)
    assert pending == [] and done == list(units)
    ablation = next(e for e, x in params["experiments"].items()
                    if (x.get("paired_test") or {}).get("experiment") not in (None, e))
    ref = params["experiments"][ablation]["paired_test"]["experiment"]
    (tmp_path / units[f"experiment:{ref}"]["required"][-1]).unlink()
    done, pending = publish.finished(params, tmp_path)
    assert f"experiment:{ref}" in pending and f"experiment:{ablation}" in pending  # it waits for its reference
    restricted = publish.restrict(params, done)
    assert ref not in restricted["experiments"] and ablation not in restricted["experiments"]


@pytest.fixture(scope="module")
def published(snakemake_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("published") / RELEASE
    run_tool(["adjoint_meta", "publish", "--run", str(snakemake_run), "--release", RELEASE, "--out", str(out)],
             snakemake_run, env=tool_env())
    return out


@pytest.mark.pipeline
def test_publish_copies_every_finished_unit_with_its_manifest(published, snakemake_run):
    manifest = json.loads((published / publish.MANIFEST).read_text())
    assert manifest["units"]["pending"] == []
    params = config.load(snakemake_run / "params.yaml")
    for files in publish.unit_files(params).values():
        for f in files["required"]:
            assert publish.stored(f) in manifest["files"], f
            assert manifest["files"][publish.stored(f)] == publish.sha256(published / publish.stored(f))
    assert set(manifest["files"]) == {str(p.relative_to(published)) for p in published.rglob("*")
                                      if p.is_file()} - {publish.MANIFEST}
    assert not any(f.endswith(".parquet") for f in manifest["files"])  # the raw data, reshaped: never published
    assert {j["step"] for j in manifest["jobs"]} >= {"train", "evaluate", "profile", "accuracy", "fewshot"}
    assert all(j["wall_s"] > 0 and j["cpu_s"] >= 0 for j in manifest["jobs"])
    for key in ("trained_commit", "report_commit", "published", "machine", "packages"):
        assert manifest[key], key
    assert (published / paths.REPORT).is_file() and (published / publish.VERDICTS).is_file()


@pytest.mark.pipeline
def test_the_rebuilt_verdict_table_equals_the_published_one(published, tmp_path):
    out = tmp_path / "rebuilt" / "report.html"
    run_tool(["adjoint_meta", "report", "--from", str(published), "--out", str(out)], ROOT)
    assert (out.parent / publish.VERDICTS).read_text() == (published / publish.VERDICTS).read_text()
    html = out.read_text()
    manifest = json.loads((published / publish.MANIFEST).read_text())
    assert manifest["trained_commit"] in html and "report built by commit" in html
    assert sorted(p.name for p in (out.parent / "figures").iterdir()) == sorted(
        p.name for p in (published / Path(paths.FIGURE).parent).iterdir())


@pytest.mark.pipeline
@pytest.mark.parametrize("damage", ["missing", "altered", "extra"])
def test_a_tampered_release_is_refused_naming_the_file(published, tmp_path, damage):
    folder = tmp_path / RELEASE
    shutil.copytree(published, folder)
    victim = folder / publish.VERDICTS
    if damage == "missing":
        victim.unlink()
    elif damage == "altered":
        victim.write_text(victim.read_text() + "x\n")
    else:
        victim = folder / "results" / "stray.txt"
        victim.write_text("not published")
    proc = run_tool(["adjoint_meta", "report", "--from", str(folder), "--out", str(tmp_path / "r.html")], ROOT,
                    check=False)
    assert proc.returncode != 0
    assert str(victim) in proc.stderr and damage.replace("extra", "not in the manifest") in proc.stderr
    assert not (tmp_path / "r.html").exists()


@pytest.mark.pipeline
def test_claims_whose_results_are_not_in_read_not_yet_run(snakemake_run, tmp_path):
    """A run with one Figure 2 evaluation missing: that experiment is pending, and so is every claim that
    rests on Figure 2's experiments; the tables' claims still get verdicts."""
    run = tmp_path / "run"
    shutil.copytree(snakemake_run, run, symlinks=True,
                    ignore=shutil.ignore_patterns(".snakemake", ".venv", "__pycache__"))
    params = config.load(run / "params.yaml")
    from adjoint_meta.report import loading

    _, others, _ = loading.experiment_groups(params)
    victim = next(c for c in config.cells(params) if c.experiment == others[0])
    (run / paths.EVAL.format(**victim.as_dict())).unlink()
    for j in config.accuracy_jobs(params):  # every accuracy study still to come: its section says so
        (run / paths.ACCURACY.format(**j)).unlink()
    out = tmp_path / RELEASE
    run_tool(["adjoint_meta", "publish", "--run", str(run), "--release", RELEASE, "--out", str(out)], run)
    manifest = json.loads((out / publish.MANIFEST).read_text())
    assert f"experiment:{others[0]}" in manifest["units"]["pending"]
    assert not any(f.startswith(f"results/eval/{others[0]}/") for f in manifest["files"])
    rows = {r["key"]: r["verdict"] for r in
            __import__("csv").DictReader((out / publish.VERDICTS).read_text().splitlines())}
    for key in ("figure2", "maml1", "imaml", "fomaml_reptile", "reptile"):
        assert rows[key] == publish.NOT_YET_RUN, key
    assert rows["tables"] != publish.NOT_YET_RUN
    html = (out / paths.REPORT).read_text()
    assert "not yet run" in html and f"experiment:{others[0]}" in html
    section = html.split("<h2>Gradient accuracy (beyond the paper)</h2>")[1].split("<h2")[0]
    assert "Not yet run: its part of this release is still running" in section, section
    assert f"parameters hash <code>{params_hash(params)}</code>" in html  # the release's, not its finished part's
    block = publish.readme_block(out)
    assert "still running: " in block and f"experiment:{others[0]}" in block


def test_compressed_results_expand_to_the_same_bytes_and_compress_reproducibly(tmp_path):
    rel = "results/eval/x/seed0.csv"
    text = "step,task,nrmse\n" + "".join(f"{i},0,{i / 7:.6f}\n" for i in range(25))
    for run in ("a", "b"):
        (tmp_path / run / rel).parent.mkdir(parents=True)
        (tmp_path / run / rel).write_text(text)
        assert publish.compress(tmp_path / run / rel).name == Path(publish.stored(rel)).name
    assert publish.sha256(tmp_path / "a" / publish.stored(rel)) == publish.sha256(tmp_path / "b" / publish.stored(rel))
    publish.expand(tmp_path / "a")
    assert (tmp_path / "a" / rel).read_text() == text and not (tmp_path / "a" / publish.stored(rel)).exists()


def test_a_thinned_training_log_keeps_every_tenth_step_and_the_last(tmp_path):
    log = tmp_path / "results" / "train" / "seed0.csv"
    log.parent.mkdir(parents=True)
    log.write_text("meta_step,query_loss\n" + "".join(f"{i},{1 / i:.5f}\n" for i in range(1, 26)))
    publish.compress(log, thin=10)
    publish.expand(tmp_path)
    assert [line.split(",")[0] for line in log.read_text().splitlines()] == ["meta_step", "10", "20", "25"]
