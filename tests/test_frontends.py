"""Snakemake and DVC must describe the same pipeline: same outputs, same parameter keys, same code deps."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT, TEST_PARAMS, copy_project, run_tool

from adjoint_meta import codedeps, config, dvc_yaml, paths

STAGE_PREFIXES = (("fetch", "fetch"), ("make_tasks", "make-tasks"), ("train_", "train"),
                  ("evaluate_", "evaluate"), ("profile", "profile"), ("accuracy", "accuracy"),
                  ("summarize", "summarize"), ("report", "report"), ("fewshot", "fewshot"), ("protonet", "protonet"))


def step_of(stage) -> str | None:
    base = stage.name.split("@")[0]
    if base == CODE_STAGE:
        return None
    return next(step for prefix, step in STAGE_PREFIXES if base.startswith(prefix))


CODE_STAGE = dvc_yaml.CODE_STAGE  # the stage that writes every job's code input
FINGERPRINTS = paths.CODE_DIR  # the code inputs: no Snakemake rule writes them


def snakemake_outputs(project: Path) -> set[str]:
    out = run_tool(["snakemake", "--summary", "--cores", "1"], project).stdout
    files = {line.split("\t")[0] for line in out.splitlines()[1:] if "\t" in line}
    return {f for f in files if not f.startswith(("logs/",))}


def dvc_stages(project: Path):
    from dvc.repo import Repo

    return list(Repo(str(project.resolve()), uninitialized=True).index.stages)


def covered(path: str, outs: set[str]) -> bool:
    return any(path == o or path.startswith(o.rstrip("/") + "/") for o in outs)


@pytest.fixture(scope="module", params=["params.yaml", "tests/params.test.yaml"])
def both(request, tmp_path_factory):
    params = ROOT / request.param
    project = copy_project(tmp_path_factory.mktemp("frontends"), params)
    return config.load(params), project


def test_same_outputs(both):
    params, project = both
    snake = snakemake_outputs(project)
    # (the code inputs: Snakemake writes them when it loads the workflow, DVC in its code stage)
    dvc = {str(o) for s in dvc_stages(project) if s.name != CODE_STAGE for o in s.outs}
    assert snake, "snakemake named no outputs"
    missing_in_dvc = sorted(f for f in snake if not covered(f, dvc))
    missing_in_snake = sorted(o for o in dvc if not any(covered(f, {o}) for f in snake))
    assert not missing_in_dvc, f"Snakemake outputs that no DVC stage produces: {missing_in_dvc}"
    assert not missing_in_snake, f"DVC outputs that no Snakemake rule produces: {missing_in_snake}"
    # and every training cell of the parameters is in both
    for c in config.cells(params):
        assert paths.MODEL.format(**c.as_dict()) in snake


def test_dvc_stage_groups_match_experiments(both):
    params, project = both
    groups = {s.name.split("@")[0] for s in dvc_stages(project)}
    for exp in params["experiments"]:
        assert {f"train_{exp}", f"evaluate_{exp}"} <= groups, f"dvc.yaml lacks the stages of experiment {exp}"
    extra = {g for g in groups if re.match(r"(train|evaluate)_", g)} - \
        {f"{k}_{e}" for e in params["experiments"] for k in ("train", "evaluate")}
    assert not extra, f"dvc.yaml has stages for experiments not in params.yaml: {extra}"
    profiles = {s.name.partition("@")[2] for s in dvc_stages(project) if s.name.startswith("profile@")}
    assert profiles == set(params["profiles"]), "dvc.yaml's profile stages must match params.yaml's profiles"


def _wildcards(stage, params: dict) -> dict:
    out = str(stage.outs[0])
    base, _, key = stage.name.partition("@")
    if base == "fetch":
        return {"source": key}
    if base == "profile":
        p = params["profiles"][key]
        return {"profile": key, "dataset": p["dataset"], "setting": p["setting"]}
    if base == "accuracy":
        a = params["accuracy"][key]
        return {"name": key, "dataset": a["dataset"], "setting": a["setting"]}
    if stage.name.startswith("make_tasks"):
        return {"dataset": Path(out).stem}
    m = re.match(r"results/fewshot/(?P<estimator>[^/]+)/seed(?P<seed>\d+)\.", out) or re.match(
        r"results/protonet/seed(?P<seed>\d+)\.", out)
    if m:
        return m.groupdict()
    m = re.match(r"results/\w+/(?P<experiment>[^/]+)/(?P<dataset>[^/]+)/(?P<setting>[^/]+)/"
                 r"(?P<estimator>[^/]+)/seed(?P<seed>\d+)\.", out)
    return m.groupdict() if m else {}


def test_dvc_params_are_the_keys_each_step_reads(both):
    params, project = both
    for stage in dvc_stages(project):
        step = step_of(stage)
        declared = {k for p in stage.deps if hasattr(p, "params") for k in (p.params or [])}
        if stage.name == CODE_STAGE:
            continue
        if config.RELEVANT_KEYS[step] == ["*"]:
            assert not declared, f"{stage.name} should track the whole params.yaml"
            continue
        wanted = {t.format(**_wildcards(stage, params)) for t in config.RELEVANT_KEYS[step]}
        assert declared - {"preset", "presets"} == wanted, stage.name
        assert {"preset", "presets"} <= declared, f"{stage.name} must depend on the preset"


def test_dvc_code_deps_are_the_derived_ones(both):
    """Each stage depends on its job's code input, which the code stage writes from every file some job
    can be changed by; the same file each Snakemake job of the stage's outputs names."""
    params, project = both
    stages = dvc_stages(project)
    (code,) = [s for s in stages if s.name == CODE_STAGE]
    package = {str(d) for d in code.deps if str(d).startswith(codedeps.SOURCE_DIR + "/")}
    assert package == set(codedeps.possible_files()) | set(codedeps.module_files(codedeps.__name__))
    assert [str(o) for o in code.outs] == [FINGERPRINTS]
    expected = set(codedeps.code_inputs(params))
    used = set()
    for stage in stages:
        if stage is code:
            continue
        step = step_of(stage)
        deps = {str(d) for d in stage.deps}
        assert not {d for d in deps if d.startswith(codedeps.SOURCE_DIR + "/")}, stage.name
        (mine,) = [d for d in deps if d.startswith(FINGERPRINTS + "/")]
        key = _wildcards(stage, params).get(codedeps.KEYS.get(step, ""))
        assert mine == codedeps.code_input(step, key), stage.name
        used.add(mine)
    assert used == expected, "dvc.yaml's jobs and codedeps.code_inputs name other code inputs"
    # Snakemake's jobs name the same (its dry run lists every job's inputs)
    out = run_tool(["snakemake", "-n", "--cores", "1", "--forceall"], project).stdout
    named = {f.strip() for line in re.findall(r"\n    input: ([^\n]+)", out) for f in line.split(",")
             if f.strip().startswith(FINGERPRINTS + "/")}
    assert named == expected


def test_dvc_yaml_is_what_the_generator_writes():
    """dvc.yaml is written by `adjoint-meta dvc-yaml`; the committed file must be current."""
    assert (ROOT / "dvc.yaml").read_text() == dvc_yaml.render(config.load(ROOT / "params.yaml")), \
        "dvc.yaml is stale: run `adjoint-meta dvc-yaml` and commit it"
    proc = run_tool(["adjoint_meta", "dvc-yaml", "--check"], ROOT, check=False)
    assert proc.returncode == 0 and "up to date" in proc.stdout, proc.stderr


def test_dvc_yaml_check_fails_on_a_stale_file(tmp_path):
    stale = tmp_path / "dvc.yaml"
    stale.write_text((ROOT / "dvc.yaml").read_text().replace("src/adjoint_meta/optim.py\n", "", 1))
    proc = run_tool(["adjoint_meta", "dvc-yaml", "--check", "--out", str(stale)], ROOT, check=False)
    assert proc.returncode != 0 and "rerun `adjoint-meta dvc-yaml`" in proc.stderr


def test_snakemake_config_overrides_reach_the_jobs_typed(tmp_path):
    """Snakemake's --config takes identifier keys only and reads nested values as strings;
    a mapping per top-level key must still reach every job's slice with the schema's types,
    and a wrong value must be refused naming its key."""
    project = copy_project(tmp_path / "p", TEST_PARAMS)
    # (compile applies to the hand-derived MLP: the dataset on the torch.func backend is switched back)
    out = run_tool(["snakemake", "-n", "-p", "--cores", "1", "--config", "meta={lr: 0.5, meta_epochs: 3}",
                    "runtime={compile: true}", "datasets={ml100k: {backend: mlp}}"], project).stdout
    slices = re.findall(r"--slice '([^']*)'", out)
    train = [s for s in slices if '"meta_epochs"' in s and '"fewshot"' not in s]  # the few-shot jobs have their own
    assert train and all('"lr":0.5' in s and '"meta_epochs":3' in s and '"compile":true' in s for s in train)
    bad = run_tool(["snakemake", "-n", "--cores", "1", "--config", "meta={lr: fast}"], project, check=False)
    assert bad.returncode != 0 and "meta.lr" in bad.stdout + bad.stderr
    assert config.snakemake_overrides({"params": "x.yaml", "seed": 3, "meta": {"seeds": ["0", "1"], "lr": "1e-3"}}) \
        == {"seed": 3, "meta": {"seeds": [0, 1], "lr": 1e-3}}
