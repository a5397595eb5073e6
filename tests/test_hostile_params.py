"""Hostile parameters: every key, a wrong type or an out-of-range value, stops before any work
with a message naming the key; random parameter sets never crash the validator."""
from __future__ import annotations

import copy
import re

import pytest
from conftest import ROOT, TEST_PARAMS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adjoint_meta import config

BASE = config.read_yaml(ROOT / "params.yaml")


def leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, (*path, k))
    else:
        yield path, node


def wrong_type(value):
    if isinstance(value, bool):
        return "maybe"
    if isinstance(value, (int, float)):
        return "a few"
    if isinstance(value, str):
        return 12.5  # neither a string nor an integer (some keys take either, e.g. keep_every: sqrt)
    return {"unexpected": "mapping"}  # lists and null


ALL_LEAVES = [p for p, _ in leaves(BASE) if p[0] != "presets"]


@pytest.mark.parametrize("path", ALL_LEAVES, ids=[".".join(map(str, p)) for p in ALL_LEAVES])
def test_every_key_with_a_wrong_type_is_named(path):
    doc = copy.deepcopy(BASE)
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = wrong_type(node[path[-1]])
    with pytest.raises(config.ParamsError) as info:
        config.validate(doc)
        config.apply_preset(doc)
    assert ".".join(map(str, path)) in str(info.value) or path[-1] in str(info.value), str(info.value)


@pytest.mark.parametrize("override, key", [
    ({"experiments.table1.steps": -5}, "experiments.table1.steps: must be >= 1"),
    ({"experiments.table1.maml_steps": 0}, "experiments.table1.maml_steps: must be >= 1"),
    ({"datasets.cosmixture.n_train_tasks": 0}, "datasets.cosmixture.n_train_tasks: must be >= 1"),
    ({"datasets.jester.n_test_tasks": 0}, "datasets.jester.n_test_tasks: must be >= 1"),
    ({"meta.meta_batch": 0}, "meta.meta_batch: must be >= 1"),
    ({"settings.20shot-30val": {"shot": 60, "val": 50}}, "exceeds datasets.jester.n_items (100)"),
    ({"experiments.table1.estimators": ["amaml", "maml7"]}, "'maml7' is not defined under 'estimators'"),
    ({"experiments.table1.datasets": ["netflix"]}, "'netflix' is not defined under 'datasets'"),
    ({"estimators.maml.kind": "maml2"}, "estimators.maml.kind: 'maml2' is not allowed"),
    ({"datasets.ml100k.source": "ml10m"}, "datasets.ml100k.source: 'ml10m' is not allowed"),
    ({"meta.lr": float("nan")}, "meta.lr: must be a finite number"),
    ({"inner.alpha": float("inf")}, "inner.alpha: must be a finite number"),
    ({"presets.quick.meta.meta_epochs": -1}, "presets.quick: invalid parameters"),
    ({"profiles.fig34.estimators": ["amaml", "nope"]}, "profiles.fig34.estimators: 'nope' is not defined"),
    ({"raw.sources": ["jester"]}, "datasets.ml100k.source: 'ml100k' is not listed in raw.sources"),
    ({"evaluation.record_every": 5000}, "evaluation.record_every: 5000 exceeds experiments.table1.eval_steps"),
    ({"experiments.table1.estimators": ["amaml", "tbptt"], "estimators.tbptt.window": 80},
     "estimators.tbptt.window: 80 exceeds experiments.table1.steps (50)"),
    # learned inner step sizes
    ({"estimators.maml_adjoint.learn_rate": "layer", "estimators.maml_adjoint.rate_init": 0},
     "estimators.maml_adjoint.rate_init: must be > 0"),
    ({"estimators.maml_adjoint.learn_rate": "scalar", "estimators.maml_adjoint.rate_method": "es",
      "estimators.maml_adjoint.es_population": 4, "estimators.maml_adjoint.es_elite": 6},
     "estimators.maml_adjoint.es_elite: 6 particles kept of a population of estimators.maml_adjoint.es_population"),
    ({"estimators.maml_adjoint.learn_rate": "parameter", "estimators.maml_adjoint.rate_method": "forward"},
     "estimators.maml_adjoint.rate_method: forward mode carries one tangent per learned rate"),
    ({"estimators.maml_adjoint.learn_rate": "layer", "estimators.maml_adjoint.rate_method": "es"},
     "estimators.maml_adjoint.learn_rate: selection ES (rate_method: es) learns one scalar step size"),
    ({"estimators.maml_adjoint.learn_rate": "every"}, "estimators.maml_adjoint.learn_rate: 'every' is not allowed"),
    # the released code's test protocol (a candidate nRMSE definition)
    ({"evaluation.released_protocol.steps": 0}, "evaluation.released_protocol.steps: must be >= 1"),
    ({"evaluation.released_protocol.lr": 0}, "evaluation.released_protocol.lr: must be > 0"),
    ({"evaluation.released_protocol.lr": -1e-3}, "evaluation.released_protocol.lr: must be > 0"),
    ({"evaluation.released_protocol.lr": float("nan")}, "evaluation.released_protocol.lr: must be a finite number"),
    ({"evaluation.released_protocol.record_every": 0}, "evaluation.released_protocol.record_every: must be >= 1"),
    ({"evaluation.released_protocol.steps": 2.5}, "evaluation.released_protocol.steps: must be of type integer"),
    ({"evaluation.released_protocol.record_every": 6000},
     "evaluation.released_protocol.record_every: 6000 exceeds evaluation.released_protocol.steps (5000)"),
    ({"evaluation.released_protocol.weight_decay": 0.1}, "unknown key evaluation.released_protocol.weight_decay"),
    ({"evaluation.released_protocol": None}, "evaluation.released_protocol: must be of type object"),
    ({"experiments.nrmse_definitions": copy.deepcopy(BASE["experiments"]["table1"])},
     "experiments.nrmse_definitions: the name is taken"),
])
def test_out_of_range_and_unknown_values_are_named(override, key, tmp_path):
    import yaml

    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(config.apply_overrides(BASE, override), sort_keys=False))
    with pytest.raises(config.ParamsError) as info:
        config.load(p)
    assert key in str(info.value), str(info.value)


def test_a_setting_no_user_can_serve_is_named_from_the_task_summary(tmp_path):
    """shot + val above every user's ratings: found before any work once the task summary exists."""
    import json

    doc = config.apply_preset(copy.deepcopy(BASE))
    summary = tmp_path / "data" / "tasks" / "ml100k.json"
    summary.parent.mkdir(parents=True)
    made = {"filter": {"n_items": 100, "min_ratings": 20}, "ratings_per_task": {"max": 45}}
    summary.write_text(json.dumps(made))
    assert config.check_against_tasks(doc, tmp_path) == [
        f"settings.20shot-30val: shot + val = 50 exceeds the ratings of every user of datasets.ml100k (at most "
        f"45, {summary}), so no training task of experiments.{e} could be drawn" for e in ("table1", "table2")]
    made["filter"]["min_ratings"] = 5  # made with another filter: not evidence about these parameters
    summary.write_text(json.dumps(made))
    assert config.check_against_tasks(doc, tmp_path) == []


def test_training_refuses_a_setting_too_few_tasks_can_serve(tmp_path):
    """Without a summary beforehand, the training step names the setting before its first meta-step."""
    from adjoint_meta import train

    spec = config.load(TEST_PARAMS)
    cell = next(c.as_dict() for c in config.cells(spec) if spec["datasets"][c.dataset]["source"] == "synthetic")
    spec["settings"][cell["setting"]] = {"shot": 150, "val": 50}  # all 200 points of a synthetic task
    spec["meta"]["meta_batch"] = 3
    from adjoint_meta.make_tasks import run as make_tasks

    ds = spec["datasets"][cell["dataset"]]
    ds.update(n_train_tasks=2, train_points=199)
    tasks = tmp_path / "t.parquet"
    make_tasks(spec, cell["dataset"], str(tasks), str(tmp_path / "t.json"))
    with pytest.raises(config.ParamsError, match=rf"settings\.{cell['setting']}: only 0 of the 2 training tasks"):
        train.run(spec, cell, str(tasks), str(tmp_path / "m.pt"), str(tmp_path / "m.csv"))
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "m.csv").exists()


def test_cli_stops_before_any_work(tmp_path, capsys):
    from adjoint_meta.cli import main

    out = tmp_path / "t.parquet"
    code = main(["make-tasks", "--params", str(TEST_PARAMS), "--set", "datasets.cosmixture.n_train_tasks=-3",
                 "--dataset", "cosmixture", "--out", str(out), "--summary", str(tmp_path / "t.json")])
    assert code == 2 and "datasets.cosmixture.n_train_tasks: must be >= 1" in capsys.readouterr().err
    assert not out.exists()


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=8), st.lists(st.integers(-3, 3), max_size=3))
# every listed problem starts with the key it is about ("missing key a.b", "unknown key a.b", "a.b: ...")
ITEM = re.compile(r"^(?:missing key |unknown key )?([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)")


def _problems(message: str) -> list[str]:
    head, _, rest = message.partition("invalid parameters:")
    assert rest, message
    return [line.strip()[2:] for line in rest.strip().splitlines()]


def _about(problem: str, changed: list[tuple]) -> bool:
    """The problem names a changed key, a key above or below it, or the changed name itself
    (a cross-reference that no longer resolves, e.g. a deleted dataset an experiment lists),
    or names the changed key in its text (a limit one key sets on another:
    "meta.meta_batch: 5 exceeds datasets.sinusoid.n_train_tasks (1)")."""
    key = ITEM.match(problem).group(1).split(".")
    for path in changed:
        p = [str(x) for x in path]
        if key[:len(p)] == p[:len(key)] or f"'{p[-1]}'" in problem:
            return True
        if re.search(rf"(?<![\w.]){re.escape('.'.join(p))}(?![\w])", problem):
            return True
    return False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_parameter_sets_never_crash_the_validator(data):
    doc = copy.deepcopy(BASE)
    changed: list[tuple] = []
    for _ in range(data.draw(st.integers(1, 4))):
        paths = [p for p, _ in leaves(doc)]
        path = data.draw(st.sampled_from(paths))
        node = doc
        for part in path[:-1]:
            node = node[part]
        action = data.draw(st.sampled_from(["set", "delete", "add"]))
        if action == "set":
            node[path[-1]] = data.draw(scalars)
        elif action == "delete":
            del node[path[-1]]
        else:
            name = data.draw(st.text("abcxyz_", min_size=1, max_size=6))
            node[name] = data.draw(scalars)
            path = (*path[:-1], name)
        changed.append(path)
    try:
        config.validate(doc)
        config.apply_preset(doc)
    except config.ParamsError as exc:
        problems = _problems(str(exc))
        assert all(ITEM.match(p) for p in problems), str(exc)
        assert any(_about(p, changed) for p in problems), (changed, str(exc))


# each named cross-check of config.checks, with a case that only it catches: the check's name, an
# override of params.yaml, and the start of its message
CHECK_CASES = {
    "preset": ({"preset": "tiny"}, "preset: 'tiny' is not defined"),
    "experiment_names": ({"experiments.fig2_100shot.estimators": ["amaml", "maml7"]},
                         "experiments.fig2_100shot.estimators: 'maml7' is not defined under 'estimators'"),
    "eval_steps": ({"experiments.fig2_100shot.eval_steps": 100}, "experiments.fig2_100shot.eval_steps: must be >= "),
    "settings_fit_datasets": ({"datasets.jester.min_test_ratings": 20},
                              "settings.20shot-30val: shot = 20 leaves no rating to evaluate"),
    "record_every": ({"evaluation.record_every": 300}, "evaluation.record_every: 300 exceeds experiments.table1"),
    "estimator_configurations": ({"estimators.amaml_rk4.backward": "discrete"},
                                 "estimators.amaml_rk4.backward: 'discrete' is the exact adjoint of an euler"),
    "learned_rates": ({"estimators.maml_adjoint.learn_rate": "layer", "evaluation.optimizer": "adam"},
                      "evaluation.optimizer: 'adam' cannot fine-tune with the step sizes that estimators.maml_adjoint"),
    "compile_backend": ({"runtime.compile": True, "datasets.alpine.backend": "torch_func"},
                        "runtime.compile: true compiles the hand-derived MLP's passes; datasets.alpine.backend"),
    "reserved_names": ({"experiments.nrmse_definitions": copy.deepcopy(BASE["experiments"]["table1"])},
                       "experiments.nrmse_definitions: the name is taken"),
    "fewshot": ({"fewshot.ways": 6}, "fewshot.ways: 6 classes per task, but the test tasks have 5"),
    "studies": ({"accuracy.real.estimators": ["amaml", "pretrain"]},
                "accuracy.real.estimators: 'pretrain' is a baseline"),
    "paired_tests": ({"experiments.table2.paired_test": {"estimator": "es"}},
                     "experiments.table2.paired_test.estimator: 'es' is not trained in experiments.table2"),
    "raw_sources": ({"datasets.ml1m.source": "ml100k"},
                    "datasets.ml1m.source: 'ml100k' is already the source of datasets.ml100k"),
    "meta_batch": ({"meta.meta_batch": 150}, "meta.meta_batch: 150 exceeds datasets.cosmixture.n_train_tasks"),
}


def test_every_named_check_has_its_own_case():
    from adjoint_meta.config import checks

    assert list(CHECK_CASES) == list(checks.CHECKS)


@pytest.mark.parametrize("name", list(CHECK_CASES))
def test_each_named_check_names_the_key(name):
    from adjoint_meta.config import checks

    override, message = CHECK_CASES[name]
    doc = config.apply_overrides(BASE, override)
    found = {n: list(checks.CHECKS[n](doc)) for n in checks.CHECKS}
    assert [m for m in found[name] if m.startswith(message)], found[name]
    assert not [n for n, msgs in found.items() if msgs and n != name], found  # no other check fires
    with pytest.raises(config.ParamsError, match=re.escape(message)):
        config.validate(doc)
