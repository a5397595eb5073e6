"""``MetaLearner``: a user's module and loss, an estimator chosen by name, and the meta-gradient of
stacked tasks in the module's own parameter structure."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from adjoint_meta.api import choice, losses, store
from adjoint_meta.api.errors import InputError
from adjoint_meta.api.tasks import Tasks
from adjoint_meta.api.wrap import BACKENDS, Wrapped, check_module, wrap
from adjoint_meta.estimators import InnerProblem, build
from adjoint_meta.estimators.core import descend, stack

Tensor = torch.Tensor


@dataclass
class MetaResult:
    """One meta-gradient: ``grads`` maps each parameter name of the module to dJ/dtheta in that
    parameter's shape (the mean over the tasks); ``rate_grad`` is dJ/d``log_rates`` where step sizes
    are learned by gradient (else None); ``query_loss [B]`` is each task's query loss after its inner
    loop and ``loss`` their mean; ``stats`` the estimator's counters and the backend that ran it."""
    grads: dict[str, Tensor]
    rate_grad: Tensor | None
    query_loss: Tensor
    loss: Tensor
    stats: dict[str, Any] = field(default_factory=dict)


class MetaLearner(nn.Module):
    """Meta-gradients of ``module``'s initialization (and of learned inner step sizes) for the loss
    ``loss`` with the estimator ``estimator``.

    ``loss``: ``'mse'``, ``'cross_entropy'``, or a callable ``loss(pred, target) -> scalar``, the mean
    over one task's examples (``F.mse_loss``, ``F.cross_entropy`` and their modules are recognised).
    ``steps`` (K) and ``alpha``: the inner loop's gradient steps and step size.  ``hyper``: the
    estimator's hyper-parameters (``hyper_parameters(name)`` lists them); ``store`` defaults to
    ``'auto'`` (linearizations kept where memory allows).  ``backend``: ``'auto'`` (the hand-derived
    MLP where it can compute the module, else torch.func), ``'mlp'`` or ``'torch_func'``.
    ``learn_init=False`` holds the module's parameters fixed and learns the step sizes alone.
    ``seed``: the random streams of ES and of selection ES on the step sizes.

    The outer optimizer steps ``meta_parameters()``: the module's parameters (unless ``learn_init``
    is false) and ``log_rates``, the log inner step sizes, when they are learned by gradient."""

    def __init__(self, module: nn.Module, loss: Any = "mse", estimator: str = "maml_adjoint", *, steps: int,
                 alpha: float, backend: str = "auto", learn_init: bool = True, seed: int = 0, **hyper: Any):
        super().__init__()
        check_module(module)
        self.loss_kind = losses.kind_of(loss)
        if backend not in BACKENDS:
            raise InputError(f"backend={backend!r}: allowed values: {', '.join(BACKENDS)}")
        cls = choice.estimator_class(estimator)
        self.steps_given, self.alpha = choice.check_horizon(steps, alpha)
        auto_store = "store" in choice.hyper_parameters(estimator) and "store" not in hyper
        config = choice.configuration(estimator, self.steps_given, self.alpha, hyper)
        if auto_store:
            config["store"] = store.AUTO
        if not isinstance(learn_init, bool):
            raise InputError(f"learn_init={learn_init!r}: expected True or False")
        self.learn_rate = config.get("learn_rate")
        self.by_gradient = bool(self.learn_rate) and config.get("rate_method") != "es"
        if not learn_init and not self.learn_rate:
            raise InputError("learn_init=False: nothing would be learned; also set learn_rate (scalar, layer or "
                             "parameter), or keep learn_init=True")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InputError(f"seed={seed!r}: expected an integer")
        self.module = module
        self.loss = loss
        self.estimator, self.backend, self.learn_init, self.seed = estimator, backend, learn_init, seed
        self.config = config
        self.steps = cls.inner_steps(self.steps_given, None)
        self.names = [n for n, _ in module.named_parameters()]
        self.shapes = [p.shape for _, p in module.named_parameters()]
        self.numels = [p.numel() for _, p in module.named_parameters()]
        owners = [n.rpartition(".")[0] for n in self.names]
        self._layer_of = {o: i for i, o in enumerate(dict.fromkeys(owners))}
        self._layers = [self._layer_of[o] for o in owners]
        self.log_rates: nn.Parameter | None = None
        if self.by_gradient:
            n = {"scalar": 1, "layer": len(self._layer_of), "parameter": sum(self.numels)}[self.learn_rate]
            p = next(module.parameters())
            init = float(config.get("rate_init") or self.alpha)
            self.log_rates = nn.Parameter(torch.full((n,), init, dtype=p.dtype, device=p.device).log())
        self._weighted = losses.weighted(loss, self.loss_kind) if self.loss_kind == losses.OTHER else None
        self._wrapped: dict[tuple, Wrapped] = {}
        self._estimator = None
        self.store: str | None = config.get("store")

    # -- what the outer optimizer steps
    def meta_parameters(self) -> list[nn.Parameter]:
        """The module's parameters (unless ``learn_init`` is false) and the learned log step sizes."""
        out = list(self.module.parameters()) if self.learn_init else []
        return out + ([self.log_rates] if self.log_rates is not None else [])

    # -- the meta-gradient
    def meta_gradient(self, tasks: Tasks | Sequence) -> MetaResult:
        """dJ/dtheta (and dJ/dlog_rates) at the module's current parameters, J the mean query loss of
        ``tasks`` after K inner steps; ``.grad`` is left untouched."""
        tasks = self._tasks(tasks)
        wrapped = self._wrap(tasks)
        support, query = tasks.data(wrapped.squeeze_targets)
        theta = wrapped.to_task_layout(self._flat_theta())
        est = self._estimator_for(wrapped, theta, support)
        phi = torch.cat([theta, self._task_rates(wrapped)]) if self.by_gradient else theta
        mg = est(phi, InnerProblem(wrapped.model, support, query))
        g = mg.grad.mean(0)
        P = theta.numel()
        grads = self._split(wrapped.to_module_layout(g[:P]))
        rate_grad = None
        if self.by_gradient:
            rate_grad = g[P:]
            if self.learn_rate == "parameter":
                rate_grad = wrapped.to_module_layout(rate_grad)
            rate_grad = rate_grad.clone()
        query_loss = mg.query_loss.detach().clone()
        return MetaResult(grads, rate_grad, query_loss, query_loss.mean(), {**mg.stats, "backend": wrapped.backend})

    def backward(self, tasks: Tasks | Sequence) -> MetaResult:
        """The meta-gradient, added to the ``.grad`` of ``meta_parameters()`` as autograd would."""
        result = self.meta_gradient(tasks)
        targets = list(zip(self.module.parameters(), result.grads.values())) if self.learn_init else []
        if self.log_rates is not None:
            targets.append((self.log_rates, result.rate_grad))
        for p, g in targets:
            if p.grad is None:
                p.grad = g.clone()
            else:
                p.grad.add_(g)
        return result

    # -- adapting to tasks
    def step_sizes(self) -> dict[str, Tensor]:
        """The inner step size of every parameter, in the parameter's shape."""
        flat = self._module_rates()
        if isinstance(flat, float):
            p = next(self.module.parameters())
            flat = torch.full((sum(self.numels),), flat, dtype=p.dtype, device=p.device)
        return self._split(flat.detach().clone())

    def adapt(self, tasks: Tasks | Sequence) -> dict[str, Tensor]:
        """Each task's parameters after K gradient-descent steps on its support set from the module's,
        with the current step sizes: name -> ``[B, *shape]``."""
        tasks = self._tasks(tasks)
        wrapped = self._wrap(tasks)
        support, query = tasks.data(wrapped.squeeze_targets)
        theta = wrapped.to_task_layout(self._flat_theta())
        rate = self._module_rates()
        if isinstance(rate, Tensor):
            rate = wrapped.to_task_layout(rate.detach())
        with torch.inference_mode():
            u = descend(InnerProblem(wrapped.model, support, query), stack(theta, tasks.n_tasks), self.steps, rate)
        flat = wrapped.to_module_layout(u).clone()
        return {n: t.reshape(-1, *s) for n, t, s in zip(self.names, flat.split(self.numels, dim=1), self.shapes)}

    def predict(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """The module's outputs on ``x [B, N, ...]`` with each task's parameters ``params`` (``adapt``'s)."""
        missing = [n for n in self.names if n not in params]
        if missing:
            raise InputError(f"params: no values for {', '.join(missing)} (pass what adapt returns)")
        return vmap(lambda p, xb: functional_call(self.module, p, (xb,)))(params, x)

    # -- helpers
    def _tasks(self, tasks) -> Tasks:
        if isinstance(tasks, (list, tuple)):
            tasks = Tasks.from_list(tasks)
        if not isinstance(tasks, Tasks):
            raise InputError(f"tasks: expected Tasks or a list of ((x_support, y_support), (x_query, y_query)), got "
                             f"{type(tasks).__name__}")
        p = next(self.module.parameters())
        if tasks.device != p.device:
            raise InputError(f"tasks: on {tasks.device}, the module's parameters on {p.device}; move the tasks "
                             f"(or the module) to one device")
        if tasks.dtype != p.dtype:
            raise InputError(f"tasks: inputs are {tasks.dtype}, the module's parameters {p.dtype}; convert one of "
                             "them (float32 and float64 both work)")
        return tasks

    def _wrap(self, tasks: Tasks) -> Wrapped:
        x, y = tasks.support
        p = next(self.module.parameters())
        key = (tuple(x.shape[2:]), tuple(y.shape[2:]), y.dtype, x.dim(), p.device, p.dtype)
        if key not in self._wrapped:
            n = int(tasks.support_counts[0])
            try:
                with torch.no_grad():
                    pred = self.module(x[0, :n])
            except Exception as exc:  # the user's module: say which input it could not take
                raise InputError(f"tasks: the module cannot take task 0's support inputs of shape "
                                 f"{tuple(x[0, :n].shape)}: {exc}") from exc
            losses.check(self.loss, self.loss_kind, pred, y[0, :n], "task 0's support set")
            self._wrapped[key] = wrap(self.module, self.loss, self.loss_kind, self.backend, x, y)
        return self._wrapped[key]

    def _flat_theta(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.module.parameters()])

    def _split(self, flat: Tensor) -> dict[str, Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, flat.split(self.numels), self.shapes)}

    def _module_rates(self) -> Tensor | float:
        """The step size of every parameter ``[P]`` in the module's layout (a number when fixed)."""
        if self.log_rates is None:
            if self._estimator is not None and getattr(self._estimator, "es", None) is not None:
                return float(self._estimator.es.mu)
            return self.alpha
        rates = self.log_rates.detach().exp()
        if self.learn_rate == "scalar":
            return rates.expand(sum(self.numels))
        if self.learn_rate == "layer":
            index = torch.repeat_interleave(torch.tensor(self._layers, device=rates.device),
                                            torch.tensor(self.numels, device=rates.device))
            return rates[index]
        return rates

    def _task_rates(self, wrapped: Wrapped) -> Tensor:
        """``log_rates`` as the estimator reads them (per parameter: in the model's layout)."""
        log_rates = self.log_rates.detach()
        return wrapped.to_task_layout(log_rates) if self.learn_rate == "parameter" else log_rates

    def _estimator_for(self, wrapped: Wrapped, theta: Tensor, support) -> Any:
        if self._estimator is None:
            config = dict(self.config)
            if config.get("store") == store.AUTO:
                states = self.steps + 1
                if self.estimator == "amaml" and config.get("h"):
                    states = round(self.steps * self.alpha / float(config["h"])) + 1
                config["store"] = store.choose(wrapped.model, theta, support, states, config.get("keep_every", 1))
            self.store = config.get("store")
            self._estimator = build(self.estimator, config, self.steps, self.alpha, seed=self.seed)
            self._estimator.meta_init(theta, wrapped.model)
        return self._estimator

    def extra_repr(self) -> str:
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"estimator={self.estimator!r}, steps={self.steps}, alpha={self.alpha}, {hyper}"
