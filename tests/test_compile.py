"""The optional torch.compile switch (runtime.compile): compiled passes give the eager numbers to
rounding, and a training run with it on is the same run."""
from __future__ import annotations

import shutil

import pytest
import torch
from conftest import TEST_PARAMS

from adjoint_meta import config, make_tasks, train
from adjoint_meta.interface import Data
from adjoint_meta.model import MLP

pytestmark = pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                reason="torch.compile's CPU backend needs a C++ compiler")


@pytest.mark.parametrize("activation, inference, onehot", [("tanh", False, False), ("relu", False, False),
                                                         ("tanh", True, False), ("tanh", True, True)])
def test_compiled_passes_equal_the_eager_ones(activation, inference, onehot):
    """Also in inference mode, where the estimators call them, and on one-hot inputs."""
    with torch.inference_mode(inference):
        _compare_passes(activation, onehot)


def _compare_passes(activation, onehot):
    g = torch.Generator().manual_seed(0)
    sizes = [4, 6, 5, 1]
    eager, compiled = MLP(sizes, activation), MLP(sizes, activation).compile_passes()
    items = torch.randint(0, 4, (3, 7), generator=g) if onehot else None
    x = (torch.nn.functional.one_hot(items, 4).double() if onehot
         else torch.randn(3, 7, 4, generator=g, dtype=torch.float64))
    data = Data(x, torch.randn(3, 7, generator=g, dtype=torch.float64), torch.full((3, 7), 1 / 7, dtype=torch.float64),
                items)
    u = torch.randn(3, eager.n_params, generator=g, dtype=torch.float64)
    v = torch.randn(3, eager.n_params, generator=g, dtype=torch.float64)

    def close(b, a):
        return torch.allclose(b, a, rtol=1e-12, atol=1e-13)

    assert close(compiled.grad(u, data), eager.grad(u, data))
    (lc, gc), (le, ge) = compiled.loss_and_grad(u, data), eager.loss_and_grad(u, data)
    assert close(lc, le) and close(gc, ge)
    for with_grad in (True, False):
        a = eager.linearize(u, data, with_loss=True, with_grad=with_grad)
        b = compiled.linearize(u, data, with_loss=True, with_grad=with_grad)
        assert (b.grad is None) == (not with_grad) and (not with_grad or close(b.grad, a.grad))
        assert close(b.loss, a.loss)
        for fa, fb in [(a.acts, b.acts), (a.slopes, b.slopes), (a.deltas, b.deltas), (a.curv, b.curv),
                       (a.weights_t, b.weights_t), (a.acts_t, b.acts_t), ([W for W, _ in a.params], [W for W,
                                                                                                     _ in b.params])]:
            assert len(fa) == len(fb) and all((p is None) == (q is None) for p, q in zip(fa, fb))
            assert all(p is None or close(q, p) for p, q in zip(fa, fb))
        assert close(compiled.hvp_at(b, v, data), eager.hvp_at(a, v, data))
    if not torch.is_inference_mode_enabled():
        with torch.enable_grad():  # unrolled MAML differentiates through the pass: it stays eager, exactly
            w = u.clone().requires_grad_(True)
            assert torch.equal(compiled.grad(w, data), eager.grad(w, data))
            assert compiled.grad(w, data).requires_grad


def test_the_switch_compiles_the_training_model_only_when_on(tmp_path, monkeypatch):
    """runtime.compile reaches the training step (the numbers are the previous test's); recorded, not
    compiled here, to keep the suite quick."""
    params = config.load(TEST_PARAMS)
    cell = dict(experiment="fig2_50shot", dataset="cosmixture", setting="5shot-5val", estimator="fomaml", seed=0)
    tasks = tmp_path / "t.parquet"
    make_tasks.run(config.prune(params, "make-tasks", dataset="cosmixture"), "cosmixture", str(tasks),
                   str(tmp_path / "t.json"))
    calls = []
    monkeypatch.setattr(MLP, "compile_passes", lambda self: calls.append(self.sizes) or self)
    for on in (False, True):
        spec = config.prune(params, "train", **cell)
        spec["runtime"]["compile"] = on
        spec["meta"]["meta_epochs"] = 2
        summary = train.run(spec, cell, str(tasks), str(tmp_path / f"{on}.pt"), str(tmp_path / f"{on}.csv"))
        assert summary["compiled"] is on and len(calls) == int(on)


def test_each_compiled_pass_is_one_graph():
    """A graph break would put Python back between the generated kernels (what makes the switch
    pay); in inference mode, where the estimators call the passes."""
    import torch._dynamo

    g = torch.Generator().manual_seed(0)
    m = MLP([4, 6, 5, 1], "tanh")
    items = torch.randint(0, 4, (3, 7), generator=g)
    x = torch.nn.functional.one_hot(items, 4).float()
    y, w = torch.randn(3, 7, generator=g), torch.full((3, 7), 1 / 7)
    u, v = torch.randn(3, m.n_params, generator=g), torch.randn(3, m.n_params, generator=g)
    for data in (Data(torch.randn(3, 7, 4, generator=g), y, w), Data(x, y, w, items)):  # dense, one-hot
        lookup = m._lookup(data)
        with torch.inference_mode():
            lin = m.linearize(u, data)
            calls = {"first_order": (m._first_order, (u, data.x, data.y3, data.w2, True, lookup)),
                     "linearization": (m._linearization, (u, data.x, data.y3, data.w2, False, False, lookup)),
                     "hvp": (m._hvp, (lin.acts, lin.slopes, lin.deltas, lin.curv, lin.params, lin.weights_t,
                                      lin.acts_t, v, data.w2, lookup))}
            for name, (fn, args) in calls.items():
                explained = torch._dynamo.explain(fn)(*args)
                assert explained.graph_break_count == 0 and explained.graph_count == 1, (name, explained.break_reasons)
