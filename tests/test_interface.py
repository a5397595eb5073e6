"""Both models of stacked tasks meet the one contract the estimators are written against
(``interface.TaskModel``): every member the protocol names, with the protocol's parameters, and
linearizations that meet ``interface.Linearized``."""
from __future__ import annotations

import inspect

import pytest
import torch

from adjoint_meta import backends
from adjoint_meta.interface import Data, Linearized, TaskModel

MEMBERS = [name for name in dir(TaskModel) if not name.startswith("_") and callable(getattr(TaskModel, name))]


def models():
    return {"mlp": backends.build(3, [5], "tanh", "mlp"), "torch_func": backends.build(3, [5], "tanh", "torch_func")}


def params(fn) -> list[str]:
    return [p.name for p in inspect.signature(fn).parameters.values() if p.name != "self"]


@pytest.mark.parametrize("name", ["mlp", "torch_func"])
def test_both_models_satisfy_the_protocol(name):
    model = models()[name]
    assert isinstance(model, TaskModel)
    assert set(MEMBERS) >= {"init", "layer_index", "predict", "loss", "grad", "loss_and_grad", "linearize",
                            "hvp_at", "hvp", "grad_and_hvps", "compile_passes"}
    for member in MEMBERS:
        assert params(getattr(model, member)) == params(getattr(TaskModel, member)), member
    theta = model.init(torch.Generator().manual_seed(0), torch.float64)
    assert theta.shape == (model.n_params,) and model.layer_index().shape == (model.n_params,)
    u = theta.expand(2, -1).clone()
    data = Data(torch.randn(2, 4, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64),
                torch.full((2, 4), 0.25, dtype=torch.float64))
    lin = model.linearize(u, data, with_loss=True)
    assert isinstance(lin, Linearized) and isinstance(lin.for_storage(), Linearized)
    assert lin.grad.shape == u.shape and lin.loss.shape == (2,)
    torch.testing.assert_close(model.hvp_at(lin, u, data), model.hvp(u, u, data))


def test_a_model_missing_a_member_is_not_one():
    class Partial:
        n_params = 1

        def init(self, generator, dtype=torch.float32):
            return torch.zeros(1)
    assert not isinstance(Partial(), TaskModel)
