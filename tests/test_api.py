"""The public API (adjoint_meta.api) against an independent float64 reference: each task's inner loop
unrolled with torch.func.functional_call and differentiated by torch.autograd, one task at a time on
its own unpadded examples; and every refusal of bad input, named."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adjoint_meta import api
from adjoint_meta.api import InputError, MetaLearner, Tasks

D = torch.float64


def layernorm_gelu(d_in: int = 2, width: int = 8, d_out: int = 1) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(d_in, width), nn.LayerNorm(width), nn.GELU(), nn.Linear(width, d_out)).to(D)


def tanh_mlp(d_in: int = 2, width: int = 6) -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(d_in, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                         nn.Linear(width, 1)).to(D)


def task_list(B=3, lengths=((5, 4), (3, 6), (7, 2)), d_in=2, classes=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for b in range(B):
        sets = []
        for n in lengths[b % len(lengths)]:
            x = torch.randn(n, d_in, generator=g, dtype=D)
            y = (torch.randint(0, classes, (n,), generator=g) if classes else (x.sum(-1) * (b + 1)).sin())
            sets.append((x, y))
        out.append(tuple(sets))
    return out


def reference(net, loss_fn, tasks, K, alpha, log_rates=None, layout=None, reg_fixed=False):
    """(dJ/dtheta per parameter, dJ/dlog_rates or None, J): J the mean over tasks of the query loss after
    K steps u <- u - a * grad L_support(u) from theta, by autograd through the unrolled loop."""
    names = [n for n, _ in net.named_parameters()]
    theta = [p.detach().clone().requires_grad_(True) for p in net.parameters()]
    logs = None if log_rates is None else log_rates.detach().clone().requires_grad_(True)
    if logs is None:
        rates = [alpha] * len(theta)
    elif layout == "scalar":
        rates = [logs.exp()[0]] * len(theta)
    elif layout == "layer":
        owners = list(dict.fromkeys(n.rpartition(".")[0] for n in names))
        rates = [logs.exp()[owners.index(n.rpartition(".")[0])] for n in names]
    else:
        sizes = [p.numel() for p in theta]
        rates = [r.view(p.shape) for r, p in zip(logs.exp().split(sizes), theta)]

    def f(params, x):
        return torch.func.functional_call(net, dict(zip(names, params)), (x,))

    total = 0.0
    for (xs, ys), (xq, yq) in tasks:
        params = list(theta)
        for _ in range(K):
            grads = torch.autograd.grad(loss_fn(f(params, xs), ys), params, create_graph=True)
            params = [p - a * g for p, g, a in zip(params, grads, rates)]
        total = total + loss_fn(f(params, xq), yq) / len(tasks)
    wrt = theta + ([logs] if logs is not None else [])
    grads = torch.autograd.grad(total, wrt)
    return dict(zip(names, grads[:len(theta)])), (grads[-1] if logs is not None else None), float(total.detach())


def mse(out, y):
    return F.mse_loss(out.reshape(y.shape), y)


def close(result, ref, rtol=1e-9, atol=1e-12):
    grads, rate_grad, loss = ref
    for name, g in grads.items():
        torch.testing.assert_close(result.grads[name], g, rtol=rtol, atol=atol, msg=name)
    if rate_grad is not None:
        torch.testing.assert_close(result.rate_grad, rate_grad, rtol=rtol, atol=atol)
    assert math.isclose(float(result.loss), loss, rel_tol=1e-10)


@pytest.mark.parametrize("estimator,hyper", [
    ("maml_adjoint", {}),
    ("maml_adjoint", {"store": "states"}),
    ("maml_adjoint", {"keep_every": "sqrt"}),
    ("maml", {}),
    ("amaml", {"forward": "euler", "backward": "discrete"}),
])
@pytest.mark.parametrize("make,backend", [(layernorm_gelu, "torch_func"), (tanh_mlp, "mlp")])
def test_exact_estimators_equal_unrolled_autograd_on_padded_tasks(make, backend, estimator, hyper):
    net, tasks = make(), task_list()
    learner = MetaLearner(net, F.mse_loss, estimator, steps=12, alpha=0.1, **hyper)
    result = learner.meta_gradient(tasks)  # a list of tasks of different lengths
    assert [w.backend for w in learner._wrapped.values()] == [backend]
    close(result, reference(net, mse, tasks, 12, 0.1))
    assert set(result.grads) == {n for n, _ in net.named_parameters()}
    assert all(result.grads[n].shape == p.shape for n, p in net.named_parameters())
    assert result.query_loss.shape == (3,)


def test_stacked_tensors_with_counts_equal_the_list_of_tasks():
    net, tasks = layernorm_gelu(), task_list()
    learner = MetaLearner(net, "mse", "maml_adjoint", steps=8, alpha=0.1)
    stacked = Tasks.from_list(tasks)
    again = Tasks(stacked.support, stacked.query, support_counts=[5, 3, 7], query_counts=[4, 6, 2])
    a, b = learner.meta_gradient(tasks), learner.meta_gradient(again)
    for name in a.grads:
        torch.testing.assert_close(a.grads[name], b.grads[name], rtol=0, atol=0)


@pytest.mark.parametrize("layout", ["scalar", "layer", "parameter"])
@pytest.mark.parametrize("make", [layernorm_gelu, tanh_mlp])
def test_learned_step_sizes_equal_autograd_through_the_rates(make, layout):
    net, tasks = make(), task_list()
    learner = MetaLearner(net, "mse", "maml_adjoint", steps=10, alpha=0.05, learn_rate=layout)
    with torch.no_grad():  # rates that differ per layer and parameter
        learner.log_rates.add_(0.3 * torch.sin(torch.arange(learner.log_rates.numel(), dtype=D)))
    result = learner.meta_gradient(tasks)
    close(result, reference(net, mse, tasks, 10, 0.05, learner.log_rates, layout))
    sizes = learner.step_sizes()
    assert all(sizes[n].shape == p.shape for n, p in net.named_parameters())


def test_forward_mode_rates_and_amaml_rates_agree_with_reverse():
    net, tasks = tanh_mlp(), task_list()
    ref = MetaLearner(net, "mse", "maml_adjoint", steps=10, alpha=0.05, learn_rate="layer").meta_gradient(tasks)
    fwd = MetaLearner(net, "mse", "maml_adjoint", steps=10, alpha=0.05, learn_rate="layer",
                      rate_method="forward").meta_gradient(tasks)
    amaml = MetaLearner(net, "mse", "amaml", steps=10, alpha=0.05, learn_rate="layer", forward="euler",
                        backward="discrete").meta_gradient(tasks)
    for other in (fwd, amaml):
        torch.testing.assert_close(other.rate_grad, ref.rate_grad, rtol=1e-9, atol=1e-12)


def test_backward_fills_grad_for_torch_optim_and_learn_init_false_leaves_theta_alone():
    net, tasks = layernorm_gelu(), task_list()
    learner = MetaLearner(net, "mse", "maml_adjoint", steps=5, alpha=0.05, learn_rate="scalar")
    result = learner.backward(tasks)
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.grad, result.grads[name], rtol=0, atol=0)
    torch.testing.assert_close(learner.log_rates.grad, result.rate_grad, rtol=0, atol=0)
    opt = torch.optim.Adam(learner.meta_parameters(), lr=1e-2)
    before = [p.detach().clone() for p in learner.meta_parameters()]
    opt.step()
    assert all(not torch.equal(a, p) for a, p in zip(before, learner.meta_parameters()))

    net2 = layernorm_gelu()
    fixed = MetaLearner(net2, "mse", "maml_adjoint", steps=5, alpha=0.05, learn_rate="layer", learn_init=False)
    assert fixed.meta_parameters() == [fixed.log_rates]
    fixed.backward(tasks)
    assert all(p.grad is None for p in net2.parameters()) and fixed.log_rates.grad is not None


def test_a_classifier_with_integer_targets_and_a_generic_loss():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3)).to(D)
    tasks = task_list(classes=3)
    learner = MetaLearner(net, nn.CrossEntropyLoss(), "maml_adjoint", steps=6, alpha=0.2)
    close(learner.meta_gradient(tasks), reference(net, F.cross_entropy, tasks, 6, 0.2))

    def huber(pred, y):  # no special path: evaluated per example, weighted
        return F.smooth_l1_loss(pred.squeeze(-1), y)
    net = layernorm_gelu()
    tasks = task_list()
    learner = MetaLearner(net, huber, "maml_adjoint", steps=6, alpha=0.2)
    close(learner.meta_gradient(tasks), reference(net, huber, tasks, 6, 0.2))


@pytest.mark.parametrize("estimator,hyper", [("fomaml", {}), ("reptile", {}), ("imaml", {"lam": 2.0}),
                                             ("es", {"directions": 3}), ("tbptt", {"window": 3}), ("maml1", {}),
                                             ("amaml", {})])
def test_every_estimator_runs_through_the_api(estimator, hyper):
    net, tasks = layernorm_gelu(), task_list()
    result = MetaLearner(net, "mse", estimator, steps=6, alpha=0.1, **hyper).meta_gradient(tasks)
    assert all(bool(torch.isfinite(g).all()) for g in result.grads.values())
    assert float(sum(g.abs().sum() for g in result.grads.values())) > 0


def test_fomaml_is_the_query_gradient_at_the_adapted_parameters():
    net, tasks = layernorm_gelu(), task_list()
    learner = MetaLearner(net, "mse", "fomaml", steps=7, alpha=0.1)
    adapted = learner.adapt(tasks)
    result = learner.meta_gradient(tasks)
    losses = []
    for b, (_, (xq, yq)) in enumerate(tasks):
        pred = learner.predict({n: t[b:b + 1] for n, t in adapted.items()}, xq.unsqueeze(0))[0]
        losses.append(float(mse(pred, yq)))
    torch.testing.assert_close(result.query_loss, torch.tensor(losses, dtype=D), rtol=1e-10, atol=1e-12)


def test_store_auto_keeps_linearizations_where_they_fit_and_states_with_checkpoints():
    net, tasks = layernorm_gelu(), task_list()
    fast = MetaLearner(net, "mse", "maml_adjoint", steps=5, alpha=0.1)
    fast.meta_gradient(tasks)
    lean = MetaLearner(net, "mse", "maml_adjoint", steps=5, alpha=0.1, keep_every="sqrt")
    lean.meta_gradient(tasks)
    assert (fast.store, lean.store) == ("linearizations", "states")


def test_the_public_names():
    assert set(api.__all__) == {"MetaLearner", "MetaResult", "Tasks", "InputError", "estimators",
                                "hyper_parameters"}
    assert {"maml_adjoint", "amaml", "imaml", "fomaml", "reptile", "maml", "es"} <= set(api.estimators())
    assert "random_init" not in api.estimators()
    assert api.hyper_parameters("maml_adjoint")["keep_every"]["default"] == 1


# ------------------------------------------------------------------------------------------ bad input
def refused(match, fn):
    with pytest.raises(InputError, match=match):
        fn()


def test_bad_modules_losses_and_estimators_are_refused_when_the_learner_is_made():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 1)
            self.count = nn.Parameter(torch.zeros(1, dtype=torch.long), requires_grad=False)

    make = lambda **kw: MetaLearner(kw.pop("module", layernorm_gelu()), kw.pop("loss", "mse"),  # noqa: E731
                                    kw.pop("estimator", "maml_adjoint"), **{"steps": 5, "alpha": 0.1, **kw})
    refused(r"module: parameter count is torch.int64", lambda: make(module=Counter()))
    refused(r"module: .* no parameters", lambda: make(module=nn.Tanh()))
    refused(r"estimator='mamll': unknown; allowed values: amaml, es", lambda: make(estimator="mamll"))
    refused(r"keep_every=0: .*>= 1", lambda: make(keep_every=0))
    refused(r"store='graph': allowed values: 'states', 'linearizations'", lambda: make(store="graph"))
    refused(r"window: not a hyper-parameter of estimator 'maml_adjoint'", lambda: make(window=3))
    refused(r"cg_steps=0: must be >= 1", lambda: make(estimator="imaml", cg_steps=0))
    refused(r"lam=-1.0: must be > 0", lambda: make(estimator="imaml", lam=-1.0))
    refused(r"tbptt.window: 9 exceeds steps \(5\)", lambda: make(estimator="tbptt", window=9))
    refused(r"learn_rate='row'", lambda: make(learn_rate="row"))
    refused(r"steps=0: the number of inner steps", lambda: make(steps=0))
    refused(r"alpha=-0.1: the inner step size", lambda: make(alpha=-0.1))
    refused(r"alpha=nan", lambda: make(alpha=float("nan")))
    refused(r"loss='hinge': allowed names are mse, cross_entropy", lambda: make(loss="hinge"))
    refused(r"backend='jax'", lambda: make(backend="jax"))
    refused(r"learn_init=False: nothing would be learned", lambda: make(learn_init=False))


def test_bad_tasks_and_losses_are_refused_when_the_call_is_made():
    net, tasks = layernorm_gelu(), task_list()
    learner = MetaLearner(net, "mse", "maml_adjoint", steps=5, alpha=0.1)
    (xs, ys), (xq, yq) = tasks[0]
    refused(r"tasks\[0\]: its support set is empty", lambda: learner.meta_gradient(
        [((xs[:0], ys[:0]), (xq, yq))]))
    stacked = Tasks.from_list(tasks)
    refused(r"support_counts: task 1 has 0 examples in its support set", lambda: Tasks(
        stacked.support, stacked.query, support_counts=[5, 0, 7]))
    refused(r"query: inputs are torch.float32, support inputs torch.float64", lambda: Tasks(
        stacked.support, (stacked.query[0].float(), stacked.query[1])))
    refused(r"query: inputs on meta, support inputs on cpu", lambda: Tasks(
        stacked.support, (stacked.query[0].to("meta"), stacked.query[1])))
    refused(r"tasks: inputs are torch.float32, the module's parameters torch.float64", lambda: learner.meta_gradient(
        Tasks((stacked.support[0].float(), stacked.support[1].float()),
              (stacked.query[0].float(), stacked.query[1].float()))))
    refused(r"tasks: the module cannot take task 0's support inputs of shape \(5, 3\)", lambda: learner.meta_gradient(
        Tasks((torch.randn(2, 5, 3, dtype=D), torch.randn(2, 5, dtype=D)),
              (torch.randn(2, 4, 3, dtype=D), torch.randn(2, 4, dtype=D)))))

    per_example = MetaLearner(net, lambda p, y: (p.squeeze(-1) - y) ** 2, "maml_adjoint", steps=5, alpha=0.1)
    refused(r"loss: returned \(5,\) for one task .*not a scalar", lambda: per_example.meta_gradient(tasks))
    summed = MetaLearner(net, lambda p, y: ((p.squeeze(-1) - y) ** 2).sum(), "maml_adjoint", steps=5, alpha=0.1)
    refused(r"loss: .*must be the mean over its examples", lambda: summed.meta_gradient(tasks))
    refused(r"backend='mlp': the hand-derived MLP cannot compute this module and loss \(layer 1 is a LayerNorm",
            lambda: MetaLearner(net, "mse", steps=5, alpha=0.1, backend="mlp").meta_gradient(tasks))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("make", [layernorm_gelu, tanh_mlp])
def test_cuda_float32_matches_cpu(make):
    net, tasks = make(), task_list()
    cpu = MetaLearner(net, "mse", "maml_adjoint", steps=10, alpha=0.1, keep_every="sqrt").meta_gradient(tasks)
    gpu_net = make().float().cuda()
    gpu_tasks = [tuple((x.float().cuda(), y.float().cuda()) for x, y in task) for task in tasks]
    gpu = MetaLearner(gpu_net, "mse", "maml_adjoint", steps=10, alpha=0.1, keep_every="sqrt").meta_gradient(gpu_tasks)
    for name, g in cpu.grads.items():
        torch.testing.assert_close(gpu.grads[name].double().cpu(), g, rtol=1e-3, atol=1e-5)
