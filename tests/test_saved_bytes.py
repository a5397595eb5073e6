"""Autograd's saved-tensor bytes (memory.saved_tensor_bytes): exact on graphs counted by hand, and
exactly linear in K for unrolled MAML, proportional to the tasks and to the element size."""
from __future__ import annotations

import torch

from adjoint_meta import memory
from adjoint_meta.estimators import InnerProblem, build
from adjoint_meta.interface import Data
from adjoint_meta.model import MLP

N = 1000
F64 = 8  # bytes of a float64


def _leaf(n: int = N) -> torch.Tensor:
    return torch.linspace(-1, 1, n, dtype=torch.float64).requires_grad_(True)


def test_a_chain_of_known_saves_is_counted_exactly():
    x = _leaf()
    # sin saves its input x, exp saves its result, sum saves no tensor: two storages of N float64
    result, nbytes, storages = memory.saved_tensor_bytes(lambda: x.sin().exp().sum())
    assert (nbytes, storages) == (2 * N * F64, 2)
    (g,) = torch.autograd.grad(result, x)  # the hook returned the tensors unchanged: the gradient is right
    torch.testing.assert_close(g, x.cos() * x.detach().sin().exp())


def test_a_storage_saved_twice_or_through_a_view_counts_once_and_whole():
    x = _leaf()
    assert memory.saved_tensor_bytes(lambda: (x.sin() + x.cos()).sum())[1:] == (N * F64, 1)
    assert memory.saved_tensor_bytes(lambda: x[: N // 4].sin().sum())[1:] == (N * F64, 1)  # the view keeps all of x


def test_no_graph_saves_nothing():
    x = _leaf()
    with torch.no_grad():
        assert memory.saved_tensor_bytes(lambda: x.sin().exp().sum())[1:] == (0, 0)
    with torch.inference_mode():
        assert memory.saved_tensor_bytes(lambda: x.sin().exp().sum())[1:] == (0, 0)


def _problem(tasks: int, dtype: torch.dtype, sizes=(2, 8, 8, 1), n: int = 5) -> tuple[InnerProblem, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    model = MLP(list(sizes), "tanh")

    def data() -> Data:
        return Data(torch.randn(tasks, n, sizes[0], generator=g, dtype=dtype),
                    torch.randn(tasks, n, generator=g, dtype=dtype), torch.full((tasks, n), 1.0 / n, dtype=dtype))

    return InnerProblem(model, data(), data()), model.init(g, dtype)


def _per_step(tasks: int, dtype: torch.dtype, ks=range(1, 7)) -> tuple[set[int], int]:
    """(the increments of saved bytes from K to K + 1, the model's parameter count)."""
    problem, theta = _problem(tasks, dtype)
    saved = [memory.saved_tensor_bytes(lambda k=k: build("maml", {}, k, 0.01)(theta, problem))[1] for k in ks]
    return {b - a for a, b in zip(saved, saved[1:])}, problem.model.n_params


def test_unrolled_maml_saves_the_same_bytes_every_inner_step():
    steps, n_params = _per_step(3, torch.float64)
    assert len(steps) == 1, steps  # exactly linear in K
    per_step = steps.pop()
    assert per_step >= 3 * n_params * F64  # at least each task's parameter vector (the state u_j) per step
    # the graph of one step is per task and per element: twice the tasks, twice the bytes; float32, half
    assert _per_step(6, torch.float64)[0] == {2 * per_step}
    assert _per_step(3, torch.float32)[0] == {per_step // 2}


def test_estimators_without_autograd_save_nothing():
    problem, theta = _problem(3, torch.float64)
    for kind in ("maml_adjoint", "fomaml", "amaml"):
        assert memory.saved_tensor_bytes(lambda kind=kind: build(kind, {}, 4, 0.01)(theta, problem))[1:] == (0, 0), kind
