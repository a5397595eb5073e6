"""Figures 3-4: the verdict uses the bytes kept for the backward pass when the profile counts them, and the
report's computed conclusion says what made-up profile rows say, both ways."""
from __future__ import annotations

import re

import pandas as pd

from adjoint_meta import profile
from adjoint_meta import verdicts as v
from adjoint_meta.report import claims, discussion

GB, MB = 2 ** 30, 2 ** 20
PARAMS = {"profiles": {"fig34": {"memory_cap_gb": 24}}}
KINDS = ("amaml", "maml", "maml_adjoint", "fomaml", "reptile", "imaml")


def _rows(maml_saved: float, amaml_stored: float = 1e4, nfe=(50, 50), ms=(2.0, 2.0), ks=(10, 100, 500),
          trained_ks=(100, 500), with_saved: bool = True) -> pd.DataFrame:
    """A fig34 profile as profile.run writes it: per inner step, unrolled MAML's device peak grows 1 MB and
    its saved tensors ``maml_saved``; A-MAML keeps ``amaml_stored`` a step; A-MAML's ms per step and dopri5
    evaluations at the initial and the trained theta are ``ms`` and ``nfe``; every other estimator 1 ms a step."""
    rows = []
    for variable, theta_steps, k_list in (("steps", 0, ks), (profile.TRAINED, 300, trained_ks)):
        i = 0 if theta_steps == 0 else 1
        for kind in KINDS if variable == "steps" else [k for k in KINDS if k != "maml"]:
            for k in k_list:
                saved = maml_saved * k if kind == "maml" else 0
                rows.append(dict(profile="fig34", variable=variable, value=k, theta_meta_steps=theta_steps,
                                 estimator=kind, kind=kind, steps=k, repeats=3, warmup_rounds=2, plain_repeats=18,
                                 ms_median=(ms[i] if kind == "amaml" else 1.0) * k, plain_ms=0.5 * k, ratio=2.0,
                                 below_floor=False, memory_method="rss-highwater", device="cpu",
                                 peak_bytes=1e6 + (MB if kind == "maml" else 1e3) * k,
                                 stored_bytes=amaml_stored * k if kind == "amaml" else 0,
                                 saved_bytes=saved, nfe=nfe[i] if kind == "amaml" else k, hvp=0))
    frame = pd.DataFrame(rows)
    return frame if with_saved else frame.drop(columns="saved_bytes")


def _figure3(frame: pd.DataFrame) -> v.Verdict:
    sweep = frame[frame["variable"] == "steps"]
    ev = claims.Evidence(tables={}, figure2=[], profile=sweep, profile_estimators=list(KINDS),
                         kinds={k: k for k in KINDS}, preset="full", compare=claims.Comparer())
    return claims.figure3(ev)[0]


def test_figure3_judges_saved_tensor_bytes_when_the_profile_has_them():
    # the device peak grows 1 MB a step (24 GB near K = 24,500), the saved tensors 0.1 GB a step (near 240)
    assert _figure3(_rows(0.1 * GB)).text == v.HOLDS
    assert "would fill 24 GB at K ≈ 24" in _figure3(_rows(0.1 * GB)).evidence
    assert _figure3(_rows(0.6 * MB)).text == v.IN_PART
    # without the count, the rule falls back to the measured peak
    assert _figure3(_rows(0.1 * GB, with_saved=False)).text == v.IN_PART
    kept = claims.kept_bytes(_rows(0.5 * MB).query("estimator == 'amaml' and variable == 'steps'"))
    assert list(kept) == [1e5, 1e6, 5e6]  # A-MAML: its stored trajectory


def _conclusion(frame: pd.DataFrame) -> str:
    out = discussion.profiles(frame, PARAMS)
    assert len(out) == 2
    return str(out[1])


def _rows_of(fragment: str) -> list[list[str]]:
    """The cells of each body row of the fragment's table, rowspans kept (``K (n)``)."""
    rows = [[f"{c} ({n[0]})" if (n := re.findall(r"rowspan=(\d+)", a)) else c
             for a, c in re.findall(r"<td([^>]*)>(.*?)</td>", r)] for r in re.findall(r"<tr>(.*?)</tr>", fragment)]
    return [r for r in rows if r]


def test_profile_table_gives_each_estimators_memory_and_time_and_where_maml_fills_the_cap():
    [table] = re.findall(r"<table>.*?</table>", str(discussion.profiles(_rows(0.6 * MB), PARAMS)[0]))
    assert "<th>unrolled MAML fills 24 GB near K ≈</th>" in table
    rows = _rows_of(table)
    # A-MAML: 1e3 B a step, 1.5 MB at K = 500, 1000 ms there (×2.0); MAML's peak: 1 MB a step from 1e6 B
    assert rows[0] == ["amaml", "0.10", "500", "1.4", "1000", "×2.0", "–"]
    assert rows[1] == ["maml", "100.00", "500", "501.0", "500", "×2.0", "24,575"]  # (24 GB - 1e6 B) / 1 MB
    assert len(rows) == len(KINDS)
    slow = _rows(0.6 * MB).assign(peak_bytes=lambda f: f["peak_bytes"].where(f["kind"] != "maml", 1e6 + f["value"]))
    [table] = re.findall(r"<table>.*?</table>", str(discussion.profiles(slow, PARAMS)[0]))
    assert _rows_of(table)[1][-1] == "not within ten million"


def test_conclusion_far_from_the_paper_and_no_stiffening():
    text = _conclusion(_rows(0.6 * MB))
    assert "<b>Figures 3–4, conclusion.</b> Unrolled MAML (maml) keeps 0.600 MB per inner step (autograd&#39;s " \
        "saved tensors; the device peak grows 1.000 MB per step, rss-highwater)" in text
    assert "24 GB would be reached near K ≈ 40,960" in text  # 500 + (24 GB - 300 MB) / 0.6 MB
    assert "needs about 123 MB per step, 205× what is measured here" in text
    assert "A-MAML (amaml) keeps 4.8 MB at K = 500 (measured; device peak 1.4 MB), 0.019% of 24 GB" in text
    # a row per K and theta: ms, dopri5 evaluations, A-MAML over each peer; the evaluations' change per K
    assert "<th>A-MAML / FOMAML</th><th>A-MAML / Reptile</th><th>A-MAML / iMAML</th><th>A-MAML / the exact " \
        "adjoint</th><th>evaluations after training ÷ before</th>" in text
    assert _rows_of(text) == [
        ["100 (2)", "initial", "200", "50", "×2.00", "×2.00", "×2.00", "×2.00", "×1.00 (2)"],
        ["after 300 meta-updates", "200", "50", "×2.00", "×2.00", "×2.00", "×2.00"],
        ["500 (2)", "initial", "1000", "50", "×2.00", "×2.00", "×2.00", "×2.00", "×1.00 (2)"],
        ["after 300 meta-updates", "1000", "50", "×2.00", "×2.00", "×2.00", "×2.00"]]
    assert "The solve does not stiffen after training (under ×1.2 the evaluations) at K = 100, 500." in text
    assert "stiffens after" not in text


def test_conclusion_near_the_paper_and_a_stiffening_solve():
    frame = _rows(120 * MB, nfe=(50, 200), ms=(2.0, 6.0))
    flagged = (frame["variable"] == profile.TRAINED) & (frame["kind"] == "reptile") & (frame["value"] == 500)
    text = _conclusion(frame.assign(below_floor=flagged, layers=2, units=32))
    assert "keeps 120.000 MB per inner step" in text and "1.02× what is measured here" in text
    rows = _rows_of(text)
    assert rows[1] == ["after 300 meta-updates", "600", "200", "×6.00", "×6.00", "×6.00", "×6.00"]
    assert rows[2][-1] == "×4.00 (2)"
    assert rows[3] == ["after 300 meta-updates", "3000", "200", "×6.00",
                       "not valid<br><small>flagged time</small>", "×6.00", "×6.00"]
    assert "The solve stiffens after training (at least ×1.2 the evaluations) at K = 100, 500." in text


def test_conclusion_without_a_trained_theta_or_saved_bytes():
    frame = _rows(0.6 * MB, with_saved=False)
    text = _conclusion(frame[frame["variable"] == "steps"])
    assert "keeps 1.000 MB per inner step (its measured peak" in text
    assert [r[:4] for r in _rows_of(text)] == [["500 (1)", "initial", "1000", "50"]]
    assert "meta-updates" not in text and "after training" not in text


def test_no_conclusion_without_both_sweeps():
    frame = _rows(0.6 * MB)
    assert len(discussion.profiles(frame[frame["kind"] != "amaml"], PARAMS)) == 1
