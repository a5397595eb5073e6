"""params.yaml validation: every problem stops the run with a message naming the key."""
from __future__ import annotations

import copy
import json

import pytest
from conftest import ROOT, TEST_PARAMS

from adjoint_meta import config


@pytest.fixture(scope="module")
def base() -> dict:
    return config.read_yaml(ROOT / "params.yaml")


def _err(doc: dict) -> str:
    with pytest.raises(config.ParamsError) as info:
        config.validate(doc)
        config.apply_preset(doc)
    return str(info.value)


def test_project_parameter_files_are_valid():
    for path in (ROOT / "params.yaml", TEST_PARAMS):
        params = config.load(path)
        assert config.cells(params), path
        for name in params["presets"]:
            config.load(path, {"preset": name})


def test_unknown_key_names_key_and_allowed_keys(base):
    doc = copy.deepcopy(base)
    doc["meta"]["lrr"] = 0.1
    msg = _err(doc)
    assert "unknown key meta.lrr" in msg and "allowed keys here: lr, meta_batch" in msg


def test_bad_enum_names_allowed_values(base):
    doc = copy.deepcopy(base)
    doc["meta"]["optimizer"] = "adamw"
    assert "meta.optimizer: 'adamw' is not allowed; allowed values: adam, sgd" in _err(doc)


@pytest.mark.parametrize("dotted, value, expect", [
    ("inner.alpha", -0.01, "inner.alpha: must be > 0"),
    ("meta.meta_epochs", 0, "meta.meta_epochs: must be >= 1"),
    ("meta.meta_batch", "five", "meta.meta_batch: must be of type integer"),
    ("runtime.device", "tpu", "runtime.device: 'tpu' is not allowed; allowed values: auto, cpu, cuda"),
    ("experiments.fig2_50shot.steps", -5, "experiments.fig2_50shot.steps: must be >= 1"),
])
def test_out_of_range_values(base, dotted, value, expect):
    doc = config.apply_overrides(base, {dotted: value})
    assert expect in _err(doc)


def test_experiment_naming_undefined_names(base):
    doc = copy.deepcopy(base)
    doc["experiments"]["fig2_50shot"]["estimators"] = ["maml", "nope"]
    doc["experiments"]["fig2_50shot"]["datasets"] = ["jester_typo"]
    msg = _err(doc)
    assert "experiments.fig2_50shot.estimators: 'nope' is not defined under 'estimators'" in msg
    assert "experiments.fig2_50shot.datasets: 'jester_typo' is not defined under 'datasets'" in msg


def test_setting_larger_than_task_is_rejected(base):
    doc = copy.deepcopy(base)
    doc["settings"]["50shot-50val"] = {"shot": 150, "val": 100}
    msg = _err(doc)
    assert "settings.50shot-50val: shot + val = 250 exceeds datasets.cosmixture.train_points" in msg


def test_unknown_preset_and_grid_changing_preset(base):
    doc = copy.deepcopy(base)
    doc["preset"] = "tiny"
    assert "preset: 'tiny' is not defined; allowed values: full, quick" in _err(doc)
    doc = copy.deepcopy(base)
    doc["presets"]["quick"]["experiments"] = {"fig2_50shot": {"estimators": ["maml"]}}
    doc["preset"] = "quick"
    assert "presets.quick: a preset may change sizes, not which outputs exist" in _err(doc)


def test_quick_preset_shrinks_sizes(base):
    full = config.load(ROOT / "params.yaml")
    quick = config.load(ROOT / "params.yaml", {"preset": "quick"})
    assert quick["meta"]["meta_epochs"] < full["meta"]["meta_epochs"]
    assert config.cells(quick) == config.cells(full)


def test_yaml_exponent_floats_and_dotted_overrides(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text((ROOT / "params.yaml").read_text().replace("lr: 0.001", "lr: 1e-3"))
    assert config.load(p)["meta"]["lr"] == pytest.approx(1e-3)
    assert config.load(p, {"meta.lr": 0.02})["meta"]["lr"] == 0.02


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("seed: 0\nmeta: [unclosed\n")
    with pytest.raises(config.ParamsError, match=r"broken.yaml:\d+: not valid YAML"):
        config.load(p)


def test_slice_round_trip_is_validated():
    params = config.load(TEST_PARAMS)
    cell = config.cells(params)[0].as_dict()
    text = config.slice_json(params, "train", **cell)
    assert config.load_slice(text, "train", **cell) == config.prune(params, "train", **cell)
    bad = json.loads(text)
    bad["meta"]["optimizer"] = "rmsprop"
    with pytest.raises(config.ParamsError, match="meta.optimizer: 'rmsprop' is not allowed"):
        config.load_slice(json.dumps(bad), "train", **cell)
    del bad["meta"]
    with pytest.raises(config.ParamsError, match="missing key meta.optimizer"):
        config.load_slice(json.dumps(bad), "train", **cell)


def test_slice_holds_only_what_the_step_reads():
    params = config.load(ROOT / "params.yaml")
    cell = config.cells(params)[0].as_dict()
    sl = config.prune(params, "train", **cell)
    assert set(sl) == {"seed", "runtime", "inner", "datasets", "settings", "estimators", "meta", "experiments"}
    assert "seeds" not in sl["meta"] and "eval_steps" not in sl["experiments"][cell["experiment"]]
    assert list(sl["estimators"]) == [cell["estimator"]]
