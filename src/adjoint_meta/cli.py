"""Command-line interface: one subcommand per pipeline step.

Parameters come either from a parameter file (``--params params.yaml``, with
``--set key=value`` overrides; what DVC stages use) or from the slice a
Snakemake rule passes (``--slice '<json>'``).  Both are validated against the
schema before any work starts.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from adjoint_meta import config, usage
from adjoint_meta.data.sources import SOURCES

EXIT_PARAMS = 2
EXIT_FAILURE = 1


def _add_params(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("parameters")
    g.add_argument("--params", default=config.DEFAULT_PARAMS, metavar="FILE",
                   help="parameter file (default: %(default)s)")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter, e.g. --set meta.lr=0.01 (repeatable)")
    g.add_argument("--slice", metavar="JSON",
                   help="the parameter slice of this job as JSON (what the Snakemake rules pass)")


def _add_cell(p: argparse.ArgumentParser, fields: tuple[str, ...]) -> None:
    g = p.add_argument_group("which job")
    for f in fields:
        g.add_argument(f"--{f}", required=True, type=int if f == "seed" else str)


def _overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise config.ParamsError(f"--set {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = config.parse_value(value)
    return out


def _spec(args: argparse.Namespace, step: str, **keys) -> dict:
    """The job's parameters: from the slice a Snakemake rule passed, or from the parameter file
    (DVC's stages), through the one resolver ``config.job_slice``."""
    if args.slice is not None:
        return config.load_slice(args.slice, step, **keys)
    return config.job_slice(config.load(args.params, _overrides(args.overrides)), step, **keys)


CELL = config.CELL_FIELDS


def cmd_params(args: argparse.Namespace) -> None:
    import json

    params = config.load(args.params, _overrides(args.overrides))
    if args.cells:
        for c in config.cells(params):
            print(" ".join(f"{k}={v}" for k, v in c.as_dict().items()))
    elif args.show:
        print(json.dumps(params, indent=2, sort_keys=True))
    else:
        print(f"{args.params}: valid ({len(config.cells(params))} training jobs, preset {params['preset']!r})")


def cmd_fetch(args: argparse.Namespace) -> None:
    from adjoint_meta import fetch

    fetch.run(_spec(args, "fetch"), args.source, args.out, args.log)


def cmd_place_raw(args: argparse.Namespace) -> None:
    from adjoint_meta import paths
    from adjoint_meta.data import raw

    params = config.load(args.params, _overrides(args.overrides))
    placed = raw.place_copies(args.source_dir, paths.RAW_DIR, params["raw"]["sources"], progress=print)
    for name, path in placed.items():
        print(f"{name}: {path if path else 'no copy found; the fetch step will download it or say what is missing'}")


def cmd_make_tasks(args: argparse.Namespace) -> None:
    from adjoint_meta import make_tasks

    spec = _spec(args, "make-tasks", dataset=args.dataset)
    make_tasks.run(spec, args.dataset, args.out, args.summary, args.log)


def _cell(args: argparse.Namespace) -> dict:
    return {f: getattr(args, f) for f in CELL}


def cmd_train(args: argparse.Namespace) -> None:
    from adjoint_meta import train

    cell = _cell(args)
    train.run(_spec(args, "train", **cell), cell, args.tasks, args.out_model, args.out_log, args.log)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from adjoint_meta import evaluate

    cell = _cell(args)
    evaluate.run(_spec(args, "evaluate", **cell), cell, args.model, args.tasks, args.out, args.out_curve, args.log)


def cmd_fewshot(args: argparse.Namespace) -> None:
    from adjoint_meta.fewshot import run

    spec = _spec(args, "fewshot", estimator=args.estimator, seed=args.seed)
    run.estimator(spec, args.estimator, args.seed, args.out, args.out_curve, args.log)


def cmd_protonet(args: argparse.Namespace) -> None:
    from adjoint_meta.fewshot import run

    run.protonet(_spec(args, "protonet", seed=args.seed), args.seed, args.out, args.out_curve, args.log)


def cmd_profile(args: argparse.Namespace) -> None:
    from adjoint_meta import profile

    profile.run(_spec(args, "profile", profile=args.profile), args.profile, args.tasks, args.out, args.log)


def cmd_accuracy(args: argparse.Namespace) -> None:
    from adjoint_meta import accuracy

    accuracy.run(_spec(args, "accuracy", name=args.name), args.name, args.tasks, args.out, args.log)


def cmd_timings(args: argparse.Namespace) -> None:
    from adjoint_meta import timings

    params = config.load(args.params, _overrides(args.overrides))
    print(timings.summary(params, args.root, args.cores))


def cmd_dvc_yaml(args: argparse.Namespace) -> None:
    from pathlib import Path

    from adjoint_meta import dvc_yaml

    text = dvc_yaml.render(config.load(args.params, _overrides(args.overrides)))
    out = Path(args.out)
    if args.check:
        if not out.is_file() or out.read_text() != text:
            raise config.ParamsError(f"{out} is not what `adjoint-meta dvc-yaml` writes from {args.params} and the "
                                     f"package; rerun `adjoint-meta dvc-yaml` and commit the result")
        print(f"{out}: up to date")
        return
    from adjoint_meta.io import write_text

    write_text(out, text)
    print(f"wrote {out}")


def cmd_code_inputs(args: argparse.Namespace) -> None:
    from adjoint_meta import codedeps, paths

    written = codedeps.write_code_inputs(config.load(args.params, _overrides(args.overrides)), args.root)
    print(f"code inputs: {len(written)} written under {Path(args.root) / paths.CODE_DIR}")


def cmd_summarize(args: argparse.Namespace) -> None:
    from adjoint_meta import summarize

    summarize.run(_spec(args, "summarize"), root=args.root, log_file=args.log)


def cmd_report(args: argparse.Namespace) -> None:
    if args.from_ is not None:
        from adjoint_meta import publish

        folder = Path(args.from_)
        out = Path(args.out) if args.out else Path("reports") / folder.resolve().name / "report.html"
        print(f"rebuilt {publish.rebuild(folder, out)} (verdicts: {out.parent / publish.VERDICTS}, figures: "
              f"{out.parent / 'figures'})")
        return
    if args.out is None:
        raise config.ParamsError("--out: the report file to write is needed (or --from a published release)")
    from adjoint_meta import report

    report.run(_spec(args, "report"), args.out, root=args.root, log_file=args.log)


def cmd_publish(args: argparse.Namespace) -> None:
    from adjoint_meta import publish
    from adjoint_meta.units import MB

    out = Path(args.out) if args.out else Path("published") / args.release
    manifest = publish.publish(args.run, out, args.release)
    size = publish.folder_size(out)
    print(f"published {out}: {len(manifest['units']['done'])} units done, {len(manifest['units']['pending'])} "
          f"pending, {len(manifest['files'])} files, {size / MB:.1f} MiB")


def cmd_progress(args: argparse.Namespace) -> None:
    from adjoint_meta import progress

    folder = Path(args.folder) if args.folder else progress.folder_for(args.release)
    if args.action == "save":
        m = progress.save(args.run, folder)
        print(f"saved {folder}: {m['jobs']['done']} of {m['jobs']['total']} jobs done, {m['jobs']['under_way']} "
              f"checkpoints of jobs under way, {len(m['files'])} files")
    else:
        r = progress.restore(folder, args.run)
        print(f"restored {r['restored']} files from {folder} into {args.run} ({r['kept']} already there, "
              f"{r['stale']} checkpoints of jobs finished since left out)")


def cmd_readme(args: argparse.Namespace) -> None:
    from adjoint_meta import publish

    publish.verify(args.from_)
    changed = publish.write_readme(args.from_, args.file)
    print(f"{args.file}: results block {'rewritten' if changed else 'already up to date'} from {args.from_}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adjoint-meta",
        description="Long-horizon meta-learning of model initializations: every step of the pipeline.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STEP")

    def add(name: str, func: Callable, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        _add_params(p)
        return p

    p = add("params", cmd_params, "validate the parameters and show the effective values or the job grid")
    p.add_argument("--show", action="store_true", help="print the effective parameters (preset applied)")
    p.add_argument("--cells", action="store_true", help="list the training jobs the parameters define")

    p = add("fetch", cmd_fetch, "make a raw dataset present and verified (download only if missing)")
    p.add_argument("--source", required=True, choices=list(SOURCES))
    p.add_argument("--out", required=True, help="manifest of the raw file used (.json)")
    p.add_argument("--log", help="log file")

    p = add("place-raw", cmd_place_raw,
            "copy raw dataset files from a directory of local copies into data/raw/ (not a pipeline step)")
    p.add_argument("--from", dest="source_dir", required=True, help="directory searched recursively")

    p = add("make-tasks", cmd_make_tasks, "build the task table of one dataset")
    _add_cell(p, ("dataset",))
    p.add_argument("--out", required=True, help="task table (.parquet)")
    p.add_argument("--summary", required=True, help="summary of the tasks (.json)")
    p.add_argument("--log", help="log file")

    p = add("train", cmd_train, "meta-train one initialization (one estimator, dataset, setting, seed)")
    _add_cell(p, CELL)
    p.add_argument("--tasks", required=True, help="task table from make-tasks")
    p.add_argument("--out-model", required=True, help="learned theta and metadata (.pt)")
    p.add_argument("--out-log", required=True, help="training curve, one row per meta-step (.csv)")
    p.add_argument("--log", help="log file")

    p = add("evaluate", cmd_evaluate, "fine-tune the held-out tasks from a learned theta and measure nRMSE")
    _add_cell(p, CELL)
    p.add_argument("--model", required=True, help="output of train")
    p.add_argument("--tasks", required=True, help="task table from make-tasks")
    p.add_argument("--out", required=True, help="metrics of the cell (.json)")
    p.add_argument("--out-curve", required=True, help="error of every test task along fine-tuning (.csv)")
    p.add_argument("--log", help="log file")

    p = add("fewshot", cmd_fewshot, "few-shot classification: meta-train one estimator's CNN initialization on the "
            "digits and fine-tune the held-out tasks from it")
    _add_cell(p, ("estimator", "seed"))
    p.add_argument("--out", required=True, help="accuracy along fine-tuning, summary (.json)")
    p.add_argument("--out-curve", required=True, help="accuracy and cross-entropy of every test task (.csv)")
    p.add_argument("--log", help="log file")

    p = add("protonet", cmd_protonet, "few-shot classification: train Prototypical Networks on the digits and "
            "classify the held-out tasks")
    _add_cell(p, ("seed",))
    p.add_argument("--out", required=True, help="accuracy, summary (.json)")
    p.add_argument("--out-curve", required=True, help="accuracy and cross-entropy of every test task (.csv)")
    p.add_argument("--log", help="log file")

    p = add("profile", cmd_profile, "time and memory of every estimator's meta-update over a profile's sweeps, "
            "against one plain-training floor per point")
    p.add_argument("--profile", required=True)
    p.add_argument("--tasks", required=True, help="task table of the profile's dataset")
    p.add_argument("--out", required=True, help="one row per sweep point and estimator (.csv)")
    p.add_argument("--log", help="log file")

    p = add("accuracy", cmd_accuracy, "meta-gradients of several estimators against the exact one")
    p.add_argument("--name", required=True, help="the study under 'accuracy'")
    p.add_argument("--tasks", required=True, help="task table of the study's dataset")
    p.add_argument("--out", required=True, help="one row per estimator, inner steps and meta-batch (.csv)")
    p.add_argument("--log", help="log file")

    p = add("timings", cmd_timings, "wall time, CPU time and peak memory of every Snakemake job, and the "
            "critical path (not a pipeline step)")
    p.add_argument("--root", default=".", help="project root holding logs/benchmarks (default: %(default)s)")
    p.add_argument("--cores", type=int, default=2, help="cores the run had (for the lower bound)")

    p = add("dvc-yaml", cmd_dvc_yaml, "write dvc.yaml (the DVC front end) from the parameters and the package "
            "(not a pipeline step)")
    p.add_argument("--out", default="dvc.yaml", help="file to write (default: %(default)s)")
    p.add_argument("--check", action="store_true", help="only check that the file is what would be written")

    p = add("code-inputs", cmd_code_inputs, "write each job's code input, the fingerprint of the package files "
            "it can be changed by, where it changed (DVC's code stage; not a pipeline step)")
    p.add_argument("--root", default=".", help="project root holding src/ and results/ (default: %(default)s)")

    p = add("summarize", cmd_summarize, "collect all evaluations into tables, metrics and mean curves")
    p.add_argument("--root", default=".", help="project root holding results/ (default: %(default)s)")
    p.add_argument("--log", help="log file")

    p = add("report", cmd_report, "build the self-contained HTML report")
    p.add_argument("--out", help="report file (.html); with --from, default reports/<release>/report.html")
    p.add_argument("--from", dest="from_", metavar="FOLDER",
                   help="rebuild the report of a published release (e.g. published/study-v1) after checking every "
                        "file against its manifest; nothing is trained")
    p.add_argument("--root", default=".", help="project root holding reports/ and data/ (default: %(default)s)")
    p.add_argument("--log", help="log file")
    p = sub.add_parser("publish", help="copy a run's finished results into a release folder with a manifest",
                       description="copy what a run has finished (whole experiments, profiles, accuracy studies, "
                                   "the few-shot experiment) into published/<release>/, build its summaries and "
                                   "report there, and write manifest.json")
    p.set_defaults(func=cmd_publish)
    p.add_argument("--run", required=True, help="the run's project root (a clone of the release's commit)")
    p.add_argument("--release", required=True, help="the release's name, e.g. study-v1")
    p.add_argument("--out", help="the release folder (default: published/<release>)")

    p = sub.add_parser("progress", help="save a release run's finished jobs and checkpoints, or restore them "
                                        "into a new clone",
                       description="save: copy the finished jobs and the training checkpoints of a release run "
                                   "into published/<release>.progress/ (replaced whole); restore: copy them into "
                                   "a clone of the same commit whose data step has run, dated so that Snakemake "
                                   "resumes after them")
    p.set_defaults(func=cmd_progress)
    p.add_argument("action", choices=["save", "restore"])
    p.add_argument("--run", required=True, help="the run's project root (a clone of the release's commit)")
    p.add_argument("--release", required=True, help="the release's name, e.g. study-v1")
    p.add_argument("--folder", help="the progress folder (default: published/<release>.progress)")

    p = sub.add_parser("readme", help="write a published release's results into the README's results block",
                       description="rewrite the block between the README's results markers from a published "
                                   "release (checked against its manifest first)")
    p.set_defaults(func=cmd_readme)
    p.add_argument("--from", dest="from_", required=True, metavar="FOLDER", help="e.g. published/study-v1")
    p.add_argument("--file", default="README.md", help="the README to rewrite (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except config.ParamsError as exc:
        return _fail(args, f"adjoint-meta {args.command}: {exc}", EXIT_PARAMS)
    except (OSError, ValueError, RuntimeError) as exc:
        return _fail(args, f"adjoint-meta {args.command}: error: {exc}", EXIT_FAILURE)
    if getattr(args, "log", None):
        usage.append_to(args.log)
    return 0


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    """Report on stderr and append to the job's log file, so the log says why the job failed."""
    print(message, file=sys.stderr)
    log = getattr(args, "log", None)
    if log:
        try:
            with open(log, "a") as fh:
                fh.write(message + "\n")
        except OSError:
            pass
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
