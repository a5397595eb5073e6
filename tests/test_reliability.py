"""Fault tests: interrupted training, corrupt checkpoints, numerical faults, determinism."""
from __future__ import annotations

import copy
import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TEST_PARAMS, tool_env

from adjoint_meta import checkpoint, config, evaluate, make_tasks, model_file, train
from adjoint_meta.outer_loop import NonFiniteError

CELL = dict(experiment="fig2_50shot", dataset="cosmixture", setting="5shot-5val", estimator="amaml", seed=0)


@pytest.fixture(scope="module")
def params():
    return config.load(TEST_PARAMS)


@pytest.fixture(scope="module")
def tasks(params, tmp_path_factory):
    d = tmp_path_factory.mktemp("tasks")
    make_tasks.run(config.prune(params, "make-tasks", dataset="cosmixture"), "cosmixture",
                   str(d / "t.parquet"), str(d / "t.json"))
    return str(d / "t.parquet")


def _spec(params, estimator="amaml", **changes) -> tuple[dict, dict]:
    cell = dict(CELL, estimator=estimator)
    spec = config.prune(params, "train", **cell)
    for dotted, value in changes.items():
        config.set_dotted(spec, dotted, value)
    return spec, cell


def _train(spec, cell, tasks, d: Path, name: str) -> torch.Tensor:
    train.run(spec, cell, tasks, str(d / f"{name}.pt"), str(d / f"{name}.csv"))
    return model_file.load(d / f"{name}.pt")[0]


# ---------------------------------------------------------------- interruption and resumption
KILL_AFTER_UPDATE = """
import os, signal, sys
from adjoint_meta import cli, optim
at, done = int(sys.argv[1]), [0]
def counted(step):
    def wrapped(self, grad):
        step(self, grad)
        done[0] += 1
        if done[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)
    return wrapped
optim.Adam.step, optim.SGD.step = counted(optim.Adam.step), counted(optim.SGD.step)
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("estimator", ["amaml", "es"])  # ES also carries a random generator of its own
def test_sigkill_at_a_random_meta_step_then_resume_is_bit_identical(params, tasks, tmp_path, estimator):
    spec, cell = _spec(params, estimator, **{"meta.meta_epochs": 160, "runtime.checkpoint_every": 7,
                                            "runtime.log_every": 1, "experiments.fig2_50shot.steps": 40})
    reference = _train(spec, cell, tasks, tmp_path, "reference")

    kill_at = random.Random(os.environ.get("FAULT_SEED", 0) or None).randint(10, 140)
    out, log = tmp_path / "killed.pt", tmp_path / "killed.log"
    cmd = [sys.executable, "-m", "adjoint_meta", "train", "--slice", json.dumps(spec),
           *[f"--{k}={v}" for k, v in cell.items()], "--tasks", tasks, "--out-model", str(out),
           "--out-log", str(tmp_path / "killed.csv"), "--log", str(log)]
    # the job kills itself right after the outer update of meta-step kill_at: the same point on any
    # host, however fast or loaded (a watcher polling the log could miss it on a fast one)
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_UPDATE, str(kill_at), *cmd[3:]], env=tool_env(),
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, f"the run ended before meta-step {kill_at}: {killed.stderr[-2000:]}"
    assert not out.exists() and checkpoint.path_for(out).exists()

    rerun = subprocess.run(cmd, env=tool_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from" in log.read_text()
    resumed = model_file.load(out)[0]
    assert torch.equal(resumed, reference), f"killed near meta-step {kill_at}: resumed theta differs"
    assert not checkpoint.path_for(out).exists(), "a finished run removes its checkpoint"
    # the metrics computed from both are identical too
    ev_spec = config.prune(params, "evaluate", **cell)
    a = evaluate.run(ev_spec, cell, str(tmp_path / "reference.pt"), tasks, str(tmp_path / "a.json"),
                     str(tmp_path / "a.csv"))
    b = evaluate.run(ev_spec, cell, str(out), tasks, str(tmp_path / "b.json"), str(tmp_path / "b.csv"))
    assert a == b


@pytest.mark.parametrize("damage, message", [
    ("flip", "corrupt checkpoint"),
    ("truncate", "unreadable checkpoint"),
    ("params", "written for other parameters"),
    ("cell", "written for another job"),
])
def test_bad_checkpoints_are_refused(params, tasks, tmp_path, damage, message):
    spec, cell = _spec(params, **{"runtime.checkpoint_every": 5})
    out = tmp_path / "m.pt"
    ckpt = checkpoint.path_for(out)
    owner = checkpoint.owner_of(spec, cell)
    checkpoint.save(ckpt, {"step": 5, "payload": list(range(1000))}, owner)
    if damage == "flip":
        blob = torch.load(ckpt, weights_only=False)
        payload = bytearray(blob["payload"])
        payload[len(payload) // 2] ^= 0xFF
        blob["payload"] = bytes(payload)
        torch.save(blob, ckpt)
    elif damage == "truncate":
        data = ckpt.read_bytes()
        ckpt.write_bytes(data[: len(data) // 3])
    elif damage == "params":
        spec["meta"]["lr"] = 0.5
    else:
        cell = dict(cell, seed=1)
    with pytest.raises(checkpoint.CheckpointError, match=message) as info:
        train.run(spec, cell, tasks, str(out), str(tmp_path / "m.csv"))
    assert str(ckpt) in str(info.value) and "delete" in str(info.value)
    assert not out.exists()


def test_checkpoint_frequency_does_not_change_results(params, tasks, tmp_path):
    a = _train(*_spec(params, **{"runtime.checkpoint_every": 0}), tasks, tmp_path, "a")
    b = _train(*_spec(params, **{"runtime.checkpoint_every": 3}), tasks, tmp_path, "b")
    assert torch.equal(a, b)


# ---------------------------------------------------------------- determinism
def test_same_seed_same_outputs_other_seed_other_outputs(params, tasks, tmp_path):
    spec, cell = _spec(params, "es")
    a, b = _train(spec, cell, tasks, tmp_path, "a"), _train(spec, cell, tasks, tmp_path, "b")
    assert torch.equal(a, b)
    assert (tmp_path / "a.csv").read_text().split("\n")[1].split(",")[:3] == \
        (tmp_path / "b.csv").read_text().split("\n")[1].split(",")[:3]
    other_spec = copy.deepcopy(spec)
    other_spec["seed"] = 7
    assert not torch.equal(_train(other_spec, cell, tasks, tmp_path, "c"), a)
    assert not torch.equal(_train(spec, dict(cell, seed=1), tasks, tmp_path, "d"), a)


# ---------------------------------------------------------------- numerical faults
def test_diverging_inner_learning_rate_is_reported_with_step_and_task(params, tasks, tmp_path):
    spec, cell = _spec(params, "fomaml", **{"inner.alpha": 1e6})
    with pytest.raises(NonFiniteError, match=r"meta-step 1 for training task\(s\) \[\d+(, \d+)*\]"):
        train.run(spec, cell, tasks, str(tmp_path / "m.pt"), str(tmp_path / "m.csv"))
    assert not (tmp_path / "m.pt").exists()


def test_blown_up_adjoint_sweep_is_reported_and_theta_untouched(params, tasks, tmp_path):
    """A stable adaptive forward solve but an explicit backward sweep with a far too large step:
    the adjoint explodes, and the run stops with the meta-step and the tasks."""
    spec, cell = _spec(params, "amaml", **{"inner.alpha": 2.0, "experiments.fig2_50shot.steps": 200})
    spec["estimators"]["amaml"]["backward"] = "euler"
    with pytest.raises(NonFiniteError, match=r"meta-step 1 for training task\(s\)"):
        train.run(spec, cell, tasks, str(tmp_path / "m.pt"), str(tmp_path / "m.csv"))
    assert not (tmp_path / "m.pt").exists() and not checkpoint.path_for(tmp_path / "m.pt").exists()


@pytest.mark.parametrize("optimizer, lr, message", [
    ("sgd", 1e38, r"at meta-step \d+"),   # theta overflows, or the next inner loop does
    ("adam", 1e39, "the outer update failed at meta-step 1"),
])
def test_outer_update_that_overflows_theta_is_refused(params, tasks, tmp_path, optimizer, lr, message):
    spec, cell = _spec(params, "fomaml", **{"meta.lr": lr, "meta.optimizer": optimizer})
    with pytest.raises(NonFiniteError, match=message):
        train.run(spec, cell, tasks, str(tmp_path / "m.pt"), str(tmp_path / "m.csv"))
    assert not (tmp_path / "m.pt").exists()


def test_same_seed_same_outputs_in_separate_processes(params, tasks, tmp_path):
    """Two training processes from the command line: the same theta, bit for bit, and the same curve."""
    from adjoint_meta.model_file import load as load_theta

    spec, cell = _spec(params, "amaml")
    args = ["train", "--slice", json.dumps(spec)] + [a for k, v in cell.items() for a in (f"--{k}", str(v))]
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-m", "adjoint_meta", *args, "--tasks", tasks,
                        "--out-model", str(tmp_path / f"{name}.pt"), "--out-log", str(tmp_path / f"{name}.csv")],
                       check=True, env=tool_env(), capture_output=True)
    assert torch.equal(load_theta(tmp_path / "a.pt")[0], load_theta(tmp_path / "b.pt")[0])

    def curve(name):  # every column but the wall-clock seconds
        rows = [r.split(",") for r in (tmp_path / f"{name}.csv").read_text().splitlines()]
        return [r[:3] + r[4:] for r in rows]
    assert curve("a") == curve("b")


class _Poisoned:
    """An estimator whose meta-gradient of the first task is NaN at meta-step ``at`` (or, with
    ``drop``, which leaves that task out instead: what skipping it must amount to)."""

    def __init__(self, inner, at, drop=False):
        self.inner, self.at, self.drop, self.calls = inner, at, drop, 0

    def __getattr__(self, name):  # everything but the call is the wrapped estimator's
        return getattr(self.inner, name)

    def __call__(self, theta, problem):
        self.calls += 1
        mg = self.inner(theta, problem)
        if self.calls == self.at:
            if self.drop:
                return type(mg)(mg.grad[1:], mg.query_loss[1:], mg.stats)
            grad = mg.grad.clone()
            grad[0, 3] = float("nan")
            return type(mg)(grad, mg.query_loss, mg.stats)
        return mg


@pytest.mark.parametrize("mode", ["stop", "skip"])
def test_theta_is_never_updated_with_a_non_finite_gradient(params, tasks, tmp_path, monkeypatch, mode):
    spec, cell = _spec(params, "fomaml", **{"meta.on_nonfinite": mode, "runtime.checkpoint_every": 0})
    real_build = train.build

    def poisoned(drop):
        monkeypatch.setattr(train, "build", lambda *a, **k: _Poisoned(real_build(*a, **k), at=3, drop=drop))

    poisoned(drop=False)
    if mode == "stop":
        with pytest.raises(NonFiniteError, match=r"meta-step 3 for training task\(s\) \[\d+\]"):
            train.run(spec, cell, tasks, str(tmp_path / "m.pt"), str(tmp_path / "m.csv"))
        assert not (tmp_path / "m.pt").exists()
        return
    skipped = _train(spec, cell, tasks, tmp_path, "skipped")
    poisoned(drop=True)
    dropped = _train(spec, cell, tasks, tmp_path, "dropped")
    assert torch.isfinite(skipped).all() and torch.equal(skipped, dropped)
    assert (tmp_path / "skipped.csv").read_text().splitlines()[-1].endswith(",1")  # one task skipped


def test_diverging_fine_tuning_is_reported_with_step_and_tasks(params, tasks, tmp_path, capfd):
    spec, cell = _spec(params, "fomaml")
    model = tmp_path / "m.pt"
    train.run(spec, cell, tasks, str(model), str(tmp_path / "m.csv"))
    ev_spec = config.prune(params, "evaluate", **cell)
    ev_spec["evaluation"]["lr"] = 1e6
    capfd.readouterr()
    result = evaluate.run(ev_spec, cell, str(model), tasks, str(tmp_path / "e.json"), str(tmp_path / "e.csv"))
    assert result["nrmse"]["n_finite"] < result["nrmse"]["n"]
    assert re.search(r"WARNING non-finite error from fine-tuning step \d+ on for test task\(s\) \[\d+",
                     capfd.readouterr().err)
