"""Run inside a fresh environment with the bare install (`pip install .`): the library imports
without the workflow's packages and computes a meta-gradient that unrolled autograd confirms."""
import importlib.util
import sys
from importlib import metadata

import torch
from torch import nn

from adjoint_meta.api import MetaLearner, Tasks

WORKFLOW = ["pandas", "pyarrow", "yaml", "jsonschema", "matplotlib", "seaborn", "scipy", "sklearn", "xlrd",
            "snakemake", "dvc", "torchdiffeq"]
installed = [m for m in WORKFLOW if importlib.util.find_spec(m) is not None]
assert not installed, f"the bare install brought workflow packages: {installed}"
required = [r for r in metadata.requires("adjoint-meta") if "extra ==" not in r]
assert sorted(r.split(">")[0].split("=")[0].strip() for r in required) == ["numpy", "torch"], required

torch.manual_seed(0)
net = nn.Sequential(nn.Linear(2, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 1)).double()
x_s, x_q = torch.randn(3, 6, 2, dtype=torch.float64), torch.randn(3, 5, 2, dtype=torch.float64)
y_s, y_q = x_s.sum(-1).sin(), x_q.sum(-1).sin()
K, alpha = 30, 0.1
learner = MetaLearner(net, "mse", "maml_adjoint", steps=K, alpha=alpha, keep_every="sqrt")
result = learner.meta_gradient(Tasks((x_s, y_s), (x_q, y_q)))

# the same meta-gradient by unrolled autograd, one task at a time
names = [n for n, _ in net.named_parameters()]
theta = [p.detach().clone().requires_grad_(True) for p in net.parameters()]
total = 0.0
for b in range(3):
    params = list(theta)
    for _ in range(K):
        out = torch.func.functional_call(net, dict(zip(names, params)), (x_s[b],)).squeeze(-1)
        grads = torch.autograd.grad(((out - y_s[b]) ** 2).mean(), params, create_graph=True)
        params = [p - alpha * g for p, g in zip(params, grads)]
    out = torch.func.functional_call(net, dict(zip(names, params)), (x_q[b],)).squeeze(-1)
    total = total + ((out - y_q[b]) ** 2).mean() / 3
reference = torch.autograd.grad(total, theta)
for name, ref in zip(names, reference):
    torch.testing.assert_close(result.grads[name], ref, rtol=1e-9, atol=1e-12)
assert "pandas" not in sys.modules and "yaml" not in sys.modules
print(f"bare install: meta-gradient of {sum(p.numel() for p in theta)} parameters matches unrolled autograd, "
      f"query loss {float(result.loss):.6f}, forward sweep kept {learner.store}")
