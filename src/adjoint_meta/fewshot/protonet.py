"""Prototypical Networks (Snell et al., 2017): a metric-based few-shot learner with no inner loop.

An embedding network maps every image to a vector; a class's prototype is the mean embedding of its
support images, and a query image's logits are the negative squared Euclidean distances to the
prototypes.  Training minimizes the query cross-entropy of sampled tasks over the embedding's
parameters (one flat vector ``theta``, like the estimators' initializations); a new task needs no
fine-tuning, only its support set.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from adjoint_meta.estimators.base import MetaGradient, MetaParameters
from adjoint_meta.funcmodel import module_init
from adjoint_meta.interface import Data

Tensor = torch.Tensor


class ProtoNet:
    """``embedding`` (examples of ``input_shape``) on flat parameters ``theta [P]``."""

    def __init__(self, embedding: nn.Module, input_shape: tuple[int, ...]):
        self.module, self.input_shape = embedding, tuple(input_shape)
        named = list(embedding.named_parameters())
        self.names, self.shapes = [n for n, _ in named], [p.shape for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.n_params = sum(self.numels)

    def init(self, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
        """The modules' own initialization, drawn from a seed taken from ``generator``."""
        return module_init(self.module, generator, dtype)

    def embed(self, theta: Tensor, x: Tensor) -> Tensor:
        """Embeddings ``[T, N, D]`` of images ``x [T, N, *input_shape]``."""
        params = {n: t.view(s) for n, t, s in zip(self.names, theta.split(self.numels), self.shapes)}
        T, N = x.shape[:2]
        return functional_call(self.module, params, (x.reshape(T * N, *self.input_shape),)).reshape(T, N, -1)

    def logits(self, theta: Tensor, support: Data, query: Data, ways: int) -> Tensor:
        """``[T, Nq, ways]``: minus the squared distance of each query embedding to each class prototype."""
        es, eq = self.embed(theta, support.x), self.embed(theta, query.x)
        classes = torch.arange(ways, device=es.device)
        onehot = (support.y.long().unsqueeze(-1) == classes).to(es.dtype)  # [T, Ns, ways] (one_hot cannot vmap)
        prototypes = onehot.transpose(1, 2) @ es / onehot.sum(1).unsqueeze(-1)  # [T, ways, D]
        return -(eq.unsqueeze(2) - prototypes.unsqueeze(1)).pow(2).sum(-1)

    def loss(self, theta: Tensor, support: Data, query: Data, ways: int) -> Tensor:
        """Per-task query cross-entropy ``[T]`` (weighted by ``query.w``)."""
        logits = self.logits(theta, support, query, ways)
        ce = nn.functional.cross_entropy(logits.transpose(1, 2), query.y.long(), reduction="none")
        return (query.w * ce).sum(1)


class Episodic(MetaParameters):
    """ProtoNet's training signal in the shape of a meta-gradient, so the one outer loop
    (``outer_loop.meta_train``) trains it: per task, the gradient of its query cross-entropy at ``theta``."""
    trains = True

    def __init__(self, net: ProtoNet, ways: int):
        self.net, self.ways = net, ways

        def task_loss(theta: Tensor, xs: Tensor, ys: Tensor, ws: Tensor, xq: Tensor, yq: Tensor, wq: Tensor) -> Tensor:
            one = lambda x, y, w: Data(x.unsqueeze(0), y.unsqueeze(0), w.unsqueeze(0))  # noqa: E731
            return net.loss(theta, one(xs, ys, ws), one(xq, yq, wq), ways)[0]

        self._grad_and_value = vmap(grad_and_value(task_loss), in_dims=(None, 0, 0, 0, 0, 0, 0))

    def __call__(self, theta: Tensor, problem) -> MetaGradient:
        s, q = problem.support, problem.query
        with torch.enable_grad():
            g, value = self._grad_and_value(theta.detach(), s.x, s.y, s.w, q.x, q.y, q.w)
        return MetaGradient(g, value)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"ProtoNet training keeps no state, got {sorted(state)}")
