"""The model of a dataset, on the backend ``datasets.<name>.backend`` selects.

* ``mlp``: the hand-derived task-stacked MLP (``model.MLP``), the fast path;
* ``torch_func``: the same network as a ``torch.nn`` module through torch.func (``funcmodel``), the
  generic path any module and loss can take.  Its parameters have the MLP's layout and its
  initialization is the MLP's, so the two backends train the same theta up to rounding.
"""
from __future__ import annotations

from collections.abc import Sequence

from adjoint_meta.funcmodel import FuncModel, MLPModule, squared_error
from adjoint_meta.interface import TaskModel
from adjoint_meta.model import MLP

BACKENDS = ("mlp", "torch_func")
DEFAULT = "mlp"


def build(input_dim: int, hidden: Sequence[int], activation: str, backend: str = DEFAULT) -> TaskModel:
    sizes = [int(input_dim), *map(int, hidden), 1]
    mlp = MLP(sizes, activation)
    if backend == "mlp":
        return mlp
    if backend == "torch_func":
        return FuncModel(MLPModule(sizes, activation), squared_error, (int(input_dim),), init=mlp.init)
    raise ValueError(f"backend {backend!r}; allowed values: {', '.join(BACKENDS)}")


def of_dataset(ds_cfg: dict, input_dim: int, hidden: Sequence[int] | None = None) -> TaskModel:
    """The model of dataset configuration ``ds_cfg`` (its ``hidden`` sizes unless given)."""
    return build(input_dim, ds_cfg["hidden"] if hidden is None else hidden, ds_cfg["activation"],
                 ds_cfg.get("backend", DEFAULT))
