"""Learn one inner step size per layer together with the initialization (Meta-SGD per layer): the
exact discrete adjoint's backward sweep gives dJ/dlog(alpha_l) alongside dJ/dtheta, and Adam steps
both.  A plain tanh MLP, so the hand-derived backend runs it.

    python examples/learned_step_sizes.py                     # K = 100, 200 meta-steps
    python examples/learned_step_sizes.py --steps 10 --meta-steps 4
"""
import argparse
import math

import torch
from torch import nn

from adjoint_meta.api import MetaLearner, Tasks

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--steps", type=int, default=100, help="inner steps K")
ap.add_argument("--meta-steps", type=int, default=200)
args = ap.parse_args()
torch.manual_seed(0)
torch.set_num_threads(1)  # small networks: one thread is the fastest on a CPU


def sinusoids(n_tasks: int, shots: int = 10, queries: int = 20) -> Tasks:
    """Tasks y = a sin(x + p), a in [0.1, 5], p in [0, pi], x in [-5, 5]."""
    a = torch.empty(n_tasks, 1, 1).uniform_(0.1, 5.0)
    p = torch.empty(n_tasks, 1, 1).uniform_(0.0, math.pi)
    x_s, x_q = torch.empty(n_tasks, shots, 1).uniform_(-5, 5), torch.empty(n_tasks, queries, 1).uniform_(-5, 5)
    return Tasks((x_s, a * torch.sin(x_s + p)), (x_q, a * torch.sin(x_q + p)))


net = nn.Sequential(nn.Linear(1, 40), nn.Tanh(), nn.Linear(40, 40), nn.Tanh(), nn.Linear(40, 1))
learner = MetaLearner(net, "mse", "maml_adjoint", steps=args.steps, alpha=0.001, learn_rate="layer")
# the initialization and the log step sizes, each with its own outer learning rate
opt = torch.optim.Adam([{"params": net.parameters()}, {"params": [learner.log_rates], "lr": 3e-2}], lr=3e-3)
for step in range(1, args.meta_steps + 1):
    opt.zero_grad()
    result = learner.backward(sinusoids(8))
    opt.step()
    if step % max(1, args.meta_steps // 10) == 0 or step == 1:
        rates = "  ".join(f"{a:.4f}" for a in learner.log_rates.detach().exp().tolist())
        print(f"meta-step {step:4d}  query MSE {float(result.loss):.4f}  step size per layer {rates}  "
              f"({result.stats['backend']} backend)")
sizes = learner.step_sizes()  # every parameter's step size, in the parameter's shape
print("learned step sizes:", {name: float(t.flatten()[0]) for name, t in sizes.items() if name.endswith("weight")})
