"""The optional torch.compile switch (runtime.compile): compiled passes give the eager numbers to
rounding, and a training run with it on is the same run."""
from __future__ import annotations

import shutil

import pytest
import torch

from adjoint_meta import config, make_tasks, train
from adjoint_meta.model import MLP, Data
from conftest import TEST_PARAMS

pytestmark = pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                reason="torch.compile's CPU backend needs a C++ compiler")


def test_compiled_passes_equal_the_eager_ones():
    g = torch.Generator().manual_seed(0)
    eager, compiled = MLP([2, 6, 5, 1]), MLP([2, 6, 5, 1]).compile_passes(("grad", "hvp"))
    x = torch.randn(3, 7, 2, generator=g, dtype=torch.float64)
    data = Data(x, torch.randn(3, 7, generator=g, dtype=torch.float64), torch.full((3, 7), 1 / 7, dtype=torch.float64))
    u = torch.randn(3, eager.n_params, generator=g, dtype=torch.float64)
    v = torch.randn(3, eager.n_params, generator=g, dtype=torch.float64)
    a, b = eager.linearize(u, data, with_loss=True), compiled.linearize(u, data, with_loss=True)
    assert torch.allclose(b.grad, a.grad, rtol=1e-12, atol=1e-14)
    assert torch.allclose(b.loss, a.loss, rtol=1e-12, atol=1e-14)
    assert torch.allclose(compiled.hvp_at(b, v, data), eager.hvp_at(a, v, data), rtol=1e-12, atol=1e-13)
    with torch.enable_grad():  # unrolled MAML differentiates through the pass: it stays eager, exactly
        w = u.clone().requires_grad_(True)
        assert torch.equal(compiled.grad(w, data), eager.grad(w, data))


def test_by_default_only_the_product_is_compiled():
    """The gradient pass does not pay compiled on this CPU (benchmarks/bench_compile.py), so the
    default leaves it eager; a misspelt pass is refused by name."""
    m = MLP([2, 6, 5, 1]).compile_passes()
    assert m._pass_impl == m._passes and m._hvp_impl != m._hvp
    with pytest.raises(ValueError, match="'hessian'.*allowed: grad, hvp"):
        MLP([2, 6, 5, 1]).compile_passes(("grad", "hessian"))


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
