"""The report draws nothing from an empty or missing input, and its tables hold what they promise."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import TEST_PARAMS, copy_run
from markupsafe import escape

from adjoint_meta import config, paths, profile, report, summarize, verdicts
from adjoint_meta.report import candidates, claims, discussion, figures, tables
from adjoint_meta.results import MissingResultError, need

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def test_figures_refuse_empty_inputs():
    empty = pd.DataFrame(columns=["dataset", "setting", "estimator", "step", "nrmse_mean", "nrmse_std"])
    with pytest.raises(MissingResultError, match="refusing to draw an empty figure"):
        figures.curves(empty, "table1", {}, 50)
    prof = pd.DataFrame({"profile": ["fig34"], "variable": ["steps"], "estimator": ["maml"], "value": [1],
                         "ms_median": [1.0], "plain_ms": [0.5], "peak_bytes": [1e6]})
    with pytest.raises(MissingResultError):
        figures.profile(prof, "fig34", "layers", "time", {}, 24)
    with pytest.raises(MissingResultError):
        figures.accuracy(pd.DataFrame(columns=["study"]), "synthetic", {})


def test_missing_result_names_the_file(tmp_path):
    with pytest.raises(MissingResultError, match="seed0.json: expected result is missing"):
        need(tmp_path / "results" / "eval" / "seed0.json")


def _table() -> pd.DataFrame:
    rows = []
    for est, mean in (("amaml", 0.05), ("maml", 0.07)):
        rows.append({"dataset": "ml100k", "setting": "10shot-15val", "estimator": est, "label": est.upper(),
                     "from": "table1", "nrmse_mean": mean, "nrmse_std": 0.01, "nrmse_seed_std": math.nan,
                     "rmse_mean": 0.9, "rmse_std": 0.1, "units": "rating", "n_test_tasks": 100, "report_step": 50,
                     "inner_steps_trained": 50, "seeds": 1, "paper_mean": 0.053, "paper_std": 0.005,
                     "diff_vs_paper": mean - 0.053, "reference": "amaml",
                     "p_value": math.nan if est == "amaml" else 0.002, "diff": 0.0 if est == "amaml" else 0.02,
                     "ci_low": math.nan if est == "amaml" else 0.008, "ci_high": math.nan if est == "amaml" else 0.032,
                     "median_diff": 0.0 if est == "amaml" else 0.02, "ref_better_share": 0.7})
    return pd.DataFrame(rows)


def test_results_table_shows_ours_paper_difference_and_test():
    html = tables.results(_table(), "table1")
    assert "<b>0.0500 ± 0.0100</b>" in html  # the best of the column in bold
    assert "paper 0.053 ± 0.005; ours − paper -0.003" in html
    assert "vs amaml: p = 0.002" in html and "RMSE 0.900 (rating)" in html


def _comparison(diff: float, group: str = "table1", seed_shift: tuple = (0.0, 0.0, 0.0)) -> verdicts.Comparison:
    """A-MAML against another estimator over 3 seeds × 40 tasks: ``diff`` ahead, seeds moved by ``seed_shift``."""
    rng = np.random.default_rng(0)
    ref = 0.05 + 0.01 * rng.random((3, 40))
    other = ref + diff + np.array(seed_shift)[:, None] + rng.normal(0, 0.002, (3, 40))
    return verdicts.Comparison("c", "A-MAML", "MAML", verdicts.paired_interval(ref, other), group)


def test_discussion_counts_wins_and_the_verdicts_test():
    """The discussion's count of better and worse is the verdicts' (over seeds and tasks, Holm over the claim):
    a lead that one seed's luck makes is not counted, although every task shows it on the seeds' average."""
    comps = [_comparison(0.02), _comparison(0.0, seed_shift=(0.03, 0.0, -0.01)), _comparison(0.02, "table2")]
    [text] = discussion.tables({"table1": _table()}, comps)
    assert "among the paper's estimators, amaml has the lowest test nRMSE in 1 of 1 cells" in text
    assert "decisive after Holm over the claim's 3 comparisons), A-MAML is better than another of them in 1 of 2 " \
           "comparisons and worse in 0" in text
    assert "Wilcoxon" not in text
    [text] = discussion.tables({"table1": _table()}, [])
    assert "verdicts' test" not in text


def _variants_table(means: dict[str, float], labels: dict[str, str] | None = None) -> pd.DataFrame:
    """One cell of Table 1 (Jester 10shot-15val: the paper prints A-MAML 0.074, MAML 0.120, FOMAML 0.292,
    Reptile 0.270) with the given estimators (configuration name = kind) and the random-init baseline."""
    rows = [{"dataset": "jester", "setting": "10shot-15val", "estimator": k, "kind": k,
             "label": (labels or {}).get(k, k.upper()), "role": "estimator", "nrmse_mean": m} for k, m in means.items()]
    rows.append({"dataset": "jester", "setting": "10shot-15val", "estimator": "random_init", "kind": "random_init",
                 "label": "Random", "role": "baseline", "nrmse_mean": 0.001})
    return pd.DataFrame(rows)


def test_discussion_says_which_maml_resembles_the_papers():
    means = {"amaml": 0.08, "maml": 0.24, "maml_fo": 0.13, "maml_adjoint": 0.07, "fomaml": 0.30, "reptile": 0.28}
    [text] = discussion.maml_variants({"table1": _variants_table(means, {"maml_fo": HOSTILE})}, "Tables 1–2", True)
    assert "<script" not in text and ESCAPED in text
    # ratios to the paper's MAML (0.120) and to our A-MAML; the paper's order (MAML above A-MAML, below
    # FOMAML and Reptile) with each variant in MAML's place
    # one row per variant: ratio to the paper's MAML (0.120) over its cells, to our A-MAML, and the cells where
    # the paper's order (MAML above A-MAML, below FOMAML and Reptile) holds with the variant in MAML's place
    assert _rows_of(text) == [
        ["MAML (<code>maml</code>)", "2×<br><small>over 1 cells</small>", "3×", "1 of 1", "1 of 1", "1 of 1"],
        [f"{ESCAPED} (<code>maml_fo</code>)", "1.1×<br><small>over 1 cells</small>", "1.6×", "1 of 1", "1 of 1",
         "1 of 1"],
        ["MAML_ADJOINT (<code>maml_adjoint</code>)", "0.58×<br><small>over 1 cells</small>", "0.88×", "0 of 1",
         "1 of 1", "1 of 1"]]
    assert "<th>A-MAML</th><th>FOMAML</th><th>Reptile</th>" in text
    assert f"Closest to the paper's MAML values: {ESCAPED} (median 1.1×), within 1.5×." in text
    assert text.index("Closest to") < text.index("<table>")  # the conclusion before the numbers
    # the baseline's tiny error never enters; without a variant there is no paragraph
    assert discussion.maml_variants({"table1": _variants_table({"amaml": 0.1, "fomaml": 0.2})}, "T", True) == []
    # Figure 2: no paper values (no such column); the paper's stated order is the reference
    [fig2] = discussion.maml_variants({"fig2_50shot": _variants_table({"amaml": 0.1, "maml_fo": 0.2, "fomaml": 0.15})},
                                      "Figure 2", False)
    assert "÷ the paper's MAML" not in fig2 and "÷ the paper's MAML" in text
    assert _rows_of(fig2) == [["MAML_FO (<code>maml_fo</code>)", "2×", "1 of 1", "0 of 1"]]
    assert "<th>A-MAML</th><th>FOMAML</th></tr>" in fig2
    assert "The paper prints no values here" in fig2


def _rows_of(fragment: str) -> list[list[str]]:
    """The data cells of each body row of the fragment's tables (header rows have none)."""
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", str(fragment))]
    return [r for r in rows if r]


def test_discussion_of_curves_and_ablation_names_the_reference_and_the_largest_change():
    t = _table()
    [curve] = discussion.curves({"fig2": t, "no_reference": t.drop(columns="reference")}, ["fig2", "no_reference"])
    assert "lowest nRMSE is AMAML's (0.0500); amaml ranks 1 of 2 (0.0500)" in curve
    ablation = t.assign(estimator=["amaml", "amaml_sgd"], label=["A-MAML", "outer SGD"])
    [text] = discussion.ablation({"ablation": ablation}, ["ablation", "missing"])
    assert "starting from the paper's A-MAML (nRMSE 0.0500)" in text
    assert "outer SGD: +0.02 [+0.008, +0.032]" in text and "<i>outer SGD</i> and is decisive" in text
    weak = ablation.assign(p_value=[math.nan, 0.3], ci_low=[math.nan, -0.01])
    [text] = discussion.ablation({"ablation": weak}, ["ablation"])
    assert "outer SGD: +0.02 [-0.01, +0.032] (not decisive)" in text and "but it is not decisive" in text


def test_the_tables_paired_test_is_the_verdicts_test():
    """The tables' p-values and intervals come from the verdicts' crossed interval, so a lead that one lucky
    seed carries is not called decisive there either; a seedless baseline is set against every seed."""
    rng = np.random.default_rng(0)
    ref = rng.random((3, 50))
    steady = summarize.paired_test(ref, ref + 0.1)
    assert steady["p_value"] < 1e-6 and steady["ci_low"] > 0 and steady["diff"] == pytest.approx(0.1)
    assert summarize.paired_test(ref, ref)["p_value"] == 1.0
    lucky = ref + np.array([[0.3], [0.0], [0.0]]) + rng.normal(0, 0.01, (3, 50))  # one seed carries the lead
    crossed = summarize.paired_test(ref, lucky)
    expected = verdicts.paired_interval(ref, lucky)
    assert (crossed["p_value"], crossed["ci_low"], crossed["ci_high"]) == (expected.p_tail, expected.lo, expected.hi)
    assert crossed["p_value"] > 0.05 and crossed["ci_low"] < 0 < crossed["ci_high"]
    baseline = ref.mean(0) + 0.05
    against = summarize.paired_test(ref, baseline[None, :])
    assert against == summarize.paired_test(ref, np.broadcast_to(baseline, ref.shape))
    assert against["median_diff"] == pytest.approx(0.05)


def test_several_seeds_show_the_spread_across_seeds():
    t = _table()
    t["seeds"], t["nrmse_seed_std"] = 3, 0.004
    assert "± 0.0040 across 3 seeds" in tables.results(t, "table1")


def test_memory_figure_marks_where_unrolled_maml_reaches_the_cap():
    steps = [10, 20, 40]
    rows = [dict(profile="fig34", variable="steps", estimator=e, kind=k, value=K, ms_median=1.0, plain_ms=0.5,
                 peak_bytes=b + K * per_step)
            for e, k, b, per_step in (("maml", "maml", 1e6, 2 ** 30 / 10), ("maml_adjoint", "maml_adjoint", 1e6, 1e3))
            for K in steps]
    frame = pd.DataFrame(rows)
    k_cap = discussion.memory_cap_steps(frame[frame["estimator"] == "maml"], 24 * 2 ** 30)
    assert k_cap == pytest.approx(240 - 1e6 / (2 ** 30 / 10))  # 24 GB at 0.1 GB per step
    fig = figures.profile(frame, "fig34", "steps", "memory", {"maml": "MAML"}, 24)
    marks = [line for line in fig.axes[0].get_lines() if "reaches the cap" in line.get_label()]
    assert len(marks) == 1 and marks[0].get_xdata()[0] == pytest.approx(k_cap)
    assert math.isinf(discussion.memory_cap_steps(frame[frame["estimator"] == "maml"].assign(peak_bytes=1e6), 1e9))


def test_profile_figure_gives_each_of_a_dozen_estimators_its_own_colour_and_keeps_the_legend_off_the_curves():
    names = [f"est{i:02d}" for i in range(13)]  # tab10 alone would give the 11th the 1st's colour
    frame = pd.DataFrame([dict(profile="fig34", variable="steps", estimator=e, kind="other", value=K, ms_median=1.0 + i,
                               plain_ms=0.5, peak_bytes=1e6 * (1 + i), below_floor=False)
                          for i, e in enumerate(names) for K in (1, 10, 100)])
    for metric in ("time", "memory"):
        fig = figures.profile(frame, "fig34", "steps", metric, {}, 24)
        ax = fig.axes[0]
        lines = [line for line in ax.get_lines() if line.get_label() in names]
        assert len({line.get_color() if isinstance(line.get_color(), str) else tuple(line.get_color())
                    for line in lines}) == len(names)
        fig.canvas.draw()
        legend, axes_box = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert legend.x0 >= axes_box.x1, "the legend lies over the axes"


def test_fragments_escape_labels_from_the_parameters():
    """Labels reach the tables and the discussion as text: escaped, never a tag."""
    t = _table().assign(label=HOSTILE)
    prof = _profile_rows().query("estimator == 'tbptt'").assign(estimator="maml")
    acc = pd.DataFrame([dict(study="synthetic", estimator="amaml", steps=2, rel_error=0.1, cosine=0.9)])
    fragments = [tables.results(t, "table1"), *discussion.curves({"fig2": t}, ["fig2"]),
                 *discussion.ablation({"ab": t.assign(estimator=["amaml", "amaml_sgd"])}, ["ab"]),
                 tables.profile(prof, "fig34", "steps", {"maml": HOSTILE}),
                 *discussion.profiles(prof.assign(estimator=HOSTILE), {"profiles": {"fig34": {"memory_cap_gb": 24}}}),
                 tables.accuracy(acc, "synthetic", {"amaml": HOSTILE})]
    for fragment in fragments:
        assert "<script" not in fragment and ESCAPED in fragment, fragment


# the only tags the report writes itself
REPORT_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "code", "ul", "li", "b", "i",
               "table", "tr", "th", "td", "br", "small", "figure", "img", "figcaption", "details", "summary", "pre",
               "a"}


@pytest.mark.pipeline
def test_no_tag_from_the_parameters_survives_in_the_report(snakemake_run, tmp_path):
    """Every estimator labelled with a script (and quotes that would end an attribute): the rebuilt
    report holds only its own tags, and the labels as escaped text."""
    run = copy_run(snakemake_run, tmp_path / "run")
    doc = yaml.safe_load((run / "params.yaml").read_text())
    for i, cfg in enumerate(doc["estimators"].values()):
        cfg["label"] = HOSTILE + ("'\"><img src=x onerror=alert(2)>" if i % 2 else "")
    (run / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    params = config.load(run / "params.yaml")
    summarize.run(params, root=str(run))
    report.run(params, str(run / paths.REPORT), root=str(run))
    html = (run / paths.REPORT).read_text()
    assert set(re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", html)) <= REPORT_TAGS
    imgs = re.findall(r"<img[^>]*>", html)
    assert imgs and all(re.fullmatch(r"<img alt='[^'<>]*' src='data:image/png;base64,[A-Za-z0-9+/=]+'>", i)
                        for i in imgs)
    assert "onerror" not in html.replace("onerror=alert(2)&gt;", "")
    assert f"<td class=l>{ESCAPED}" in html  # tables
    assert re.search(r"<li><b>fig2_50shot</b>, [^<]*" + re.escape(ESCAPED), html)  # discussion
    assert html.count(ESCAPED) >= len(params["estimators"])


def _profile_rows() -> pd.DataFrame:
    """A profile's rows as profile.run writes them: tbptt timed below its floor at K = 8 (flagged),
    MAML-1 legitimately below it (one step against eight)."""
    rows = []
    for est, kind, K, ms, plain in (("tbptt", "tbptt", 4, 6.0, 2.0), ("tbptt", "tbptt", 8, 2.0, 4.0),
                                    ("maml1", "maml1", 4, 1.2, 2.0), ("maml1", "maml1", 8, 1.0, 4.0)):
        rows.append(dict(profile="fig34", estimator=est, kind=kind, variable="steps", value=K, steps=K, layers=2,
                         units=8, theta_meta_steps=0, ms_median=ms, plain_ms=plain, ratio=ms / plain, repeats=3,
                         warmup_rounds=2, plain_repeats=6, peak_bytes=2e6 * K, memory_method="rss-highwater",
                         device="cpu", nfe=K if kind == "tbptt" else 1, hvp=2 if kind == "tbptt" else 0))
    frame = pd.DataFrame(rows)
    return frame.assign(below_floor=profile.below_floor(frame))


def test_the_commit_is_marked_only_when_the_package_code_differs(tmp_path, monkeypatch):
    """A report built while its results, a published folder or the README are being rewritten is built by
    the commit's code; an edit under src/ is not."""
    import subprocess

    from adjoint_meta.report import provenance

    for rel in ("src/pkg.py", "published/r/verdicts.csv", "README.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("a\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path / "published")
    (tmp_path / "published/r/verdicts.csv").unlink()
    (tmp_path / "README.md").write_text("b\n")
    assert not provenance.git_commit().endswith("(with uncommitted changes)")
    (tmp_path / "src/pkg.py").write_text("b\n")
    assert provenance.git_commit().endswith("(with uncommitted changes)")


def test_each_flagged_measurement_is_counted_once():
    """The fixed point repeats in every sweep at the initial theta (one measurement); the sweep at the
    trained theta measures again at the same K (another one)."""
    frame = _profile_rows()
    flagged = frame[frame["below_floor"]]
    again = pd.concat([frame, flagged.assign(variable="layers", value=2),
                       flagged.assign(variable="steps_trained", theta_meta_steps=300)], ignore_index=True)
    text = discussion.below_floor(again)
    assert "<b>2 time(s) came out below plain inner training" in text
    assert "tbptt at steps = 8; tbptt at layers = 2; tbptt at steps_trained = 8." in text


def test_times_below_the_floor_are_flagged_not_quoted():
    frame = _profile_rows()
    assert frame["below_floor"].tolist() == [False, True, False, False]
    html = tables.profile(frame, "fig34", "steps", {})
    assert html.count("not a valid time") == 1
    assert "2 ms, below plain training's 4 ms although it runs at least K = 8 steps" in html
    assert "×0.50 plain;" not in html and "×0.25 plain;" in html  # MAML-1's one step is a result
    [text] = discussion.profiles(frame, {"profiles": {"fig34": {"memory_cap_gb": 24}}})
    # one row per estimator: MB per 100 inner steps, the largest K, MB, ms and × plain training there; tbptt's
    # time there is flagged, not quoted; no unrolled MAML, so no column for the memory cap
    assert _rows_of(text) == [
        ["tbptt", "190.73", "8", "15.3", "<b>not a valid time</b><br><small>2 ms, below plain training's 4 ms"
         "</small>", "–"],
        ["maml1", "190.73", "8", "15.3", "1", "×0.2"]]
    assert "would fill" not in text
    assert "<b>1 time(s) came out below plain inner training" in text and "tbptt at steps = 8." in text
    assert "medians over 3 timed round(s) after 2 untimed one(s)" in text and "the median of its 6 calls" in text
    [clean] = discussion.profiles(frame[frame["estimator"] == "maml1"], {"profiles": {"fig34": {"memory_cap_gb": 24}}})
    assert "No estimator that runs at least K inner steps timed below plain inner training." in clean
    fig = figures.profile(frame, "fig34", "steps", "time", {}, 24)
    [marks] = [c for c in fig.axes[0].collections if "not a valid time" in c.get_label()]
    assert marks.get_offsets().tolist() == [[8.0, 2.0]]


# a definitions table without rows (the candidate-definition section has no cell to show)
NO_DEFINITIONS = pd.DataFrame(columns=["experiment", "dataset", "setting", "estimator", "definition", "ours",
                                       "paper", "ratio", "step"])


def _page(verdict_rows: list[dict]) -> str:
    """The page for the test configuration with one experiment table and the given verdict rows."""
    params = config.load(TEST_PARAMS)
    fig = {"name": "table1_curves", "b64": "AAAA", "alt": "curves", "caption": "c"}
    x = {"name": "table1", "steps": 6, "horizon": 0.06, "maml_steps": 2, "eval_steps": 10, "reference": "amaml",
         "seeds": 2, "table": tables.results(_table(), "table1"), "figure": fig}
    return report.render({
        "params": params, "verdicts": verdict_rows, "verdict_method": claims.method(), "generated": "now",
        "params_hash": "h", "commit": "c", "trained_commit": None, "pending_units": [],
        "discussion": {k: [] for k in ("tables", "curves", "maml_tables", "maml_figure2", "ablation", "baselines",
                                        "profiles", "accuracy")} |
        {"released_code": "r"},
        "experiments": {"with_paper": [x], "others": [], "ablations": []}, "profiles": [], "accuracy": [],
        "fewshot": {"fs": params["fewshot"], "steps": 3, "eval_steps": 4, "seeds": 2, "table": "", "findings": [],
                    "figure": fig | {"name": "fewshot_accuracy"}}, "learned": None,
        "datasets": [], "data_files": [], "job_times": None, "jobs": [], "jobs_hours": 0.0, "versions": {},
        "paper_source": "p", "params_json": "{}", "metrics_path": "m", "metrics_json": "{}",
        "candidates": candidates.section(NO_DEFINITIONS, [], params["evaluation"]["released_protocol"])})


def test_the_verdict_table_opens_the_report_and_every_row_has_a_verdict():
    comparisons = claims.comparison_rows([_comparison(0.02), _comparison(0.0, seed_shift=(0.03, 0.0, -0.01))])
    rows = [{"key": key, "text": c["text"], "quote": c["quote"], "rule": claims.RULES[key], "status": "open",
             "verdict": "not conclusive (would be: holds)", "evidence": "supports 1 of 1", "reasons": HOSTILE,
             "breakdown": ["table1 (K = 50): supports 1 of 1"], "detail": "", "comparisons": comparisons,
             "links": [{"href": "#exp-table1", "label": "table1"}]}
            for key, c in claims.paper()["claims"].items()]
    html = _page(rows)
    check_verdict_table(html)
    assert html.count(ESCAPED) == 2 * len(rows) and "<script" not in html  # the table and the discussion
    assert "<h3 id='exp-table1'>table1</h3>" in html and "from one training seed" not in html
    assert "Satterthwaite" in html and all(str(escape(verdicts.RULES[k])) in html for k in (verdicts.HOLDS, "decisive"))
    assert "<br>table1 (K = 50): supports 1 of 1</small>" in html
    luck = comparisons[1]  # one seed ahead: three per-seed means, the seeds' share near all of the variance
    assert len(luck["seed_means"].split(", ")) == 3 and int(luck["seed_share"][:-1]) > 90
    assert all(f"<td>{r['seed_means']}</td><td>{r['seed_share']}</td>\n<td>{r['mdd']}</td>" in html
               for r in comparisons)


def check_verdict_table(html: str, n_seeds: int = 3) -> None:
    """The verdict table comes right after the title and before any experiment table; each claim of
    paper.yaml has a row with a verdict, the paper's words and a link into the report; each comparison lists
    one mean difference per training seed (``n_seeds`` of them)."""
    assert re.search(r"</h1>\s*<table class=verdicts id=verdicts>", html), "the verdict table must follow the title"
    table = html[html.index("<table class=verdicts"):html.index("</table>", html.index("<table class=verdicts"))]
    assert html.index("<table class=verdicts") < html.index("<h3 id='exp-")
    rows = re.findall(r"<tr class=(\w+) id='claim-(\w+)'>(.*?)</tr>", table, flags=re.S)
    assert [key for _, key, _ in rows] == list(claims.paper()["claims"])
    allowed = (verdicts.HOLDS, verdicts.IN_PART, verdicts.NOT_HOLD, verdicts.NOT_SHOWN, verdicts.UNTESTABLE,
               verdicts.NOT_CONCLUSIVE)
    for _, key, row in rows:
        [verdict] = re.findall(r"<td class='l v'><b>([^<]+)</b>", row)
        assert verdict.startswith(allowed), (key, verdict)
        assert "<i>“" in row and re.search(r"<a href='#[\w-]+'>", row), key
        for href in re.findall(r"<a href='#([\w-]+)'>", row):
            assert f"id='{href}'" in html or f"id={href}>" in html, f"{key}: link to #{href} has no target"
    # every claim judged on comparisons lists them: per-seed mean differences, the seeds' share of the variance,
    # the smallest detectable difference
    for key in ("tables", "figure2"):
        block = html[html.index(f"<details class=small id='comparisons-{key}'>"):]
        block = block[:block.index("</details>")]
        assert "<th>per seed</th><th>seeds' share</th><th>smallest detectable</th>" in block, key
        values = re.findall(r"<td>([^<]*)</td><td>(\d+%|–)</td>\s*<td>(\d[\d.]*%|–)</td></tr>", block)
        assert values and all(len(seeds.split(", ")) == n_seeds for seeds, _, _ in values), (key, values)


def test_learned_step_sizes_are_set_against_their_fixed_counterpart(tmp_path):
    """Made-up per-task curves: the learned scalar alpha fine-tunes to a lower error on every task and
    seed than the fixed-alpha reference trained in another experiment, the per-layer one to the same
    error; A-MAML's learned alpha is set against A-MAML of its own experiment, and one seed is not
    conclusive."""
    from adjoint_meta.report import rates

    params = {"seed": 0, "meta": {"seeds": [0, 1, 2]}, "preset": "full",
              "estimators": {"adj": {"kind": "maml_adjoint"}, "adj_s": {"kind": "maml_adjoint", "learn_rate": "scalar"},
                             "adj_l": {"kind": "maml_adjoint", "learn_rate": "layer", "label": "per layer"},
                             "adj_es": {"kind": "maml_adjoint", "learn_rate": "scalar", "rate_method": "es"},
                             "am": {"kind": "amaml"}, "am_s": {"kind": "amaml", "learn_rate": "scalar"}},
              "experiments": {"base": {"datasets": ["d"], "settings": ["s"], "estimators": ["adj"], "steps": 2},
                              "rates": {"datasets": ["d"], "settings": ["s"], "estimators": ["adj_s", "adj_l", "adj_es",
                                                                                             "am", "am_s"],
                                        "steps": 2, "paired_test": {"estimator": "adj", "experiment": "base"}}}}
    rng = np.random.default_rng(0)
    base = 0.5 + 0.1 * rng.random(20)
    level = {("base", "adj"): 0.0, ("rates", "adj_s"): -0.05, ("rates", "adj_l"): 0.0, ("rates", "adj_es"): 0.05,
             ("rates", "am"): 0.0, ("rates", "am_s"): 0.0}
    for (e, est), shift in level.items():
        for seed in (0, 1, 2):
            path = tmp_path / paths.EVAL_CURVE.format(experiment=e, dataset="d", setting="s", estimator=est, seed=seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = [(step, t, base[t] + (shift if step == 2 else 0.0) + 1e-4 * seed) for step in (0, 2)
                    for t in range(20)]
            pd.DataFrame(rows, columns=["step", "task", "nrmse"]).to_csv(path, index=False)
    found = rates.comparisons(params, tmp_path)
    comps = {(r["estimator"], r["fixed_name"]): r for r in found}
    assert comps["adj_s", "adj"]["diff"] == pytest.approx(-0.05) and comps["adj_s", "adj"]["says"] == "lower error"
    assert comps["adj_l", "adj"]["says"] == "no difference shown" and comps["adj_l", "adj"]["label"] == "per layer"
    assert comps["am_s", "am"]["diff"] == pytest.approx(0.0)
    # selection ES: against alpha fixed and against the scalar alpha learned by gradient
    assert comps["adj_es", "adj"]["says"] == "higher error" and comps["adj_es", "adj_s"]["diff"] == pytest.approx(0.1)
    findings = rates.findings(found, "full")
    assert ("of 4 comparisons of a configuration that learns its step sizes with the same estimator at alpha fixed, 1 "
            "show a lower test error with the learned step sizes, 1 a higher one, and in 2 the interval holds zero"
            in findings[0])
    assert "adj_es against adj_s: +0.1000" in findings[1] and findings[1].endswith("higher error.")
    params["meta"]["seeds"] = [0]
    assert {r["says"] for r in rates.comparisons(params, tmp_path)} == {"not conclusive (1 seed)"}
