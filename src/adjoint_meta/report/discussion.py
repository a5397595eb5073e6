"""The report's plain-language discussion, computed from the results (nothing here is typed in
except the description of how the authors' released code differs, which comes from reading it).

One function per section of the report's discussion: a reader checking a statement of the report
finds the code that wrote it here."""
from __future__ import annotations

import numpy as np
import pandas as pd

from adjoint_meta import verdicts
from adjoint_meta.kinds import BASELINE, MAML_VARIANTS, PAPER_KINDS, SHORT_NAMES
from adjoint_meta.profile import TRAINED
from adjoint_meta.reference import paper, table_value
from adjoint_meta.report.candidates import WITHIN  # also what counts as resembling the paper's MAML
from adjoint_meta.report.claims import FIGURES_3_4, kept_bytes
from adjoint_meta.report.loading import floats
from adjoint_meta.report.markup import Markup, html, join
from adjoint_meta.units import GB, MB


def _share(k: int, n: int) -> str:
    return f"{k} of {n}"


def estimators_only(t: pd.DataFrame) -> pd.DataFrame:
    """The rows of meta-learned estimators: the baselines (``role``) never enter the paper's comparisons
    (winners, rankings, the reproduced order, the ablation's effects)."""
    return t[t["role"] != BASELINE] if "role" in t else t


def paper_estimators(t: pd.DataFrame) -> pd.DataFrame:
    """The rows of the estimators the paper compares (``kinds.PAPER_KINDS``): the winners and significance
    counts set beside the paper's are taken among them, not among the MAML variants and others we add."""
    t = estimators_only(t)
    return t[t["kind"].isin(PAPER_KINDS)] if "kind" in t else t


def tables(tables: dict[str, pd.DataFrame], comparisons: list[verdicts.Comparison]) -> list[Markup]:
    """How our Tables 1-2 compare with the paper's: winners, A-MAML against each other estimator by the verdicts'
    test (``comparisons``: the Tables 1-2 claim's, decisive after Holm over all of them), scale, ordering (the
    paper's estimators only)."""
    out = []
    strong = dict(zip(map(id, comparisons), verdicts.decisive(comparisons)))
    for name, t in tables.items():
        t = paper_estimators(t)
        if t["paper_mean"].isna().all() or "reference" not in t:
            continue
        ref = t["reference"].dropna().iloc[0]
        cells = t[["dataset", "setting"]].drop_duplicates().values.tolist()
        wins = same_order = 0
        for d, s in cells:
            c = t[(t["dataset"] == d) & (t["setting"] == s)]
            wins += int(c.loc[c["nrmse_mean"].idxmin(), "estimator"] == ref)
            known = c.dropna(subset=["paper_mean"])
            if len(known) > 1:
                same_order += int(list(known.sort_values("nrmse_mean")["estimator"]) ==
                                  list(known.sort_values("paper_mean")["estimator"]))
        ratio = (t["nrmse_mean"] / t["paper_mean"]).replace([np.inf, -np.inf], np.nan).dropna()
        mine = [x for x in comparisons if x.group == name]
        better = [strong[id(x)] for x in mine].count(verdicts.SUPPORTS)
        worse = [strong[id(x)] for x in mine].count(verdicts.CONTRADICTS)
        test = html("By the verdicts' test (over seeds and test tasks, decisive after Holm over the claim's {} "
                    "comparisons), A-MAML is better than another of them in {} comparisons and worse in {}. ",
                    len(comparisons), _share(better, len(mine)), worse) if mine else Markup("")
        out.append(
            html("<b>{}</b>: among the paper's estimators, {} has the lowest test nRMSE in {} cells (the paper: all). "
                 "{}Our nRMSE values are a median {:.2g}× the paper's (range {:.2g}–{:.2g}), and the paper's ranking "
                 "of the estimators is reproduced exactly in {} cells.", name, ref, _share(wins, len(cells)), test,
                 ratio.median(), ratio.min(), ratio.max(), _share(same_order, len(cells)))
            if len(ratio) else html("<b>{}</b>: no cell has a published value to compare with.", name))
    return out


PEERS = {k: SHORT_NAMES[k] for k in ("amaml", "fomaml", "reptile")}  # what the paper sets MAML against
FIGURE2_ORDER = {"amaml": -1, "fomaml": 1, "reptile": 1}  # sign of (peer − MAML) the paper states for Figure 2


def _first_of_kind(c: pd.DataFrame, kind: str) -> pd.Series | None:
    """The row of the first configuration of ``kind`` in one cell (as ``loading.cells`` picks it)."""
    rows = c[c["kind"] == kind]
    return rows.iloc[0] if len(rows) else None


def maml_variants(tables: dict[str, pd.DataFrame], group: str, with_paper: bool) -> list[Markup]:
    """Which of our MAMLs (``kinds.MAML_VARIANTS``, the first configuration of each kind) resembles the
    paper's "MAML", over the cells of one group of experiments (Tables 1-2: ``with_paper``; Figure 2): the
    median over the cells of its nRMSE over the paper's MAML value (``reference.table_value(..., 'maml')``,
    Tables 1-2 only) and over our A-MAML's, and in how many cells the paper's order of MAML against A-MAML,
    FOMAML and Reptile holds with the variant in MAML's place: the order of the paper's values in the cell
    (Tables 1-2), or the order the paper states (Figure 2: A-MAML below MAML, MAML below FOMAML and
    Reptile).  One fragment, a paragraph with the conclusion and a table with a row per variant, or none
    when the group has no variant."""
    stats: dict[str, dict] = {}
    for name, t in tables.items():
        if "kind" not in t:
            continue
        for (d, s), c in estimators_only(t).groupby(["dataset", "setting"], sort=False):
            rows = {k: _first_of_kind(c, k) for k in (*MAML_VARIANTS, *PEERS)}
            ours = {k: float(r["nrmse_mean"]) for k, r in rows.items() if r is not None}
            paper_maml = table_value(name, d, s, "maml") if with_paper else None
            for kind in MAML_VARIANTS:
                if kind not in ours:
                    continue
                st = stats.setdefault(kind, {"label": rows[kind]["label"], "paper": [], "amaml": [], "order": {}})
                if paper_maml and paper_maml[0] > 0:
                    st["paper"].append(ours[kind] / paper_maml[0])
                if ours.get("amaml", 0) > 0:
                    st["amaml"].append(ours[kind] / ours["amaml"])
                for peer in PEERS:
                    if peer not in ours:
                        continue
                    if with_paper:
                        theirs = table_value(name, d, s, peer)
                        if paper_maml is None or theirs is None:
                            continue
                        want = np.sign(theirs[0] - paper_maml[0])
                    else:
                        want = FIGURE2_ORDER[peer]
                    if want:
                        agree, n = st["order"].get(peer, (0, 0))
                        st["order"][peer] = (agree + int(np.sign(ours[peer] - ours[kind]) == want), n + 1)
    if not stats:
        return []
    with_values = {k: float(np.median(st["paper"])) for k, st in stats.items() if st["paper"]}
    if with_values:
        best = min(with_values, key=lambda k: abs(np.log(with_values[k])))
        close = 1 / WITHIN <= with_values[best] <= WITHIN
        verdict = html("Closest to the paper's MAML values: {} (median {:.2g}×){}.", stats[best]["label"],
                       with_values[best], f", within {WITHIN:g}×" if close else
                       f"; none of our MAMLs is within {WITHIN:g}× of them")
    else:
        verdict = html("The paper prints no values here; the order it states (A-MAML below MAML, MAML below FOMAML "
                       "and Reptile) is the reference.")
    peers = [p for p in PEERS if any(p in st["order"] for st in stats.values())]
    span = Markup(" rowspan=2") if peers else ""  # the order's columns take a second header row
    head = [html("<th{}>nRMSE ÷ the paper's MAML</th>", span) if with_values else "",
            html("<th{}>÷ our A-MAML</th>", span),
            html("<th colspan={}>cells where the paper's order holds in MAML's place, against</th>", len(peers))
            if peers else ""]
    rows = []
    for kind, st in stats.items():
        cells = [html("<td>{:.2g}×<br><small>over {} cells</small></td>", float(np.median(st["paper"])),
                      len(st["paper"])) if st["paper"] else Markup("<td>–</td>")] if with_values else []
        cells.append(html("<td>{:.2g}×</td>", float(np.median(st["amaml"]))) if st["amaml"] else Markup("<td>–</td>"))
        cells += [html("<td>{}</td>", _share(*st["order"][p])) if p in st["order"] else Markup("<td>–</td>")
                  for p in peers]
        rows.append(html("<tr><td class=l>{} (<code>{}</code>)</td>{}</tr>", st["label"], kind, join(cells)))
    table = html("<table><tr><th class=l{}>our MAML</th>{}</tr>{}{}</table>", span, join(head),
                 html("<tr>{}</tr>", join(html("<th>{}</th>", PEERS[p]) for p in peers)) if peers else "",
                 join(rows))
    return [html("<p><b>{}: which MAML is the paper's?</b> The paper's MAML ran K/10 inner steps; the implementation "
                 "it cites is commonly run first-order. {} Our MAMLs' nRMSE after K fine-tuning steps, medians over "
                 "the cells:</p>{}", group, verdict, table)]


def _referenced(tables: dict[str, pd.DataFrame], names: list[str]):
    """(name, table of its estimators, reference estimator) of each named table that has a reference."""
    for name in names:
        t = tables.get(name)
        if t is not None and "reference" in t:
            yield name, estimators_only(t), t["reference"].dropna().iloc[0]


def baselines(tables: dict[str, pd.DataFrame]) -> list[Markup]:
    """One sentence per experiment with baselines: in how many cells the best meta-learned
    initialization (lowest nRMSE of the estimators) beats the best baseline, and by how much, relative
    to the best baseline: (baseline − estimator) / baseline, median and range over the cells."""
    out = []
    for name, t in tables.items():
        if "role" not in t or not (t["role"] == BASELINE).any():
            continue
        gains, beats, cells = [], 0, 0
        for _, c in t.groupby(["dataset", "setting"], sort=False):
            est, base = c[c["role"] != BASELINE], c[c["role"] == BASELINE]
            if est.empty or base.empty:
                continue
            e, b = est.loc[est["nrmse_mean"].idxmin()], base.loc[base["nrmse_mean"].idxmin()]
            cells += 1
            beats += int(e["nrmse_mean"] < b["nrmse_mean"])
            gains.append((b["nrmse_mean"] - e["nrmse_mean"]) / b["nrmse_mean"])
        if not cells:
            continue
        g = np.array(gains)
        out.append(html("<b>{}</b>: the best meta-learned initialization beats the best baseline in {} cells; its "
                        "nRMSE is a median {:.1%} {} than the best baseline's (range {:+.1%} to {:+.1%}, positive: "
                        "meta-learning better).", name, _share(beats, cells), abs(float(np.median(g))),
                        "lower" if np.median(g) >= 0 else "higher", float(g.min()), float(g.max())))
    return out


def curves(tables: dict[str, pd.DataFrame], names: list[str]) -> list[Markup]:
    out = []
    for name, t, ref in _referenced(tables, names):
        cells = t[["dataset", "setting"]].drop_duplicates().values.tolist()
        for d, s in cells:
            c = t[(t["dataset"] == d) & (t["setting"] == s)].sort_values("nrmse_mean")
            rank = list(c["estimator"]).index(ref) + 1
            out.append(html("<b>{}</b>, {} {}: after {} fine-tuning steps the lowest nRMSE is {}'s ({:.4f}); {} "
                            "ranks {} of {} ({:.4f}).", name, d, s, int(c["report_step"].iloc[0]), c["label"].iloc[0],
                            c["nrmse_mean"].iloc[0], ref, rank, len(c),
                            c.loc[c["estimator"] == ref, "nrmse_mean"].iloc[0]))
    return out


def ablation(tables: dict[str, pd.DataFrame], names: list[str]) -> list[Markup]:
    """Which of the released code's factors moves A-MAML's test error, and by how much: each factor's change
    with its 95% interval over seeds and tasks (the verdicts' test), decisive after Holm's correction over the
    cell's factors."""
    out = []
    for name, t, ref in _referenced(tables, names):
        for (d, s), c in t.groupby(["dataset", "setting"], sort=False):
            base = c[c["estimator"] == ref]["nrmse_mean"].iloc[0]
            effects = c[c["estimator"] != ref]
            effects = effects.assign(delta=effects["nrmse_mean"] - base)
            if effects.empty:
                continue
            decided = verdicts.holm(floats(effects["p_value"]))
            parts = [html("{}: {:+.2g} [{:+.2g}, {:+.2g}]{}", r.label, r.delta, r.ci_low, r.ci_high,
                          "" if ok else " (not decisive)") for r, ok in zip(effects.itertuples(), decided)]
            big = int(np.argmax(np.abs(floats(effects["delta"]))))
            out.append(html("<b>{}</b>, {} {}: starting from the paper's A-MAML (nRMSE {:.4f}), switching one factor "
                            "at a time changes the test nRMSE by {} (95% intervals over seeds and tasks; decisive "
                            "after Holm's correction over the cell's {}). The largest change comes from <i>{}</i>{}.",
                            name, d, s, base, join(parts, "; "),
                            "one factor" if len(effects) == 1 else f"{len(effects)} factors",
                            effects["label"].iloc[big],
                            " and is decisive" if decided[big] else ", but it is not decisive"))
    return out


def _slope(g: pd.DataFrame, column: str) -> float:
    return verdicts.slope(floats(g["value"]), floats(g[column]))


def memory_cap_steps(g: pd.DataFrame, cap_bytes: float) -> float:
    """Inner steps K at which one estimator's peak memory would reach ``cap_bytes`` (``g``: its rows of a
    sweep over K, sorted by K): ``verdicts.steps_to_fill``."""
    return verdicts.steps_to_fill(floats(g["value"]), floats(g["peak_bytes"]), cap_bytes)


def profiles(frame: pd.DataFrame, params: dict) -> list[Markup]:
    """Per profile, a table of each estimator's memory slope and its memory and time at the largest K, with
    where unrolled MAML would fill the memory cap at that slope; how the times were taken, and which of them
    the estimators' work rules out (``below_floor``)."""
    out = []
    for name, prof in params["profiles"].items():
        rows = frame[frame["profile"] == name]
        sub = rows[rows["variable"] == "steps"]
        if sub.empty:
            continue
        cap = prof["memory_cap_gb"] * GB
        kinds = sub.groupby("estimator")["kind"].first()
        with_cap = bool((kinds == "maml").any())
        lines = []
        for est in sub["estimator"].unique():
            g = sub[sub["estimator"] == est].sort_values("value")
            last = g.iloc[-1]
            if last["below_floor"]:  # an impossible time (profile.below_floor): a flag, not a result
                time = html("<td><b>not a valid time</b><br><small>{:.4g} ms, below plain training's {:.4g} ms"
                            "</small></td><td>–</td>", last["ms_median"], last["plain_ms"])
            else:
                time = html("<td>{:.0f}</td><td>×{:.1f}</td>", last["ms_median"], last["ratio"])
            fill = Markup("")
            if with_cap:
                k_cap = memory_cap_steps(g, cap) if kinds[est] == "maml" else None
                fill = (Markup("<td>–</td>") if k_cap is None else html("<td>{:,.0f}</td>", k_cap) if k_cap < 1e7
                        else Markup("<td>not within ten million</td>"))
            lines.append(html("<tr><td class=l>{}</td><td>{:.2f}</td><td>{}</td><td>{:.1f}</td>{}{}</tr>", est,
                              _slope(g, "peak_bytes") / MB * 100, int(last["value"]), last["peak_bytes"] / MB,
                              time, fill))
        table = html("<table><tr><th class=l>estimator</th><th>MB per 100 inner steps</th><th>largest K</th>"
                     "<th>peak MB at that K</th><th>ms at that K</th><th>× plain inner training</th>{}</tr>{}</table>",
                     html("<th>unrolled MAML fills {:g} GB near K ≈</th>", prof["memory_cap_gb"])
                     if with_cap else "", join(lines))
        first = rows.iloc[0]
        timing = html("Times are medians over {} timed round(s) after {} untimed one(s); in each round plain inner "
                      "training runs right before every estimator, so all estimators at a model and K share one floor "
                      "(the median of its {} calls).", int(first["repeats"]), int(first["warmup_rounds"]),
                      int(first["plain_repeats"]))
        out.append(html("<b>profile {}</b> (memory measured as {} on {}): each estimator's memory per 100 inner "
                        "steps (the slope of its peak over K), and its peak memory and time at the largest K.{}{} {}",
                        name, sub["memory_method"].iloc[0], sub["device"].iloc[0], table, timing, below_floor(rows)))
        if name == FIGURES_3_4:
            out += figures34(rows, prof)
    return out


STIFFENS = 1.2  # dopri5 evaluations at the trained theta at least this many times those at the initial one


def _profiled_of_kind(rows: pd.DataFrame, kind: str) -> str | None:
    """The first estimator of a kind in the rows (the profile's order), as the verdicts pick it."""
    names = rows.loc[rows["kind"] == kind, "estimator"]
    return names.iloc[0] if len(names) else None


def _at(rows: pd.DataFrame, est: str | None, k: int) -> pd.Series | None:
    hit = rows[(rows["estimator"] == est) & (rows["value"] == k)] if est is not None else rows.iloc[:0]
    return hit.iloc[0] if len(hit) else None


def _factor(x: float) -> str:
    return f"{x:,.0f}×" if x >= 100 else f"{x:.3g}×"


def figures34(rows: pd.DataFrame, prof: dict) -> list[Markup]:
    """The conclusion on Figures 3-4 from the profile's rows: unrolled MAML's memory per inner step (device
    peak and autograd's saved tensors) against the paper's implied figure and where it would fill the paper's
    GPU; A-MAML's memory at the paper's K; A-MAML's time against FOMAML, Reptile, iMAML and the exact adjoint,
    and its dopri5 evaluations, at the initial theta and (rows ``steps_trained``) at the theta the job trained,
    as a table with a row per K and theta, and where the solve stiffens.  Nothing without both unrolled MAML's
    and A-MAML's sweeps over K."""
    sweep = rows[rows["variable"] == "steps"]
    maml, amaml = _profiled_of_kind(sweep, "maml"), _profiled_of_kind(sweep, "amaml")
    if maml is None or amaml is None:
        return []
    n = paper()["claims"]["figure3"]["numbers"]
    gpu = float(n["gpu_gb"]) * GB
    paper_step = gpu / float(n["maml_full_at"])
    g = sweep[sweep["estimator"] == maml].sort_values("value")
    k = floats(g["value"])
    has_saved = "saved_bytes" in g and not g["saved_bytes"].isna().all() and floats(g["saved_bytes"]).max() > 0
    memory = kept_bytes(g)
    rate = verdicts.slope(k, memory)
    k_full = verdicts.steps_to_fill(k, memory, gpu)
    device = verdicts.slope(k, floats(g["peak_bytes"]))
    what = "autograd's saved tensors" if has_saved else "its measured peak"
    parts = [html("<b>Figures 3–4, conclusion.</b> Unrolled MAML ({}) keeps {:.3f} MB per inner step ({}; "
                  "the device peak grows {} MB per step, {}), so {:g} GB would be reached near K ≈ {}. The paper's "
                  "“{:g} GB near K = {:g}” needs about {:.0f} MB per step, {} what is measured here.", maml,
                  rate / MB, what, "n/a" if not np.isfinite(device) else f"{device / MB:.3f}",
                  g["memory_method"].iloc[0], float(n["gpu_gb"]), f"{k_full:,.0f}" if np.isfinite(k_full)
                  else "never", float(n["gpu_gb"]), float(n["maml_full_at"]), paper_step / MB,
                  _factor(paper_step / rate) if rate > 0 else "far above")]
    a = sweep[sweep["estimator"] == amaml].sort_values("value")
    at, measured = verdicts.value_at(floats(a["value"]), kept_bytes(a), float(n["amaml_steps"]))
    peak, _ = verdicts.value_at(floats(a["value"]), floats(a["peak_bytes"]), float(n["amaml_steps"]))
    parts.append(html("A-MAML ({}) keeps {:.1f} MB at K = {:g} ({}; device peak {} MB), {:.2g}% of {:g} GB (the "
                      "paper: under {:.0%}).", amaml, at / MB, float(n["amaml_steps"]),
                      "measured" if measured else "extrapolated",
                      "n/a" if not np.isfinite(peak) else f"{peak / MB:.1f}",
                      100 * at / gpu, float(n["gpu_gb"]), float(n["amaml_share"])))
    trained = rows[rows["variable"] == TRAINED]
    ks = sorted({int(v) for v in trained["value"]}) or [int(k.max())]
    peers = [(e, lab) for e, lab in ((_profiled_of_kind(sweep, "fomaml"), "FOMAML"),
                                      (_profiled_of_kind(sweep, "reptile"), "Reptile"),
                                      (_profiled_of_kind(sweep, "imaml"), "iMAML"),
                                      (_profiled_of_kind(sweep, "maml_adjoint"), "the exact adjoint")) if e is not None]
    thetas = [("initial", sweep)]
    if not trained.empty:
        thetas.append((f"after {int(trained['theta_meta_steps'].iloc[0])} meta-updates", trained))
    body, stiff, steady = [], [], []
    for kk in ks:
        found = [(where, frame, mine) for where, frame in thetas if (mine := _at(frame, amaml, kk)) is not None]
        if not found:
            continue
        nfe = [int(mine["nfe"]) for *_, mine in found]
        change = nfe[1] / nfe[0] if len(nfe) == 2 and nfe[0] > 0 else None
        if change is not None:
            (stiff if change >= STIFFENS else steady).append(str(kk))
        for i, (where, frame, mine) in enumerate(found):
            cells = []
            for est, _ in peers:
                other = _at(frame, est, kk)
                cells.append(Markup("<td>–</td>") if other is None else
                             Markup("<td>not valid<br><small>flagged time</small></td>")
                             if bool(mine["below_floor"]) or bool(other["below_floor"]) else
                             html("<td>×{:.2f}</td>", mine["ms_median"] / other["ms_median"]))
            if len(thetas) == 2 and i == 0:  # one change per K, beside both of its rows
                cells.append(html("<td rowspan={}>{}</td>", len(found), "–" if change is None else f"×{change:.2f}"))
            body.append(html("<tr>{}<td class=l>{}</td><td>{:.0f}</td><td>{}</td>{}</tr>",
                             html("<td rowspan={}>{}</td>", len(found), kk) if i == 0 else "", where,
                             mine["ms_median"], int(mine["nfe"]), join(cells)))
    if not body:
        return [join(parts, " ")]
    table = html("<table><tr><th>K</th><th class=l>θ</th><th>A-MAML ms</th><th>dopri5 evaluations</th>{}{}</tr>{}"
                 "</table>", join(html("<th>A-MAML / {}</th>", lab) for _, lab in peers),
                 Markup("<th>evaluations after training ÷ before</th>") if len(thetas) == 2 else "", join(body))
    said = (html("The solve stiffens after training (at least ×{:g} the evaluations) at K = {}{}.", STIFFENS,
                 ", ".join(stiff), f"; not at K = {', '.join(steady)}" if steady else "") if stiff else
            html("The solve does not stiffen after training (under ×{:g} the evaluations) at K = {}.", STIFFENS,
                 ", ".join(steady)) if steady else "")
    parts.append(html("A-MAML's time and dopri5 evaluations, and its time over each other estimator's at the same "
                      "K and θ (not valid where either time is flagged):{}{}", table, said))
    return [join(parts, " ")]


def below_floor(rows: pd.DataFrame) -> Markup:
    """Which times of one profile came out below plain training although the estimator's work rules
    that out (the rows' ``below_floor``, from ``profile.below_floor``)."""
    bad = rows[rows["below_floor"]]
    if bad.empty:
        return Markup("No estimator that runs at least K inner steps timed below plain inner training.")
    # the fixed point is in every sweep at the initial theta; the trained theta's sweep is other measurements
    points = bad.drop_duplicates(["estimator", "steps", "layers", "units", "theta_meta_steps"])
    parts = [html("{} at {} = {}", est, var, ", ".join(str(v) for v in g["value"]))
             for (est, var), g in bad.groupby(["estimator", "variable"], sort=False)]
    return html("<b>{} time(s) came out below plain inner training although the estimator runs at least K inner "
                "steps</b>, which its work rules out: the machine's speed varied while they were taken. They are "
                "flagged in the tables, not quoted as results: {}.", len(points), join(parts, "; "))


def accuracy(frame: pd.DataFrame) -> list[Markup]:
    out = []
    for name, sub in frame.groupby("study", sort=False):
        k = sub["steps"].max()
        at = sub[sub["steps"] == k].groupby("estimator").agg(err=("rel_error", "mean"), cos=("cosine", "mean"))
        parts = [html("{}: relative error {:.1e}, cosine {:.3f}", e, r.err, r.cos)
                 for e, r in at.sort_values("err").iterrows()]
        out.append(html("<b>accuracy {}</b>, K = {}: {}.", name, k, join(parts, "; ")))
    return out


RELEASED_CODE = (
    "Beyond the four factors of the ablation, the authors' released code differs from the paper's text in its "
    "arithmetic: its inner and validation losses are half the mean squared error (so the same step α moves half "
    "as far), its validation objective used for the adjoint's terminal condition also carries the proximal term, "
    "its backward sweep takes one step more than the forward grid has (the last at θ; its Heun branch wraps "
    "around to the final state there), and its integral of the adjoint for the proximal term sums K + 2 rows "
    "times h. Each is a switch of the A-MAML configuration here (amaml_released turns all of them on, with "
    "torchdiffeq's RK4, which is the 3/8 rule), and the ablation switches the first two alone. What the pipeline "
    "does not switch: the released code standardizes inputs and targets globally and fine-tunes test tasks with "
    "Adam on a 31×31 grid (one of the candidate nRMSE definitions runs that protocol), and the MAML "
    "implementation the paper cites computes inner gradients without second-order terms (maml_fo). Any of these "
    "may contribute to the gap between the paper's numbers and ours.")

