"""A release's results in the repository: what a run finished, copied with a manifest, and the report
rebuilt from them without training anything.

A run's work falls into *units*: each experiment (its cells' trained initializations, training logs and
evaluations), each profile, each accuracy study, and the few-shot experiment (its estimators and
ProtoNet).  ``publish`` copies the units a run has finished into ``published/<release>/`` under the
paths the pipeline wrote them to, builds the summaries and the report on those units alone, and writes
``manifest.json``: the commit that trained, the commit whose code built the report, dates, machine,
package versions, each job's wall and CPU time, the units done and pending, and the sha256 of every file.
``rebuild`` checks every file against the manifest (a missing or altered file stops it, naming the file)
and builds the report again from the folder.  A claim whose results lie in a pending unit is shown as
"not yet run", never as a verdict.
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import lzma
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from adjoint_meta import config, paths, timings
from adjoint_meta.io import digests, write_text

MANIFEST = "manifest.json"
PARAMS = "params.yaml"
VERDICTS = "verdicts.csv"  # the verdict table, one row per claim
NOT_YET_RUN = "not yet run"
VERDICT_COLUMNS = ["key", "claim", "verdict", "evidence", "detail"]
FEWSHOT_UNIT = "fewshot"
RESULTS = "results"  # the jobs' outputs; their CSV and JSON files are published compressed
COMPRESSED = (".csv", ".json")
PACKED = ".xz"  # xz at its default preset: a quarter smaller than gzip on these files, and still fast
THIN_TRAIN_LOG = 10  # a published training log keeps every 10th meta-step (and the last); no report reads it
# the units each claim of reference/paper.yaml is judged on, by group: the experiments with a table in the
# paper, the other (Figure 2) experiments, and the profile of Figures 3-4
CLAIM_GROUPS = {"tables": ("tables",), "figure2": ("figure2",), "maml1": ("figure2",),
                "imaml": ("figure2",), "fomaml_reptile": ("tables", "figure2"), "reptile": ("tables", "figure2"),
                "figure3": ("profile",), "figure4": ("profile",)}


def sha256(path: Path) -> str:
    return digests(path)["sha256"]


class PublishError(RuntimeError):
    """A published folder that cannot be used as it is (a file missing, altered or unknown)."""


def unit_files(params: dict) -> dict[str, dict[str, list[str]]]:
    """Every unit of the parameters with the files it must have (``required``) and the job records it
    may have (``logs``: the jobs' logs and Snakemake's benchmark records), paths relative to the root."""
    units: dict[str, dict[str, list[str]]] = {}

    def add(unit: str, required: list[str], jobs: list[tuple[str, str]]) -> None:
        entry = units.setdefault(unit, {"required": [], "logs": []})
        entry["required"] += required
        entry["logs"] += [f.format(step=s, name=n) for s, n in jobs for f in (paths.LOG, paths.BENCHMARK)]

    for c in config.cells(params):
        cell = c.as_dict()
        name = paths.cell_name(cell)
        add(f"experiment:{c.experiment}", [p.format(**cell) for p in (paths.MODEL, paths.TRAIN_LOG, paths.EVAL,
                                                                       paths.EVAL_CURVE)],
            [("train", name), ("evaluate", name)])
    for j in config.profile_jobs(params):
        add(f"profile:{j['profile']}", [paths.PROFILE.format(**j)], [("profile", paths.PROFILE_NAME.format(**j))])
    for j in config.accuracy_jobs(params):
        add(f"accuracy:{j['name']}", [paths.ACCURACY.format(**j)], [("accuracy", j["name"])])
    for j in config.fewshot_jobs(params):
        add(FEWSHOT_UNIT, [paths.FEWSHOT.format(**j), paths.FEWSHOT_CURVE.format(**j)],
            [("fewshot", paths.FEWSHOT_NAME.format(**j))])
    for j in config.protonet_jobs(params):
        add(FEWSHOT_UNIT, [paths.PROTONET.format(**j), paths.PROTONET_CURVE.format(**j)],
            [("protonet", paths.PROTONET_NAME.format(**j))])
    return units


def data_files(params: dict) -> list[str]:
    """The data step's records a release carries: each dataset's task summary and each raw source's
    manifest (checksums and counts, never the data)."""
    used = {d: s for d, s in params["datasets"].items()}
    files = [paths.TASKS_SUMMARY.format(dataset=d) for d in used]
    files += [paths.RAW_MANIFEST.format(source=s) for s in params["raw"]["sources"]]
    return files


def finished(params: dict, root: Path) -> tuple[list[str], list[str]]:
    """(units whose required files all exist under ``root``, the others), in the parameters' order."""
    complete = {u for u, files in unit_files(params).items() if all((root / f).is_file() for f in files["required"])}
    # an experiment judged against another's reference (an ablation) waits for that experiment
    for e, x in params["experiments"].items():
        ref = (x.get("paired_test") or {}).get("experiment")
        if ref not in (None, e) and f"experiment:{ref}" not in complete:
            complete.discard(f"experiment:{e}")
    units = list(unit_files(params))
    return [u for u in units if u in complete], [u for u in units if u not in complete]


def restrict(params: dict, done: list[str]) -> dict:
    """The parameters with only the finished units: pending experiments, profiles and accuracy studies
    left out, and the few-shot experiment without estimators while it is pending."""
    keep = set(done)
    out = json.loads(json.dumps(params))
    out["experiments"] = {e: x for e, x in params["experiments"].items() if f"experiment:{e}" in keep}
    out["profiles"] = {p: x for p, x in params["profiles"].items() if f"profile:{p}" in keep}
    out["accuracy"] = {a: x for a, x in params["accuracy"].items() if f"accuracy:{a}" in keep}
    if FEWSHOT_UNIT not in keep:
        out["fewshot"] = dict(params["fewshot"], estimators=[])
    return out


def pending_claims(params: dict, pending: list[str]) -> set[str]:
    """The claims judged (wholly or in part) on a unit that is not finished."""
    from adjoint_meta.report import claims, loading

    with_paper, others, _ = loading.experiment_groups(params)
    groups = {"tables": [f"experiment:{e}" for e in with_paper], "figure2": [f"experiment:{e}" for e in others],
              "profile": [f"profile:{claims.FIGURES_3_4}"] if claims.FIGURES_3_4 in params["profiles"] else []}
    waiting = set(pending)
    return {key for key, gs in CLAIM_GROUPS.items() if any(u in waiting for g in gs for u in groups[g])}


def verdict_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=VERDICT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({"key": r["key"], "claim": r["text"], "verdict": r["verdict"], "evidence": r["evidence"],
                         "detail": r["detail"]})
    return buf.getvalue()


UNKNOWN_COMMIT = "unknown (not a git checkout)"
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout whose code builds the report


def _git(root: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _commit(root: Path) -> str:
    return _git(root, "rev-parse", "HEAD") or UNKNOWN_COMMIT


def _machine() -> dict:
    mem = ""
    try:
        mem = next(line.split(":", 1)[1].strip() for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    return {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count(),
            "memory": mem, "python": platform.python_version()}


def _job_times(root: Path, logs: set[str]) -> list[dict]:
    bench = timings.read_benchmarks(root)
    rows = []
    for r in bench.itertuples():
        if paths.BENCHMARK.format(step=r.step, name=r.job) in logs:
            rows.append({"step": r.step, "job": r.job, "wall_s": round(float(r.wall_s), 3),
                         "cpu_s": round(float(r.cpu_s), 3), "max_rss_mb": round(float(r.max_rss_mb), 1)})
    return rows


def _build_report(params: dict, full: dict, pending: list[str], base: Path, summarize_first: bool,
                  trained_commit: str) -> list[dict]:
    """Summaries (when asked) and the report of the finished units under ``base``; the verdict rows."""
    from adjoint_meta import report, summarize

    restricted = restrict(full, [u for u in unit_files(full) if u not in pending])
    if summarize_first:
        summarize.run(restricted, root=str(base))
    return report.run(restricted, str(base / paths.REPORT), root=str(base),
                      pending_claims=pending_claims(full, pending), pending_units=pending,
                      trained_commit=trained_commit, release_params=full)


def publish(run_root: str | Path, out_dir: str | Path, release: str) -> dict:
    """Copy what the run at ``run_root`` finished into ``out_dir``, build its summaries and report there,
    and write the manifest; returns the manifest.  Only whole units are copied."""
    run_root, out_dir = Path(run_root).resolve(), Path(out_dir)
    params_file = run_root / PARAMS
    full = config.load(params_file)
    done, pending = finished(full, run_root)
    units = unit_files(full)
    copied = list(data_files(full)) + [PARAMS]
    logs: set[str] = set()
    for u in done:
        copied += units[u]["required"]
        logs |= {f for f in units[u]["logs"] if (run_root / f).is_file()}
    copied += sorted(logs)
    with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
        work = Path(tmp) / release
        for rel in copied:
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(run_root / rel, work / rel)
        # the predictor baselines are fitted on the collaborative task pools: they are read from the run's
        # task tables, which a release does not carry (they are the raw data, reshaped)
        for d in config.baseline_datasets(restrict(full, done)):
            table = paths.TASKS.format(dataset=d)
            (work / table).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(run_root / table, work / table)
        trained = _commit(run_root)
        rows = _build_report(full, full, pending, work, summarize_first=True, trained_commit=trained)
        for d in config.baseline_datasets(full):
            (work / paths.TASKS.format(dataset=d)).unlink(missing_ok=True)
        write_text(str(work / VERDICTS), verdict_csv(rows))
        train_logs = {paths.TRAIN_LOG.format(**c.as_dict()) for c in config.cells(full)}
        for p in sorted(p for p in work.glob(f"{RESULTS}/**/*") if p.suffix in COMPRESSED):
            rel = str(p.relative_to(work))
            compress(p, thin=THIN_TRAIN_LOG if rel in train_logs else 1)
        files = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
        manifest = {
            "release": release,
            "trained_commit": trained,
            "tag": _git(run_root, "describe", "--tags", "--exact-match", "HEAD"),
            "report_commit": _commit(PROJECT_ROOT),
            "published": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": _machine(),
            "packages": _run_versions(run_root),
            "units": {"done": done, "pending": pending},
            "jobs": _job_times(run_root, logs),
            "files": {f: sha256(work / f) for f in files},
        }
        install(work, out_dir, manifest)
    return manifest


def install(work: Path, out_dir: Path, manifest: dict) -> None:
    """Write ``manifest`` into the folder built at ``work`` and put that folder at ``out_dir``, replacing
    whatever was there."""
    write_text(str(work / MANIFEST), json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(work, out_dir)


def _run_versions(run_root: Path) -> dict:
    """The main packages' versions in the run's own environment (its .venv when it has one)."""
    from adjoint_meta.report import provenance

    python = run_root / ".venv" / "bin" / "python"
    if not python.is_file():
        return provenance.versions()
    code = "import json; from adjoint_meta.report import provenance as p; print(json.dumps(p.versions()))"
    try:
        out = subprocess.run([str(python), "-c", code], cwd=run_root, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError):
        return provenance.versions()


def verify(folder: str | Path) -> dict:
    """The manifest of a published folder, after checking every file it lists (present, same sha256)
    and that the folder holds no other file; the first problem stops it, naming the file."""
    folder = Path(folder)
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise PublishError(f"{mpath}: no manifest; not a published release folder (adjoint-meta publish makes one)")
    try:
        manifest = json.loads(mpath.read_text())
        listed = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise PublishError(f"{mpath}: unreadable manifest ({exc})") from None
    for rel in sorted(listed):
        if not (folder / rel).is_file():
            raise PublishError(f"{folder / rel}: missing from the published release (the manifest lists it)")
    for rel in sorted(listed):
        actual = sha256(folder / rel)
        if actual != listed[rel]:
            raise PublishError(f"{folder / rel}: altered (sha256 {actual[:12]}..., the manifest says "
                               f"{listed[rel][:12]}...)")
    extra = sorted(rel for p in folder.rglob("*") if p.is_file()
                   for rel in [str(p.relative_to(folder))] if rel != MANIFEST and rel not in listed)
    if extra:
        raise PublishError(f"{folder / extra[0]}: not in the manifest (a file the release did not publish)")
    return manifest


def compress(path: Path, thin: int = 1) -> Path:
    """``path`` (a CSV or JSON file) as ``path.xz``, byte for byte reproducible (xz stores no time stamp);
    with ``thin`` > 1 (a CSV) only the header, every ``thin``-th row and the last row are kept."""
    lines = path.read_bytes().splitlines(keepends=True)
    if thin > 1 and len(lines) > 2:
        body = lines[1:]
        lines = [lines[0]] + [r for i, r in enumerate(body, 1) if i % thin == 0 or i == len(body)]
    out = path.with_name(path.name + PACKED)
    out.write_bytes(lzma.compress(b"".join(lines), format=lzma.FORMAT_XZ))
    path.unlink()
    return out


def unpacked(path: Path) -> bytes:
    """The bytes of the pipeline file that a stored (compressed) file holds."""
    return lzma.decompress(path.read_bytes(), format=lzma.FORMAT_XZ)


def expand(folder: Path) -> None:
    """Every compressed result under ``folder`` back to its CSV or JSON file (what the report reads)."""
    for p in sorted(folder.glob(f"{RESULTS}/**/*{PACKED}")):
        rel = str(p.relative_to(folder))
        if original(rel) == rel:
            continue  # a file published compressed in its own right, not one compressed here
        p.with_name(p.name[:-len(PACKED)]).write_bytes(unpacked(p))
        p.unlink()


def stored(rel: str) -> str:
    """Where a pipeline file lies in a published folder (results' CSV and JSON files compressed)."""
    return rel + PACKED if rel.startswith(RESULTS + "/") and rel.endswith(COMPRESSED) else rel


def original(name: str) -> str:
    """The pipeline file that a published folder's ``name`` holds (the inverse of ``stored``)."""
    base = name[:-len(PACKED)]
    return base if name.endswith(PACKED) and stored(base) == name else name


def rebuild(folder: str | Path, out_html: str | Path) -> Path:
    """The report rebuilt from a published folder (checked first) as ``out_html``, with its figures
    (``figures/``) and the verdict table (``verdicts.csv``) beside it; returns the report's path."""
    folder, out_html = Path(folder), Path(out_html)
    out_dir = out_html.parent
    manifest = verify(folder)
    full = config.load(folder / PARAMS)
    with tempfile.TemporaryDirectory(prefix="rebuild-") as tmp:
        work = Path(tmp) / "release"
        shutil.copytree(folder, work)
        expand(work)
        for stale in [paths.REPORT, VERDICTS]:
            (work / stale).unlink(missing_ok=True)
        shutil.rmtree(work / Path(paths.FIGURE).parent, ignore_errors=True)
        rows = _build_report(full, full, manifest["units"]["pending"], work, summarize_first=False,
                             trained_commit=manifest["trained_commit"])
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(work / paths.REPORT, out_html)
        figures = out_dir / "figures"
        shutil.rmtree(figures, ignore_errors=True)
        shutil.copytree(work / Path(paths.FIGURE).parent, figures)
        write_text(str(out_dir / VERDICTS), verdict_csv(rows))
    return out_html


def folder_size(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


# ---------------------------------------------------------------------------- the README's first screen
README_START = "<!-- results:start (adjoint-meta readme --from {folder}; generated, do not edit) -->"
README_END = "<!-- results:end -->"


def _short(commit: str) -> str:
    return commit[:12] if commit != UNKNOWN_COMMIT else commit


def _md(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def readme_block(folder: str | Path) -> str:
    """The README's results block, from a published release: the verdict table, our nRMSE beside the
    paper's for A-MAML in Tables 1-2, and whether meta-learning beats the best non-meta baseline."""
    import pandas as pd

    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        return "\n".join([README_START.format(folder=folder.as_posix()),
                          "No part of the release has been published yet.",
                          README_END])
    manifest = json.loads((folder / MANIFEST).read_text())
    verdicts = pd.read_csv(folder / VERDICTS, keep_default_na=False)
    done, pending = manifest["units"]["done"], manifest["units"]["pending"]
    lines = [README_START.format(folder=folder.as_posix()),
             f"Release **{manifest['release']}**: trained at commit `{_short(manifest['trained_commit'])}`"
             + (f" (tag `{manifest['tag']}`)" if manifest.get("tag") else "")
             + f"; {len(done)} of {len(done) + len(pending)} parts published ({manifest['published'][:10]})"
             + (f"; still running: {', '.join(pending)}." if pending else "."),
             "", "| the paper's claim | verdict | deciding numbers |", "|---|---|---|"]
    lines += [f"| {_md(r.claim)} | **{_md(r.verdict)}** | {_md(r.evidence) or '–'} |" for r in verdicts.itertuples()]
    tables = {p.stem: pd.read_csv(p) for p in sorted((folder / Path(paths.TABLE).parent).glob("*.csv"))
              if p.name != Path(paths.NRMSE_DEFINITIONS).name}
    # a table is one experiment's (its file's stem), one row per cell and estimator
    ours = {name: t[(t["estimator"] == "amaml") & t["paper_mean"].notna()] for name, t in tables.items()
            if "paper_mean" in t}
    ours = {name: t for name, t in ours.items() if not t.empty}
    if ours:
        lines += ["", "A-MAML's test nRMSE after K fine-tuning steps, ours (mean over seeds and test tasks) beside the "
                  "paper's:", "", "| experiment | dataset | setting | ours | paper | ours / paper |",
                  "|---|---|---|---|---|---|"]
        for name, t in ours.items():
            for r in t.itertuples():
                lines.append(f"| {name} | {r.dataset} | {r.setting} | {r.nrmse_mean:.3f} | "
                             f"{r.paper_mean:.3f} | {r.nrmse_mean / r.paper_mean:.2f} |")
    from adjoint_meta.report import loading

    with_paper, others, _ = loading.experiment_groups(config.load(folder / PARAMS))
    base = baseline_lines({e: tables[e] for e in with_paper + others if e in tables})
    if base:
        lines += ["", "Does meta-learning beat the best non-meta baseline (the lowest nRMSE of the estimators "
                  "against the lowest of the baselines, per cell)?", ""] + [f"- {b}" for b in base]
    lines.append(README_END)
    return "\n".join(lines)


def baseline_lines(tables: dict) -> list[str]:
    """Per experiment with baselines: in how many cells the best estimator beats the best baseline, and by
    how much relative to the baseline (median over the cells)."""
    import numpy as np

    from adjoint_meta.estimators.base import BASELINE

    out = []
    for name, t in tables.items():
        if "role" not in t or not (t["role"] == BASELINE).any():
            continue
        gains = []
        for _, c in t.groupby(["dataset", "setting"], sort=False):
            est, base = c[c["role"] != BASELINE], c[c["role"] == BASELINE]
            if not est.empty and not base.empty:
                b = base["nrmse_mean"].min()
                gains.append((b - est["nrmse_mean"].min()) / b)
        if gains:
            g = np.array(gains)
            out.append(f"{name}: in {int((g > 0).sum())} of {len(g)} cells; median {np.median(g):+.1%} "
                       f"(range {g.min():+.1%} to {g.max():+.1%}; positive: meta-learning lower)")
    return out


def write_readme(folder: str | Path, readme: str | Path = "README.md") -> bool:
    """Replace the README's results block with the one of ``folder``; True when the file changed."""
    readme = Path(readme)
    text = readme.read_text()
    start, end = _block_span(text, readme)
    new = text[:start] + readme_block(folder) + text[end:]
    if new != text:
        write_text(str(readme), new)
    return new != text


def _block_span(text: str, readme: Path) -> tuple[int, int]:
    head = README_START.split("{folder}")[0]
    start = text.find(head)
    end = text.find(README_END, start)
    if start < 0 or end < 0:
        raise PublishError(f"{readme}: no results block (a line starting {head!r} and one {README_END!r})")
    return start, end + len(README_END)


def readme_current(readme: str | Path = "README.md") -> str:
    """The results block the README holds now."""
    readme = Path(readme)
    text = readme.read_text()
    start, end = _block_span(text, readme)
    return text[start:end]
