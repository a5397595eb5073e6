"""The torch.func backend (adjoint_meta.funcmodel), in float64.

* On the MLP, laid out as ``model.MLP`` lays out its flat parameters, both backends agree to
  rounding: the loss, gradient and Hessian-vector product, and every registered estimator.
* On a model the hand-derived MLP cannot express (LayerNorm and GELU, a cross-entropy loss over
  three classes), every estimator is checked against an independent reference: one task at a time,
  the module called with that task's parameters and every derivative taken by torch.autograd
  through the unrolled inner loop (no vmap, no torch.func transform).
* Modules and losses the backend cannot use are refused at construction, naming what to change.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call

from adjoint_meta.estimators import InnerProblem, available, build
from adjoint_meta.fewshot import cnn
from adjoint_meta.fewshot.digits import SHAPE
from adjoint_meta.funcmodel import FuncModel, ModelError, cross_entropy, squared_error
from adjoint_meta.interface import Data
from adjoint_meta.model import MLP

D = torch.float64
K, ALPHA = 6, 0.05


class FlatMLP(nn.Module):
    """The MLP of model.MLP as a module, its parameters in model.MLP's flat order (W [n_in, n_out], b)."""

    def __init__(self, sizes: list[int]):
        super().__init__()
        self.sizes = sizes
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.register_parameter(f"W{l}", nn.Parameter(torch.zeros(n_in, n_out, dtype=D)))
            self.register_parameter(f"b{l}", nn.Parameter(torch.zeros(n_out, dtype=D)))

    def forward(self, x):
        for l in range(len(self.sizes) - 1):
            x = x @ getattr(self, f"W{l}") + getattr(self, f"b{l}")
            if l < len(self.sizes) - 2:
                x = torch.tanh(x)
        return x


def _data(B, n, d, seed, classes=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, n, d, generator=g, dtype=D)
    y = (torch.randint(0, classes, (B, n), generator=g).to(D) if classes else torch.randn(B, n, generator=g, dtype=D))
    w = torch.full((B, n), 1.0 / n, dtype=D)
    w[0, -1] = 0.0  # a padded example
    w[0] = w[0] / w[0].sum()
    return Data(x, y, w)


CONFIG = {"amaml": dict(forward="euler", backward="discrete"), "tbptt": dict(window=3), "es": dict(directions=3),
          "imaml": dict(cg_steps=200)}


# ---------------------------------------------------------------- the MLP, both backends
@pytest.fixture(scope="module")
def mlp_pair():
    sizes = [3, 7, 5, 1]
    mlp, func = MLP(sizes, "tanh"), FuncModel(FlatMLP(sizes), squared_error, input_shape=(3,))
    assert func.n_params == mlp.n_params
    theta = mlp.init(torch.Generator().manual_seed(0), D)
    return mlp, func, theta, _data(3, 6, 3, 1), _data(3, 5, 3, 2)


def test_passes_agree_with_the_hand_derived_mlp(mlp_pair):
    mlp, func, theta, support, _ = mlp_pair
    u = theta.unsqueeze(0).repeat(3, 1) + 0.1 * torch.randn(3, theta.numel(),
                                                            generator=torch.Generator().manual_seed(3),
                                                            dtype=D)
    v = torch.randn(u.shape, generator=torch.Generator().manual_seed(4), dtype=D)
    torch.testing.assert_close(func.loss(u, support), mlp.loss(u, support), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(func.grad(u, support), mlp.grad(u, support), rtol=1e-11, atol=1e-13)
    torch.testing.assert_close(func.hvp(u, v, support), mlp.hvp(u, v, support), rtol=1e-10, atol=1e-12)
    lin = func.linearize(u, support, with_loss=True)
    torch.testing.assert_close(lin.loss, mlp.loss(u, support), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(func.hvp_at(lin.rows(1, 3), v[1:3], _rows(support, 1, 3)),
                               mlp.hvp(u[1:3], v[1:3], _rows(support, 1, 3)), rtol=1e-10, atol=1e-12)


def _rows(data: Data, a: int, b: int) -> Data:
    return Data(data.x[a:b], data.y[a:b], data.w[a:b])


@pytest.mark.parametrize("name, cfg", [(n, CONFIG.get(n, {})) for n in available()]
                         + [("amaml", {}), ("amaml", dict(forward="rk4", backward="euler", reg=1.0))])
def test_every_estimator_agrees_on_both_backends(mlp_pair, name, cfg):
    mlp, func, theta, support, query = mlp_pair
    hand = build(name, cfg, K, ALPHA, seed=5)(theta, InnerProblem(mlp, support, query))
    generic = build(name, cfg, K, ALPHA, seed=5)(theta, InnerProblem(func, support, query))
    torch.testing.assert_close(generic.grad, hand.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(generic.query_loss, hand.query_loss, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("store, keep_every", [("linearizations", 1), ("states", "sqrt")])
def test_stored_linearizations_and_checkpoints_change_nothing(mlp_pair, store, keep_every):
    _, func, theta, support, query = mlp_pair
    problem = InnerProblem(func, support, query)
    base = build("maml_adjoint", {}, K, ALPHA)(theta, problem).grad
    other = build("maml_adjoint", dict(store=store, keep_every=keep_every), K, ALPHA)(theta, problem).grad
    torch.testing.assert_close(other, base, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- a model the MLP cannot express
class Classifier(nn.Module):
    def __init__(self, d: int = 4, h: int = 6, classes: int = 3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, h), nn.LayerNorm(h), nn.GELU(), nn.Linear(h, classes)).to(D)

    def forward(self, x):
        return self.net(x)


@pytest.fixture(scope="module")
def classifier():
    module = Classifier()
    func = FuncModel(module, cross_entropy, input_shape=(4,))
    theta = func.init(torch.Generator().manual_seed(1), D)
    return func, theta, _data(2, 7, 4, 5, classes=3), _data(2, 6, 4, 6, classes=3)


def _task_loss(func: FuncModel, u_b, data: Data, b: int):
    out = functional_call(func.module, func.unflatten(u_b), (data.x[b],))
    return cross_entropy(out, data.y[b], data.w[b])


def _unrolled(func, theta, support, b, steps, reg=0.0, create_graph=True):
    """Gradient steps on task b (with reg/2 |u - theta|^2), by torch.autograd, one task at a time."""
    u = theta
    for _ in range(steps):
        value = _task_loss(func, u, support, b) + 0.5 * reg * ((u - theta.detach()) ** 2).sum()
        (g,) = torch.autograd.grad(value, u, create_graph=create_graph)
        u = u - ALPHA * g
    return u


def _reference(func, theta, support, query, name, steps=K):
    """dJ_b/dtheta of estimator ``name`` for every task b, from torch.autograd alone."""
    out = []
    for b in range(support.n_tasks):
        th = theta.clone().requires_grad_(True)
        if name in ("maml", "maml_adjoint", "amaml", "maml1"):
            phi = _unrolled(func, th, support, b, 1 if name == "maml1" else steps)
            (g,) = torch.autograd.grad(_task_loss(func, phi, query, b), th)
        elif name == "tbptt":  # the last 3 steps differentiated, the first K - 3 taken as the identity map
            start = _unrolled(func, th, support, b, steps - 3, create_graph=False).detach().requires_grad_(True)
            (g,) = torch.autograd.grad(_task_loss(func, _unrolled(func, start, support, b, 3), query, b), start)
        elif name in ("fomaml", "maml_fo", "reptile", "pretrain", "random_init"):
            phi = _unrolled(func, th, support, b, steps, create_graph=False).detach().requires_grad_(True)
            if name == "reptile":
                g = (theta - phi).detach()
            elif name == "random_init":
                g = torch.zeros_like(theta)
            elif name == "pretrain":  # the gradient of the loss pooled over support and query, at theta
                n_s, n_q = (support.w[b] > 0).sum(), (query.w[b] > 0).sum()
                pooled = (n_s * _task_loss(func, th, support, b) + n_q * _task_loss(func, th, query, b)) / (n_s + n_q)
                (g,) = torch.autograd.grad(pooled, th)
            else:
                (g,) = torch.autograd.grad(_task_loss(func, phi, query, b), phi)
        elif name == "imaml":  # (I + H(phi)) x = grad L_val(phi), solved exactly
            phi = _unrolled(func, th, support, b, steps, reg=1.0, create_graph=False).detach().requires_grad_(True)
            (gq,) = torch.autograd.grad(_task_loss(func, phi, query, b), phi)
            H = torch.autograd.functional.hessian(lambda p, b=b: _task_loss(func, p, support, b), phi.detach())
            g = torch.linalg.solve(torch.eye(theta.numel(), dtype=D) + H, gq)
        else:
            raise KeyError(name)
        out.append(g)
    return torch.stack(out)


# what each estimator is compared with, and how closely (iMAML: five CG steps on a small system)
EXACT = {"maml": 1e-10, "maml_adjoint": 1e-10, "amaml": 1e-10, "maml1": 1e-10, "tbptt": 1e-10, "fomaml": 1e-10,
         "maml_fo": 1e-10, "reptile": 1e-12, "pretrain": 1e-10, "random_init": 0.0, "imaml": 1e-8}


@pytest.mark.parametrize("name", available())
def test_every_estimator_on_a_layernorm_gelu_classifier(classifier, name):
    func, theta, support, query = classifier
    problem = InnerProblem(func, support, query)
    steps = 1 if name == "maml1" else K
    got = build(name, CONFIG.get(name, {}), steps, ALPHA, seed=2)(theta, problem).grad
    if name == "es":  # unbiased: the mean of many antithetic estimates approaches the exact gradient
        est = build("es", dict(directions=2000, sigma=1e-4), K, ALPHA, seed=3)(theta, problem).grad
        exact = _reference(func, theta, support, query, "maml")
        assert torch.nn.functional.cosine_similarity(est.flatten(), exact.flatten(), dim=0) > 0.9
        return
    want = _reference(func, theta, support, query, name)
    err = ((got - want).norm() / want.norm().clamp_min(1e-300)).item() if want.norm() > 0 else got.norm().item()
    assert err <= EXACT[name], (name, err)
    if name == "maml":  # and the second-order terms matter on this model
        assert ((got - _reference(func, theta, support, query, "fomaml")).norm() / got.norm()) > 1e-3


@pytest.fixture(scope="module")
def cnn_classifier():
    """The few-shot experiment's CNN (two 3x3 convolutions, ReLU, max pooling, a linear head) on 8x8 images."""
    func = FuncModel(cnn.classifier(channels=2, ways=3).to(D), cross_entropy, input_shape=SHAPE)
    theta = func.init(torch.Generator().manual_seed(1), D)
    g = torch.Generator().manual_seed(9)

    def data(n):
        x = torch.rand(2, n, *SHAPE, generator=g, dtype=D)
        return Data(x, torch.randint(0, 3, (2, n), generator=g).to(D), torch.full((2, n), 1.0 / n, dtype=D))
    return func, theta, data(6), data(5)


@pytest.mark.parametrize("name", [n for n in available() if n != "es"])
def test_every_estimator_on_the_fewshot_cnn(cnn_classifier, name):
    func, theta, support, query = cnn_classifier
    steps = 1 if name == "maml1" else K
    got = build(name, CONFIG.get(name, {}), steps, ALPHA, seed=2)(theta, InnerProblem(func, support, query)).grad
    want = _reference(func, theta, support, query, name)
    err = ((got - want).norm() / want.norm().clamp_min(1e-300)).item() if want.norm() > 0 else got.norm().item()
    assert err <= EXACT[name], (name, err)


def test_amaml_heun_converges_to_the_exact_gradient_as_h_shrinks(classifier):
    func, theta, support, query = classifier
    problem = InnerProblem(func, support, query)
    T = K * ALPHA
    exact = build("amaml", dict(forward="rk4", backward="heun", h=T / 128), 128, T / 128)(theta, problem).grad
    errors = [((build("amaml", dict(forward="rk4", backward="heun", h=T / n), n, T / n)(theta, problem).grad - exact)
               .norm() / exact.norm()).item() for n in (4, 8, 16)]
    assert errors[0] > errors[1] > errors[2] and errors[0] / errors[2] > 10, errors


def test_the_double_backward_product_equals_the_jvp_one(classifier, monkeypatch):
    """The two Hessian-vector products (reverse over reverse, the default; forward over reverse by
    torch.func.jvp): the same numbers, also inside inference mode, where the estimators call them,
    and the same meta-gradients; a torch whose vmap cannot batch the jvp (2.11, forced here) gets
    the double backward."""
    func, theta, support, query = classifier
    forward = FuncModel(func.module, cross_entropy, input_shape=(4,), hvp="jvp")
    assert func.hvp_method == "double backward" and forward.hvp_method == "jvp of grad"
    u = theta.unsqueeze(0).repeat(2, 1) + 0.1
    v = torch.randn(u.shape, generator=torch.Generator().manual_seed(8), dtype=D)
    with torch.inference_mode():
        double = func.hvp(u, v, support)
    torch.testing.assert_close(double, forward.hvp(u, v, support), rtol=1e-12, atol=1e-14)
    for name in ("maml_adjoint", "imaml"):
        a = build(name, CONFIG.get(name, {}), K, ALPHA)(theta, InnerProblem(forward, support, query)).grad
        b = build(name, CONFIG.get(name, {}), K, ALPHA)(theta, InnerProblem(func, support, query)).grad
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-13)
    monkeypatch.setattr(FuncModel, "_batches_jvp", lambda self: False)
    assert FuncModel(func.module, cross_entropy, input_shape=(4,), hvp="jvp").hvp_method.startswith("double backward")
    with pytest.raises(ModelError, match="hvp='hessian'; allowed values: double_backward, jvp"):
        FuncModel(func.module, cross_entropy, input_shape=(4,), hvp="hessian")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", available())
def test_every_estimator_on_cuda_matches_the_cpu(classifier, name):
    """The same code path on a GPU: float64 meta-gradients of the classifier agree with the CPU's."""
    func, theta, support, query = classifier
    on_gpu = FuncModel(copy.deepcopy(func.module), cross_entropy, input_shape=(4,)).to("cuda")
    gpu = InnerProblem(on_gpu, support.to("cuda", D), query.to("cuda", D))
    cfg, steps = CONFIG.get(name, {}), (1 if name == "maml1" else K)
    want = build(name, cfg, steps, ALPHA, seed=2)(theta, InnerProblem(func, support, query))
    got = build(name, cfg, steps, ALPHA, seed=2)(theta.to("cuda"), gpu)
    assert got.grad.device.type == "cuda"
    torch.testing.assert_close(got.grad.cpu(), want.grad, rtol=1e-8, atol=1e-12)


# ---------------------------------------------------------------- refused at construction
def test_a_non_float_parameter_is_refused():
    m = nn.Linear(2, 1)
    m.register_parameter("count", nn.Parameter(torch.zeros(1, dtype=torch.long), requires_grad=False))
    with pytest.raises(ModelError, match=r"Linear: parameter count is torch.int64, not floating point"):
        FuncModel(m, squared_error, (2,))


def test_batchnorm_in_training_mode_is_refused():
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1))
    with pytest.raises(ModelError, match=r"Sequential: 1 \(BatchNorm1d\) updates its running statistics.*\.eval\(\)"):
        FuncModel(m, squared_error, (2,))
    FuncModel(m.eval(), squared_error, (2,))  # in eval mode it is a fixed function


def test_a_loss_that_is_not_a_scalar_per_task_is_refused():
    per_example = lambda out, y, w: w * (out.squeeze(-1) - y) ** 2  # noqa: E731
    with pytest.raises(ModelError, match=r"Linear: the loss returns \(2,\) for one task, not a scalar"):
        FuncModel(nn.Linear(2, 1), per_example, (2,))
