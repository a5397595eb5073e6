"""A few-shot classifier (5-way, 1-shot) meta-trained by A-MAML and by MAML side by side: A-MAML
integrates the inner gradient flow with dopri5 and solves its adjoint backwards (memory one state
per grid point, no graph); MAML differentiates the unrolled inner loop with autograd.

Each task: 5 classes whose means are drawn at random in 16 dimensions, the labels shuffled per
task, 1 support and 10 query examples per class.

    python examples/fewshot_amaml.py                  # K = 20, 60 meta-steps
    python examples/fewshot_amaml.py --steps 5 --meta-steps 3
"""
import argparse

import torch
from torch import nn

from adjoint_meta.api import MetaLearner, Tasks

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--steps", type=int, default=20, help="inner steps K")
ap.add_argument("--meta-steps", type=int, default=60)
args = ap.parse_args()
torch.manual_seed(0)
torch.set_num_threads(1)  # small networks: one thread is the fastest on a CPU
WAYS, SHOTS, QUERIES, DIM = 5, 1, 10, 16


def tasks(n: int) -> Tasks:
    means = 0.7 * torch.randn(n, WAYS, DIM)
    def draw(per_class):
        y = torch.arange(WAYS).repeat(per_class).expand(n, -1)
        return means.gather(1, y.unsqueeze(-1).expand(-1, -1, DIM)) + torch.randn(n, y.shape[1], DIM), y
    return Tasks(draw(SHOTS), draw(QUERIES))


def accuracy(learner: MetaLearner, batch: Tasks) -> float:
    logits = learner.predict(learner.adapt(batch), batch.query[0])
    return float((logits.argmax(-1) == batch.query[1]).float().mean())


test = tasks(50)
for name in ("amaml", "maml"):
    torch.manual_seed(1)  # the same initial network for both
    net = nn.Sequential(nn.Linear(DIM, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, WAYS))
    learner = MetaLearner(net, nn.CrossEntropyLoss(), name, steps=args.steps, alpha=0.1)
    opt = torch.optim.Adam(learner.meta_parameters(), lr=3e-3)
    print(f"{name}: held-out accuracy after {args.steps} inner steps, before meta-training "
          f"{accuracy(learner, test):.3f}")
    for step in range(1, args.meta_steps + 1):
        opt.zero_grad()
        result = learner.backward(tasks(8))
        opt.step()
        if step % max(1, args.meta_steps // 6) == 0:
            said = f"  gradient evaluations of the forward solve {result.stats['nfe']}" if "nfe" in result.stats else ""
            print(f"  {name} meta-step {step:3d}  query loss {float(result.loss):.4f}{said}")
    print(f"{name}: held-out accuracy after meta-training {accuracy(learner, test):.3f}")
