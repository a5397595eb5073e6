"""Verdicts on the paper's claims: a paired bootstrap over training seeds and test tasks, and the
rules that turn its intervals (and the profiles' numbers) into "holds", "holds in part", ...
(About 350 lines: the statistics and every rule stay together, so the thresholds the report
prints, ``RULES``, sit beside the code that applies them.)

The test.  A comparison sets the estimator a claim says is better (``ref``) against another on the
same cells: two arrays [seeds, tasks] of per-task nRMSE, paired by seed and task, since every
estimator of a dataset and seed starts from the same θ and is tested on the same test tasks.  The
difference is ``other - ref`` (positive = the claim's side).  Each of ``REPLICATES`` bootstrap
replicates draws the seeds with replacement, then the test tasks with replacement, and takes the
mean difference over the drawn (seed, task) pairs; the interval is the 2.5-97.5 percentile range
of those means.  The tasks are drawn once per replicate and shared by the drawn seeds: the seeds
are tested on the same tasks (a crossed design), and drawing them afresh for every seed would treat
one task seen under three seeds as three tasks and give too narrow an interval.  The generator is
seeded from the master seed and the comparison's name, so the report is the same on every run
and a comparison shared by two claims gets one interval.

Seeds.  The training seed changes θ's initialization and the meta-batches, so two estimators can
differ on one seed by luck of that seed alone.  Resampling seeds is what makes that luck part of
the interval, and with one seed there is nothing to resample (with two, a replicate sees at most
two distinct trainings): the interval then covers the test tasks only, so it says whether the two
θ of that seed differ, not whether the methods do.  A comparison with fewer than ``MIN_SEEDS``
seeds keeps its interval but is flagged not conclusive, and so is every claim that uses it.

Pure functions of numpy arrays; nothing here reads a file.  ``report.claims`` expands each claim
of ``reference/paper.yaml`` into comparisons and calls these rules.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

REPLICATES = 2000
LEVEL = 0.95          # the interval's coverage
MIN_SEEDS = 3         # fewer: not conclusive
NEARLY_ALWAYS = 0.8   # "in general", "nearly always": supports in at least this share of the comparisons
COMPARABLE = 3.0      # "comparable" times: within this factor either way
MUCH_SMALLER = 3.0    # "much smaller": the other takes at least this many times as long
NEAR = 1.5            # "near K": at most this factor above the paper's K

SUPPORTS, CONTRADICTS, UNDECIDED, NOT_COMPUTABLE = "supports", "contradicts", "undecided", "not computable"
HOLDS, IN_PART, NOT_HOLD, UNTESTABLE = "holds", "holds in part", "does not hold", "cannot be tested here"
NOT_CONCLUSIVE = "not conclusive"

RULES = {  # how a verdict is reached, one sentence each (the report prints them)
    "comparison": f"A comparison supports the claim when its {LEVEL:.0%} interval lies entirely on the claim's "
                  "side of zero, contradicts it when it lies entirely on the other side, and is undecided otherwise.",
    HOLDS: "Holds: every comparison of the claim supports it (for “in general” and “nearly always”, at least "
           f"{NEARLY_ALWAYS:.0%} of them do; for a claim of several parts, every part holds).",
    IN_PART: "Holds in part: at least one comparison (or part) supports it, but fewer than that rule needs.",
    NOT_HOLD: "Does not hold: no comparison (or part) supports it.",
    UNTESTABLE: "Cannot be tested here: this configuration has none of the claim's data (an experiment, "
                "estimator or profile is absent).",
    NOT_CONCLUSIVE: f"Not conclusive: fewer than {MIN_SEEDS} training seeds, a reduced preset (not ‘full’), "
                    f"profiles timed in fewer than {MIN_SEEDS} rounds, or a number that could not be computed; "
                    "the verdict the rule would give is shown beside it.",
}


@dataclass(frozen=True)
class Bootstrap:
    """Mean of ``other - ref`` over seeds and tasks, its interval, the mean of ``ref`` (``base``), and the
    relative difference ``diff / base`` with its interval."""
    diff: float
    lo: float
    hi: float
    base: float
    seeds: int
    tasks: int

    @property
    def rel(self) -> float:
        return self.diff / self.base if self.base else math.nan

    @property
    def rel_interval(self) -> tuple[float, float]:
        return (self.lo / self.base, self.hi / self.base) if self.base else (math.nan, math.nan)

    @property
    def outcome(self) -> str:
        if not all(math.isfinite(v) for v in (self.diff, self.lo, self.hi)):
            return NOT_COMPUTABLE
        return SUPPORTS if self.lo > 0 else CONTRADICTS if self.hi < 0 else UNDECIDED

    @property
    def conclusive(self) -> bool:
        return self.seeds >= MIN_SEEDS


def bootstrap_seed(master: int, name: str) -> list[int]:
    """The generator's seed of the comparison called ``name``: the master seed and the name's bytes."""
    return [int(master), *name.encode("utf-8")]


def paired_bootstrap(ref: np.ndarray, other: np.ndarray, seed: int | Sequence[int],
                     replicates: int = REPLICATES) -> Bootstrap:
    """The paired hierarchical bootstrap of the module docstring on two [seeds, tasks] arrays."""
    ref, other = np.asarray(ref, dtype=float), np.asarray(other, dtype=float)
    if ref.ndim != 2 or ref.shape != other.shape or ref.size == 0:
        raise ValueError(f"paired arrays must be [seeds, tasks] of one shape, got {ref.shape} and {other.shape}")
    if not (np.isfinite(ref).all() and np.isfinite(other).all()):
        raise ValueError("paired arrays must be finite")
    d = other - ref
    n_seeds, n_tasks = d.shape
    rng = np.random.default_rng(seed)
    seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=replicates)  # [R, seeds]
    task_counts = rng.multinomial(n_tasks, np.full(n_tasks, 1 / n_tasks), size=replicates)  # [R, tasks]
    means = np.einsum("rs,st,rt->r", seed_counts, d, task_counts) / (n_seeds * n_tasks)
    tail = (1 - LEVEL) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return Bootstrap(float(d.mean()), float(lo), float(hi), float(ref.mean()), n_seeds, n_tasks)


@dataclass(frozen=True)
class Comparison:
    """One comparison of a claim: ``ref`` (the estimator the claim says is better) against ``other``."""
    where: str
    ref: str
    other: str
    result: Bootstrap

    @property
    def outcome(self) -> str:
        return self.result.outcome


@dataclass(frozen=True)
class Verdict:
    """What a claim's rule gives (``rule``), the deciding numbers, and why the verdict is not conclusive
    (``reasons``; none = conclusive).  A verdict with a number that could not be computed
    (``computable`` false) always has a reason, so it is never shown as holding."""
    rule: str
    evidence: str
    reasons: tuple[str, ...] = ()
    computable: bool = True

    def __post_init__(self):
        if not self.computable and not self.reasons:
            raise ValueError("a verdict that could not be computed needs its reason")

    @property
    def conclusive(self) -> bool:
        return not self.reasons

    @property
    def text(self) -> str:
        if self.rule == UNTESTABLE and self.computable:
            return UNTESTABLE
        if self.conclusive:
            return self.rule
        return NOT_CONCLUSIVE if self.rule == UNTESTABLE else f"{NOT_CONCLUSIVE} (would be: {self.rule})"


def needed(n: int, share: float = 1.0) -> int:
    """How many of ``n`` comparisons must support a claim that needs ``share`` of them."""
    return n if share >= 1 else math.ceil(share * n - 1e-9)


def count_rule(outcomes: Sequence[str], share: float = 1.0) -> str:
    """Holds when at least ``needed`` of the outcomes support, holds in part when at least one does, does
    not hold when none does; no outcomes: cannot be tested."""
    n, k = len(outcomes), sum(o == SUPPORTS for o in outcomes)
    if n == 0:
        return UNTESTABLE
    if k >= needed(n, share):
        return HOLDS
    return IN_PART if k else NOT_HOLD


def parts_rule(parts: Sequence[bool | None]) -> str:
    """A claim of several parts (True: the part holds, False: not, None: no data for it)."""
    known = [p for p in parts if p is not None]
    if not known:
        return UNTESTABLE
    if len(known) == len(parts) and all(known):
        return HOLDS
    return IN_PART if any(known) else NOT_HOLD


def combine_rule(rules: Sequence[str]) -> str:
    """A claim that must hold in each of several sub-claims (e.g. at both K): holds if each holds, does not
    hold if none holds even in part, holds in part otherwise; cannot be tested if any sub-claim cannot."""
    if not rules or UNTESTABLE in rules:
        return UNTESTABLE
    if all(r == HOLDS for r in rules):
        return HOLDS
    return NOT_HOLD if all(r == NOT_HOLD for r in rules) else IN_PART


def preset_reasons(preset: str) -> list[str]:
    return [] if preset == "full" else [f"preset {preset}, not full"]


def judge(comparisons: Sequence[Comparison], preset: str, share: float = 1.0, claimed: str = "") -> Verdict:
    """The verdict of a claim made of comparisons: ``count_rule`` over their outcomes; not conclusive
    with fewer than MIN_SEEDS seeds, a reduced preset or an outcome that could not be computed."""
    outcomes = [c.outcome for c in comparisons]
    rule = count_rule(outcomes, share)
    if rule == UNTESTABLE:
        return Verdict(rule, "no comparison in this configuration")
    reasons = preset_reasons(preset)
    seeds = min(c.result.seeds for c in comparisons)
    if seeds < MIN_SEEDS:
        reasons.append(f"{seeds} training seed{'s' if seeds > 1 else ''}, fewer than {MIN_SEEDS}")
    failed = outcomes.count(NOT_COMPUTABLE)
    if failed:
        reasons.append(f"{failed} comparison{'s' if failed > 1 else ''} could not be computed")
    return Verdict(rule, summary(comparisons, share, claimed), tuple(reasons), computable=not failed)


def summary(comparisons: Sequence[Comparison], share: float = 1.0, claimed: str = "") -> str:
    """The deciding numbers: how many comparisons support, contradict, and the median relative difference."""
    outcomes = [c.outcome for c in comparisons]
    n, k = len(outcomes), outcomes.count(SUPPORTS)
    need = "all" if share >= 1 else needed(n, share)
    rel = np.array([c.result.rel for c in comparisons], dtype=float)
    rel = rel[np.isfinite(rel)]
    side = f" (positive: {claimed})" if claimed else ""
    median = f"; median relative difference {np.median(rel):+.1%}{side}" if rel.size else ""
    return (f"supports {k} of {n} comparisons ({need} needed), contradicts {outcomes.count(CONTRADICTS)}"
            f"{median}")


def extremes(comparisons: Sequence[Comparison]) -> tuple[Comparison | None, Comparison | None]:
    """The comparison most against the claim and the one most for it (by relative difference)."""
    ok = [c for c in comparisons if math.isfinite(c.result.rel)]
    if not ok:
        return None, None
    return min(ok, key=lambda c: c.result.rel), max(ok, key=lambda c: c.result.rel)


# -- profiles (Figures 3-4) ------------------------------------------------------------------------
def slope(k: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``y`` over K (finite points only; NaN with fewer than two)."""
    k, y = np.asarray(k, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(y)
    return float(np.polyfit(k[ok], y[ok], 1)[0]) if ok.sum() >= 2 else math.nan


def _finite(k: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    k, y = np.asarray(k, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(k) & np.isfinite(y)
    return k[ok], y[ok]


def steps_to_fill(k: Sequence[float], peak: Sequence[float], cap: float) -> float:
    """Inner steps K at which peak memory would reach ``cap``, extrapolated from the last measured point of
    the sweep (sorted by K) along the least-squares slope; inf if it grows by less than a byte over the sweep,
    NaN with fewer than two measured points."""
    k, peak = _finite(k, peak)
    rate = slope(k, peak)
    if not math.isfinite(rate):
        return math.nan
    grows = rate * (k.max() - k.min()) >= 1.0
    return float(k[-1] + (cap - peak[-1]) / rate) if grows else math.inf


def value_at(k: Sequence[float], y: Sequence[float], at: float) -> tuple[float, bool]:
    """``y`` at K = ``at``: measured if the sweep has it (True), else extrapolated like ``steps_to_fill``
    (NaN with fewer than two measured points)."""
    k, y = _finite(k, y)
    if at in k:
        return float(y[k == at][0]), True
    return (float(y[-1] + slope(k, y) * (at - k[-1])) if k.size else math.nan), False


@dataclass(frozen=True)
class Sweep:
    """One estimator's rows of a profile's sweep over K, sorted by K (``valid``: a time not flagged)."""
    k: np.ndarray
    peak_bytes: np.ndarray
    ms: np.ndarray
    valid: np.ndarray


def profile_reasons(preset: str, repeats: int) -> list[str]:
    reasons = preset_reasons(preset)
    if repeats < MIN_SEEDS:
        reasons.append(f"timed in {repeats} round{'s' if repeats != 1 else ''}, fewer than {MIN_SEEDS}")
    return reasons


def memory_verdict(maml: Sweep | None, amaml: Sweep | None, gpu_bytes: float, maml_full_at: float,
                   amaml_steps: float, amaml_share: float, preset: str, repeats: int) -> Verdict:
    """Figure 3: unrolled MAML fills the GPU near ``maml_full_at`` (at most NEAR times it), and A-MAML uses
    less than ``amaml_share`` of it at ``amaml_steps``; both parts: holds, one: holds in part."""
    parts: list[bool | None] = [None, None]
    words, reasons, failed = [], profile_reasons(preset, repeats), False
    gb = gpu_bytes / 2 ** 30
    if maml is not None:
        k_full = steps_to_fill(maml.k, maml.peak_bytes, gpu_bytes)
        if math.isnan(k_full):
            reasons.append("unrolled MAML's memory could not be fitted: fewer than two measured points")
            failed = True
        else:
            parts[0] = k_full <= NEAR * maml_full_at
            where = f"near K ≈ {k_full:,.0f}" if math.isfinite(k_full) else "never (it does not grow)"
            words.append(f"unrolled MAML grows {slope(maml.k, maml.peak_bytes) / 2 ** 20:.3g} MB per inner step "
                         f"and would fill {gb:g} GB {where} (holds if ≤ {NEAR * maml_full_at:g})")
    if amaml is not None:
        at, measured = value_at(amaml.k, amaml.peak_bytes, amaml_steps)
        if not math.isfinite(at):
            reasons.append(f"A-MAML's memory at K = {amaml_steps:g} could not be computed")
            failed = True
        else:
            parts[1] = at < amaml_share * gpu_bytes
            words.append(f"A-MAML {at / 2 ** 20:,.1f} MB at K = {amaml_steps:g} "
                         f"({'measured' if measured else 'extrapolated'}) = {100 * at / gpu_bytes:.2g}% of {gb:g} GB "
                         f"(holds if < {amaml_share:.0%})")
    return _parts_verdict(parts, words, reasons, failed)


def time_verdict(amaml: Sweep | None, peers: dict[str, Sweep], maml: Sweep | None, preset: str,
                 repeats: int) -> Verdict:
    """Figure 4: A-MAML's time within COMPARABLE times each peer's, either way, at every K both timed validly;
    unrolled MAML at least MUCH_SMALLER times A-MAML's at the largest K both timed validly."""
    parts: list[bool | None] = [None, None]
    words, reasons, failed = [], profile_reasons(preset, repeats), False
    if amaml is not None:
        mine = {float(k): float(ms) for k, ms, ok in zip(amaml.k, amaml.ms, amaml.valid) if ok}
        ratios = np.array([mine[k] / ms for s in peers.values() for k, ms, ok in zip(s.k, s.ms, s.valid)
                           if ok and k in mine], dtype=float)
        if ratios.size and not np.isfinite(ratios).all():
            reasons.append("a time ratio could not be computed")
            failed = True
        elif ratios.size:
            inside = int(((ratios <= COMPARABLE) & (ratios >= 1 / COMPARABLE)).sum())
            parts[0] = inside == ratios.size
            words.append(f"A-MAML / {', '.join(peers)}: ×{ratios.min():.2g}–×{ratios.max():.2g} over "
                         f"{ratios.size} (K, estimator) pairs, {inside} within ×{COMPARABLE:g} either way "
                         "(all needed)")
        both = [] if maml is None else [(float(k), float(ms)) for k, ms, ok in zip(maml.k, maml.ms, maml.valid)
                                        if ok and k in mine]
        if both:
            k, ms = max(both)
            ratio = ms / mine[k]
            if math.isfinite(ratio):
                parts[1] = ratio >= MUCH_SMALLER
                words.append(f"MAML / A-MAML at K = {k:g}: ×{ratio:.3g} (holds if ≥ ×{MUCH_SMALLER:g})")
            else:
                reasons.append("MAML's time ratio could not be computed")
                failed = True
    return _parts_verdict(parts, words, reasons, failed)


def _parts_verdict(parts: list[bool | None], words: list[str], reasons: list[str], failed: bool) -> Verdict:
    rule = parts_rule(parts)
    missing = sum(p is None for p in parts)
    if missing and rule != UNTESTABLE:
        words.append(f"{missing} of {len(parts)} parts without data")
    if rule == UNTESTABLE and not failed:
        return Verdict(rule, "; ".join(words) or "no profile rows for it in this configuration")
    return Verdict(rule, "; ".join(words), tuple(reasons), computable=not failed)
