"""The few-shot experiment's two jobs: one estimator and seed (``estimator``), or ProtoNet and a seed
(``protonet``).  Each meta-trains on tasks of the meta-training classes and tests on
``fewshot.n_test_tasks`` tasks of the held-out classes, the same tasks for every method and seed
(drawn from the master seed alone), so every comparison is paired by task and seed.

An estimator's initialization is fine-tuned on each test task's support set by gradient descent
(step ``fewshot.alpha``, as in meta-training) for ``eval_steps`` steps; accuracy and
cross-entropy on the task's query set are recorded every ``record_every`` steps.  ProtoNet
classifies with its prototypes and takes no steps: one record at step 0.

Every estimator of a seed starts from the same theta (``random_init`` keeps it) and sees the same
meta-batches.  Outputs: a JSON summary and a CSV of ``task, step, accuracy, cross_entropy``.
"""
from __future__ import annotations

import torch

from adjoint_meta import checkpoint, config, runtime
from adjoint_meta.estimators import build
from adjoint_meta.evaluate import finetune, record_steps
from adjoint_meta.fewshot import PROTONET, cnn
from adjoint_meta.fewshot.digits import SHAPE, Digits, Episodes, split
from adjoint_meta.fewshot.metrics import scores
from adjoint_meta.fewshot.protonet import Episodic, ProtoNet
from adjoint_meta.funcmodel import FuncModel, cross_entropy
from adjoint_meta.io import atomic_path, write_json
from adjoint_meta.outer_loop import meta_train, rate_history
from adjoint_meta.rates import rate_for
from adjoint_meta.seeding import derive_seed, torch_generator


def episodes(fs: dict) -> tuple[Episodes, Episodes]:
    """Task families of the meta-training classes and of the held-out test classes."""
    digits = Digits.load()
    train_classes, test_classes = split(fs["test_classes"])
    ways, shot, query = int(fs["ways"]), int(fs["shot"]), int(fs["query"])
    return (Episodes(digits, train_classes, ways, shot, query, "meta-training"),
            Episodes(digits, test_classes, ways, shot, query, "test"))


def held_out_tasks(master: int, family: Episodes, n: int, dtype: torch.dtype):
    """The held-out tasks every method and seed is tested on: (classes, support, query)."""
    return family.sample(torch_generator(master, "fewshot", "test"), n, dtype)


def _meta_train(spec: dict, job: dict, method, model, theta: torch.Tensor, family: Episodes, what: str,
                outer: tuple[str, float], out_json: str, log, device, dtype):
    """``fewshot.meta.meta_epochs`` outer updates of ``theta`` on meta-batches of ``family`` (the one outer loop)."""
    meta = spec["fewshot"]["meta"]
    gen = torch_generator(int(spec["seed"]), "fewshot", "tasks", int(job["seed"]))
    B = int(meta["meta_batch"])

    def sample():
        _, support, query = family.sample(gen, B, dtype)
        return torch.arange(B), support, query

    n_steps = int(meta["meta_epochs"]) if method.trains else 0
    return meta_train(method, model, theta, gen, sample, n_steps, what=what, outer=outer, on_nonfinite="stop",
                      rt=spec["runtime"], device=device, dtype=dtype, ckpt_path=checkpoint.path_for(out_json),
                      owner=checkpoint.owner_of(spec, job), log=log, alpha_key="fewshot.alpha")


def _write(out_json: str, out_curve: str, record: dict, curve: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> None:
    lines = ["task,step,accuracy,cross_entropy"]
    for step, (acc, ce) in curve.items():
        lines += [f"{t},{step},{a:.10g},{c:.10g}" for t, (a, c) in enumerate(zip(acc.tolist(), ce.tolist()))]
    with atomic_path(out_curve) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    last = max(curve)
    record.update(steps_recorded=sorted(curve), accuracy={s: float(a.mean()) for s, (a, _) in curve.items()},
                  cross_entropy={s: float(c.mean()) for s, (_, c) in curve.items()},
                  final_accuracy=float(curve[last][0].mean()), n_test_tasks=int(curve[last][0].numel()))
    write_json(out_json, record)


def estimator(spec: dict, name: str, seed: int, out_json: str, out_curve: str, log_file: str | None = None) -> dict:
    """Meta-train the initialization of estimator configuration ``name`` and fine-tune the test tasks from it."""
    log = runtime.logger("fewshot", log_file)
    device, dtype = runtime.setup(spec["runtime"])
    fs, cfg = spec["fewshot"], spec["estimators"][name]
    master, kind, alpha = int(spec["seed"]), cfg["kind"], float(fs["alpha"])
    train_family, test_family = episodes(fs)
    model = FuncModel(cnn.classifier(int(fs["channels"]), int(fs["ways"])), cross_entropy, SHAPE).to(device)
    theta = model.init(torch_generator(master, "fewshot", "init", seed), dtype).to(device)
    steps = config.inner_steps(kind, int(fs["steps"]), int(fs["maml_steps"]))
    method = build(kind, cfg, steps, alpha, seed=derive_seed(master, "fewshot", "estimator", name, seed))
    label = cfg.get("label") or method.label
    outer = config.outer_optimizer(fs["meta"], cfg)
    log.info("fewshot %s seed=%d | %s | CNN %d parameters | %d-way %d-shot | K=%d alpha=%g | outer %s lr %g | "
             "device %s",
             name, seed, label, model.n_params, fs["ways"], fs["shot"], steps, alpha, *outer,
             runtime.describe_device(device))
    if spec["runtime"].get("compile"):
        log.info("runtime.compile applies to the hand-derived MLP; this CNN on the torch.func backend runs eagerly")
    loop = _meta_train(spec, {"estimator": name, "seed": seed}, method, model, theta, train_family,
                       f"the digits ({label}, K={steps})", outer, out_json, log, device, dtype)
    _, support, query = held_out_tasks(master, test_family, int(fs["n_test_tasks"]), dtype)
    support, query = support.to(device, dtype), query.to(device, dtype)
    recorded = record_steps(int(fs["eval_steps"]), int(fs["record_every"]), [int(fs["steps"]),
                                                                             steps])  # the table's K, and this K
    curve = {}
    with torch.inference_mode():
        rate = rate_for(loop.rates, model, alpha, theta)  # fine-tuned with the learned step sizes, if any
        for step, u in finetune(model, theta, support, recorded, "gd", rate):
            curve[step] = scores(model.predict(u, query.x), query)
    record = {"method": name, "label": label, "kind": kind, "role": method.role, "seed": seed, "inner_steps": steps,
              "meta_steps": len(loop.rows), "wall_seconds": loop.wall, "n_params": model.n_params,
              "learned_rates": rate_history(loop)}
    _write(out_json, out_curve, record, curve)
    checkpoint.path_for(out_json).unlink(missing_ok=True)
    log.info("done in %.1fs: accuracy %.3f at step 0, %.3f at step %d", loop.wall, record["accuracy"][0],
             record["final_accuracy"], max(curve))
    return record


def protonet(spec: dict, seed: int, out_json: str, out_curve: str, log_file: str | None = None) -> dict:
    """Train Prototypical Networks on the meta-training classes and classify the test tasks."""
    log = runtime.logger("protonet", log_file)
    device, dtype = runtime.setup(spec["runtime"])
    fs, master = spec["fewshot"], int(spec["seed"])
    train_family, test_family = episodes(fs)
    net = ProtoNet(cnn.trunk(int(fs["channels"])).to(device), SHAPE)
    theta = net.init(torch_generator(master, "fewshot", "protonet", "init", seed), dtype).to(device)
    outer = config.outer_optimizer(fs["meta"], {})
    log.info("protonet seed=%d | CNN trunk %d parameters | %d-way %d-shot | outer %s lr %g | device %s",
             seed, net.n_params, fs["ways"], fs["shot"], *outer, runtime.describe_device(device))
    loop = _meta_train(spec, {"method": PROTONET, "seed": seed}, Episodic(net, int(fs["ways"])), net, theta,
                       train_family, "the digits (ProtoNet)", outer, out_json, log, device, dtype)
    _, support, query = held_out_tasks(master, test_family, int(fs["n_test_tasks"]), dtype)
    support, query = support.to(device, dtype), query.to(device, dtype)
    with torch.inference_mode():
        curve = {0: scores(net.logits(theta, support, query, int(fs["ways"])), query)}
    record = {"method": PROTONET, "label": "Prototypical Networks", "kind": PROTONET, "role": "baseline",
              "seed": seed, "inner_steps": 0, "meta_steps": len(loop.rows), "wall_seconds": loop.wall,
              "n_params": net.n_params}
    _write(out_json, out_curve, record, curve)
    checkpoint.path_for(out_json).unlink(missing_ok=True)
    log.info("done in %.1fs: accuracy %.3f", loop.wall, record["final_accuracy"])
    return record
