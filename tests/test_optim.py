"""The optimizers on plain tensors take torch.optim's steps exactly."""
import pytest
import torch

from adjoint_meta import optim


def _grads(shape, n, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    # gradients of changing scale and sign, as an outer loop sees them
    return [torch.randn(shape, generator=g, dtype=dtype) * 10.0 ** (k % 5 - 2) for k in range(n)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind,kwargs", [("adam", {}), ("adam", {"weight_decay": 1e-6}), ("sgd", {})])
def test_steps_equal_torch_optim(dtype, kind, kwargs):
    start = torch.randn(3, 50, generator=torch.Generator().manual_seed(1), dtype=dtype)
    ref = torch.nn.Parameter(start.clone())
    ref_opt = (torch.optim.Adam([ref], lr=1e-3, **kwargs) if kind == "adam"
               else torch.optim.SGD([ref], lr=1e-3))
    mine = start.clone()
    opt = optim.Adam(mine, 1e-3, **kwargs) if kind == "adam" else optim.SGD(mine, 1e-3)
    for g in _grads(start.shape, 60, dtype):
        ref.grad = g.clone()
        ref_opt.step()
        opt.step(g)
    assert torch.equal(mine, ref.detach())
    assert not torch.equal(mine, start)


def test_state_round_trip_continues_identically():
    grads = _grads((40,), 30, torch.float64)
    a = torch.zeros(40, dtype=torch.float64)
    opt_a = optim.make("adam", a, 0.01)
    for g in grads:
        opt_a.step(g)
    b = torch.zeros(40, dtype=torch.float64)
    opt_b = optim.make("adam", b, 0.01)
    for g in grads[:12]:
        opt_b.step(g)
    c = b.clone()
    opt_c = optim.make("adam", c, 0.01)
    opt_c.load_state_dict(opt_b.state_dict())
    for g in grads[12:]:
        opt_c.step(g)
    assert torch.equal(c, a)


def test_bad_names_and_states_are_refused():
    with pytest.raises(ValueError, match="meta.optimizer 'rmsprop'"):
        optim.make("rmsprop", torch.zeros(3), 0.1)
    with pytest.raises(ValueError, match="kind 'sgd', expected 'adam'"):
        optim.make("adam", torch.zeros(3), 0.1).load_state_dict(optim.make("sgd", torch.zeros(3), 0.1).state_dict())
    with pytest.raises(ValueError, match="shape"):
        optim.make("adam", torch.zeros(3), 0.1).load_state_dict(optim.make("adam", torch.zeros(4), 0.1).state_dict())


def test_training_does_not_import_the_compiler():
    """The reason these exist: torch.optim pulls in TorchDynamo (seconds of start-up per job)."""
    import subprocess
    import sys

    code = ("import sys, torch; import adjoint_meta.train, adjoint_meta.evaluate; from adjoint_meta import optim; "
            "p = torch.zeros(5); o = optim.make('adam', p, 0.1); o.step(torch.ones(5)); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
