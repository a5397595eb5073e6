"""Long-horizon meta-gradients for any ``nn.Module`` and loss (docs/library.md).

    import torch
    from adjoint_meta.api import MetaLearner, Tasks

    learner = MetaLearner(net, "mse", "maml_adjoint", steps=1000, alpha=0.01, keep_every="sqrt")
    opt = torch.optim.Adam(learner.meta_parameters(), lr=1e-3)
    for x_s, y_s, x_q, y_q in batches:          # [B, N, ...] each
        opt.zero_grad()
        result = learner.backward(Tasks((x_s, y_s), (x_q, y_q)))
        opt.step()

The public names and their signatures:

* ``MetaLearner(module, loss="mse", estimator="maml_adjoint", *, steps, alpha, backend="auto",
  learn_init=True, seed=0, **hyper)``, an ``nn.Module`` with
  ``meta_gradient(tasks) -> MetaResult``, ``backward(tasks) -> MetaResult``, ``meta_parameters()``,
  ``step_sizes() -> dict[str, Tensor]``, ``adapt(tasks) -> dict[str, Tensor]``,
  ``predict(params, x) -> Tensor`` and the attribute ``log_rates``;
* ``Tasks(support, query, support_counts=None, query_counts=None)`` and
  ``Tasks.from_list([((x_s, y_s), (x_q, y_q)), ...])``;
* ``MetaResult(grads, rate_grad, query_loss, loss, stats)``;
* ``estimators() -> dict[str, str]`` and ``hyper_parameters(name) -> dict[str, dict]``;
* ``InputError``, a ``ValueError`` naming the argument that was refused and the fix.
"""
from adjoint_meta.api.choice import hyper_parameters
from adjoint_meta.api.choice import names as estimators
from adjoint_meta.api.errors import InputError
from adjoint_meta.api.learner import MetaLearner, MetaResult
from adjoint_meta.api.tasks import Tasks

__all__ = ["MetaLearner", "MetaResult", "Tasks", "InputError", "estimators", "hyper_parameters"]
