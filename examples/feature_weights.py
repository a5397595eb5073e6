"""Meta-learning feature weights: the alias feature's weight flows to zero (docs/feature_weights.md).

A task is f = phi_t, one true feature; the learner sees one training point, where an alias feature
phi_a equals phi_t, and fits f ~ w_t phi_t + w_a phi_a by K gradient-descent steps from w = 0 with
step sizes alpha_k = c_k^2: as K grows, the minimum-norm fit with features scaled by c.  The test
features are orthonormal.  The feature weights c take plain gradient descent on the test error E,
dE/dc_k = 2 c_k dE/dalpha_k, with dE/dalpha from the exact adjoint (step sizes learned, w held at 0).

    python examples/feature_weights.py --figure flow.png      # K = 100, 600 meta-steps
"""
import argparse
import math

import torch
from torch import nn

from adjoint_meta.api import MetaLearner, Tasks

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--steps", type=int, default=100, help="inner steps K")
ap.add_argument("--meta-steps", type=int, default=600)
ap.add_argument("--figure", default="feature_weights.png")
args = ap.parse_args()
torch.set_default_dtype(torch.float64)
P = 0.3  # phi_t = phi_a at the training point
tasks = Tasks((torch.tensor([[[P, P]]]), torch.tensor([[P]])),  # support: the one training point, y = phi_t
              (torch.tensor([[[2 ** 0.5, 0.0], [0.0, 2 ** 0.5]]]), torch.tensor([[2 ** 0.5, 0.0]])))  # test
net = nn.Linear(2, 1, bias=False)
nn.init.zeros_(net.weight)  # w = 0, held fixed
learner = MetaLearner(net, "mse", "maml_adjoint", steps=args.steps, alpha=1.0, learn_rate="parameter",
                      learn_init=False)
c = nn.Parameter(torch.tensor([0.5, 0.75 ** 0.5]))  # c_t, c_a; |c| = 1
opt = torch.optim.SGD([c], lr=0.05)  # small steps: the gradient flow of E
path = [c.detach().clone()]
for step in range(1, args.meta_steps + 1):
    with torch.no_grad():
        learner.log_rates.copy_(2 * c.abs().log())  # alpha = c^2
    result = learner.meta_gradient(tasks)  # the query loss is the mean squared error, 2 E
    c.grad = result.rate_grad / c  # dE/dc = 0.5 dJ/dlog(alpha) * dlog(alpha)/dc
    opt.step()
    path.append(c.detach().clone())
    if step % max(1, args.meta_steps // 10) == 0:
        print(f"meta-step {step:4d}  E {float(result.loss) / 2:.3e}  true weight c0 {float(path[-1][0]):.4f}  "
              f"alias weight c1 {float(path[-1][1]):.4f}  |c| {float(path[-1].norm()):.4f}")
print(f"from c = ({float(path[0][0]):.3f}, {float(path[0][1]):.3f}), |c| = {float(path[0].norm()):.3f}, "
      f"to ({float(path[-1][0]):.4f}, {float(path[-1][1]):.4f})")
try:
    import matplotlib.pyplot as plt
except ImportError:
    raise SystemExit("matplotlib is not installed: no figure") from None
g = torch.linspace(0.05, 1.1, 15)
c0, c1 = torch.meshgrid(g, g, indexing="xy")
u, v = c0 * c1 ** 4, -c0 ** 2 * c1 ** 3  # -dE/dc up to the positive factor 4 / |c|^6
fig, ax = plt.subplots(figsize=(5, 5))
ax.quiver(c0, c1, u / (u ** 2 + v ** 2).sqrt(), v / (u ** 2 + v ** 2).sqrt(), color="0.6", label="direction of -dE/dc")
ax.plot(*torch.stack(path).T, "C0.-", ms=2, label="meta-learned c")
t = torch.linspace(0, math.pi / 2, 100)
ax.plot(path[0].norm() * t.cos(), path[0].norm() * t.sin(), "k:", lw=1, label="|c| = |c(0)|")
ax.set(xlabel="true feature weight c0", ylabel="alias feature weight c1", aspect="equal")
ax.legend(loc="upper right")
fig.savefig(args.figure, dpi=120, bbox_inches="tight")
print(f"figure: {args.figure}")
