"""The whole pipeline on the test configuration, through Snakemake and through DVC."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import TEST_PARAMS, run_tool
from test_report import check_verdict_table

from adjoint_meta import config, kinds, nrmse, paths

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def params() -> dict:
    return config.load(TEST_PARAMS)


@pytest.fixture(scope="module")
def snake(snakemake_run) -> Path:
    return snakemake_run


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def check_outputs(root: Path, params: dict) -> dict:
    """Every table cell, metric and figure the report promises is there and finite."""
    html = (root / paths.REPORT).read_text()
    assert not re.search(r"<script|<link|https?://[^\s\"'<]*\.(js|css)", html), "the report must open offline"
    for name in paths.figure_names(params):
        png = root / paths.FIGURE.format(name=name)
        assert png.stat().st_size > 2000, f"figure {name} missing or empty"
    assert html.count("data:image/png;base64,") == len(paths.figure_names(params))
    cells = re.findall(r"<td[^>]*>(.*?)</td>", html, flags=re.S)
    bad = [c for c in cells if re.search(r"\b(nan|inf)\b", c, flags=re.I)]
    assert cells and not bad, f"non-finite table cells: {bad[:5]}"
    for section in ("Where we agree with the paper", "Definitions and settings",
                    "What the paper's nRMSE could have been", "Tasks per dataset",
                    "Provenance", "Wall time of every job", "Software", "Effective parameters",
                    "Few-shot classification", "Learned inner step sizes"):
        assert re.search(rf"<h[23]>{re.escape(section)}", html), f"report section {section!r} missing"
    check_verdict_table(html, n_seeds=len(params["meta"]["seeds"]))
    fewshot = pd.read_csv(root / paths.FEWSHOT_TABLE)  # every estimator of the experiment and ProtoNet
    assert list(fewshot["method"]) == [*params["fewshot"]["estimators"], "protonet"]
    assert fewshot[["accuracy_step0", "accuracy_K", "accuracy_final"]].stack().between(0, 1).all()
    rates = pd.read_csv(root / paths.LEARNED_RATES)  # every job that learns step sizes, over its meta-steps
    learners = {n for n, c in params["estimators"].items() if c.get("learn_rate")}
    trained = {e for x in paths.rate_experiments(params) for e in params["experiments"][x]["estimators"]}
    assert set(rates["estimator"]) == learners & trained
    assert set(rates["experiment"]) == set(paths.rate_experiments(params))
    assert (rates["value"] > 0).all() and set(rates["seed"]) == set(params["meta"]["seeds"])
    section = html.split("Learned inner step sizes (beyond the paper)")[1]
    assert all(params["estimators"][e]["label"] in section for e in set(rates["estimator"]))
    seeds = ", ".join(map(str, params["meta"]["seeds"]))
    assert f"seeds\n{seeds} (master seed {params['seed']})" in html, "the report states the seeds"
    for ds in params["datasets"]:
        table_sha = json.loads((root / paths.TASKS_SUMMARY.format(dataset=ds)).read_text())["table_sha256"]
        assert table_sha in html, f"provenance lacks the checksum of the {ds} task table"
    metrics = json.loads((root / paths.METRICS).read_text())
    for c in config.cells(params):
        entry = metrics[c.experiment][c.dataset][c.setting][c.estimator]
        assert all(_finite(entry[k]) for k in ("nrmse_mean", "nrmse_std", "rmse_mean")) and entry["nrmse_mean"] > 0
        ev = json.loads((root / paths.EVAL.format(**c.as_dict())).read_text())
        assert len(ev["nrmse"]["per_task"]) == ev["n_test_tasks"] and all(map(_finite, ev["nrmse"]["per_task"]))
    with_inits = set()
    for exp, spec in params["experiments"].items():
        table = pd.read_csv(root / paths.TABLE.format(experiment=exp))
        assert set(spec["estimators"]) <= set(table["estimator"])
        # every baseline in every cell: the initialization baselines (of the experiment, or for an
        # ablation of its reference's experiment) and, on rating data, the predictor baselines
        src = params["experiments"][(spec.get("paired_test") or {}).get("experiment", exp)]
        inits = {e for e in src["estimators"] if params["estimators"][e]["kind"] in kinds.INITIALIZATIONS}
        if inits:
            with_inits |= {params["datasets"][d]["source"] == "synthetic" for d in spec["datasets"]}
        for (ds, st), cell in table.groupby(["dataset", "setting"]):
            want = inits | (set(kinds.PREDICTORS) if params["datasets"][ds]["source"] != "synthetic" else set())
            base = cell[cell["role"] == kinds.BASELINE]
            assert set(base["estimator"]) == want, (exp, ds, st)
            assert (cell[cell["role"] == kinds.ESTIMATOR]["estimator"].map(
                lambda e: params["estimators"][e]["kind"]).isin(kinds.META_LEARNERS)).all()
        assert "Baselines, no meta-learning" in html
        assert table[["nrmse_mean", "nrmse_std", "rmse_mean"]].notna().all().all()
        assert f"<h3 id='exp-{exp}'>{exp}</h3>" in html
        pt = spec.get("paired_test")
        if pt:
            others = table[table["estimator"] != pt["estimator"]]
            assert others["p_value"].between(0, 1).all(), f"{exp}: paired tests missing"
    assert with_inits == {True, False}, "the configuration should exercise the baselines on real and synthetic data"
    definitions = pd.read_csv(root / paths.NRMSE_DEFINITIONS)  # every candidate nRMSE of every cell, finite
    cells = {(c.experiment, c.dataset, c.setting, c.estimator) for c in config.cells(params)}
    rated = [(e, d, s) for e, x in params["experiments"].items() for d in x["datasets"] for s in x["settings"]
             if params["datasets"][d]["source"] != "synthetic"]  # predictor baselines: no released protocol
    assert len(definitions) == (len(cells) * len(nrmse.DEFINITIONS)
                                + len(rated) * len(kinds.PREDICTORS) * (len(nrmse.DEFINITIONS) - 1))
    assert definitions["ours"].notna().all() and (definitions["ours"] > 0).all()
    profiles = pd.read_csv(root / paths.PROFILES)
    for name, prof in params["profiles"].items():
        for var, values in prof["sweep"].items():
            sub = profiles[(profiles["profile"] == name) & (profiles["variable"] == var)]
            assert len(sub) == len(values) * len(prof["estimators"])
            assert (sub[["ms_median", "plain_ms", "ratio"]] > 0).all().all() and sub["peak_bytes"].notna().all()
    accuracy = pd.read_csv(root / paths.ACCURACY_TABLE)
    for name, study in params["accuracy"].items():
        sub = accuracy[accuracy["study"] == name]
        assert len(sub) == len(study["estimators"]) * len(study["steps"]) * study["batches"]
        assert sub[["rel_error", "cosine"]].notna().all().all()
    return metrics


def test_snakemake_builds_the_report(snake, params):
    check_outputs(snake, params)
    for c in config.cells(params):  # a log per job, with progress lines
        log = (snake / paths.LOG.format(step="train", name=paths.cell_name(c.as_dict()))).read_text()
        if params["estimators"][c.estimator]["kind"] == "random_init":  # no outer updates
            assert "meta-step 0/0: no outer updates" in log
            continue
        assert re.search(r"meta-step \d+/\d+ +query loss [\d.e+-]+ +elapsed", log)
        assert (snake / paths.BENCHMARK.format(step="train", name=paths.cell_name(c.as_dict()))).exists()


def test_second_run_has_nothing_to_do(snake):
    again = run_tool(["snakemake", "--cores", "2", "--dry-run"], snake)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_snakemake_report_with_captions(snake):
    out = snake / "reports" / "snakemake-report.html"
    run_tool(["snakemake", "--cores", "1", "--report", str(out)], snake)
    text = out.read_text(errors="replace")
    assert out.stat().st_size > 10_000 and "fine-tuned on its support set" in text


def test_dvc_repro_gives_the_same_numbers(snake, dvc_run, params):
    dvc_metrics = check_outputs(dvc_run, params)
    assert dvc_metrics == json.loads((snake / paths.METRICS).read_text()), \
        "the two front ends must produce the same numbers"
    assert "up to date" in run_tool(["dvc", "status"], dvc_run).stdout
    shown = run_tool(["dvc", "metrics", "show", "--json"], dvc_run).stdout
    assert "nrmse_mean" in shown
