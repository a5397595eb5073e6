"""Verdicts on the paper's claims: a paired interval for a crossed seed × task design, Holm's correction
over a claim's comparisons, and the rules that turn them (and the profiles' numbers) into "holds",
"holds in part", "does not hold", "not shown", ...  The statistics and every rule stay together, so the
thresholds the report prints (``RULES``) sit beside the code that applies them; docs/statistics.md says
why this interval and how it was checked.

The comparison.  A comparison sets the estimator a claim says is better (``ref``) against another on
the same cells: two arrays [seeds, tasks] of per-task nRMSE, paired by seed and task (every estimator
of a dataset and seed starts from the same θ and is tested on the same test tasks).  The difference
d = other - ref (positive = the claim's side) is modelled as

    d[s, t] = μ + a[s] + b[t] + e[s, t],

a seed effect, a task effect and their interaction (the residual), all random: seeds and tasks are
crossed, so one task seen under three seeds is still one task.  The mean difference estimates μ with

    Var(mean) = σ²_seed / S + σ²_task / T + σ²_res / (S T).

From the two-way ANOVA mean squares (MS_seed with S-1 degrees of freedom, MS_task with T-1, MS_res
with (S-1)(T-1)), Var(mean) is estimated by [MS_seed + max(MS_task - MS_res, 0)] / (S T): the seeds'
part is the spread of the per-seed means (it holds the residual too, so it never goes negative), the
tasks' part the task variance beyond the residual.  The interval is a t interval on the mean with
Satterthwaite's degrees of freedom for that sum, in which the seed term counts ``DF_SEED_WEIGHT`` times
(the plug-in degrees of freedom are too large exactly when the seed mean square came out small), rounded
down and never below S - 1.  With one seed the interval covers the test tasks only, and with fewer than
``MIN_SEEDS`` seeds a comparison (and every claim that uses it) is flagged not conclusive.

Pure functions of numpy arrays; nothing here reads a file.  ``report.claims`` expands each claim of
``reference/paper.yaml`` into comparisons and calls these rules.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy import optimize, stats

from adjoint_meta.units import GB, MB

LEVEL = 0.95          # an interval's coverage; 1 - LEVEL is also the family-wise level of Holm's correction
POWER = 0.8           # the smallest detectable difference is detected with this probability
DF_SEED_WEIGHT = 2.0  # the seed mean square's weight in the degrees of freedom (docs/statistics.md)
MIN_SEEDS = 3         # fewer training seeds (or timed rounds): not conclusive
ALL, MAJORITY, MOST = 1.0, 0.5, 0.8   # shares the paper's words need: unqualified; "in general", "often"; "nearly
                                      # always" (a majority is more than MAJORITY, the others at least the share)
NEAR = 2.0            # "near K": within this factor of K either way
LINEAR_R2 = 0.98      # "grows linearly": a straight line in K explains at least this share of the memory's variance
FLAT_SHARE = 0.1      # "stays flat": grows by at most this share of unrolled MAML's bytes per inner step
COMPARABLE = 2.0      # "comparable" times: within this factor of each other either way
MUCH_SMALLER = 3.0    # "much smaller": the other takes at least this many times as long
MIN_TIMED_K = 2       # "comparable" is judged at K >= this (at K = 1 every method is one gradient step)

SUPPORTS, CONTRADICTS, UNDECIDED, NOT_COMPUTABLE = "supports", "contradicts", "undecided", "not computable"
HOLDS, IN_PART, NOT_HOLD, NOT_SHOWN = "holds", "holds in part", "does not hold", "not shown"
UNTESTABLE, NOT_CONCLUSIVE = "cannot be tested here", "not conclusive"

RULES = {  # how a verdict is reached, one sentence each (the report prints them)
    "comparison": f"A comparison supports the claim when its {LEVEL:.0%} interval lies entirely on the claim's side "
                  "of zero, contradicts it when it lies entirely on the other side, and is undecided otherwise.",
    "decisive": f"A comparison is decisive when its p-value (taken conservatively in the far tail) passes Holm's "
                f"step-down correction at {1 - LEVEL:.0%} over "
                f"all the comparisons of its claim, so that with no true difference anywhere a claim shows a "
                f"decisive comparison with probability at most {1 - LEVEL:.0%}, however many comparisons it has.",
    HOLDS: "Holds: the share of comparisons the paper's words need supports the claim (all of them for unqualified "
           f"words, more than {MAJORITY:.0%} for “in general” and “often”, at least {MOST:.0%} for “nearly always”); "
           "a claim of several parts holds when every part holds.",
    NOT_HOLD: "Does not hold: so many comparisons contradict the claim decisively that the share its words need can "
              "no longer be reached (one, for unqualified words); a claim of parts does not hold when a part does "
              "not hold and none holds.",
    IN_PART: "Holds in part: neither of these, but at least one comparison supports the claim decisively; a claim of "
             "parts holds in part when at least one part holds but not all do.",
    NOT_SHOWN: "Not shown: no decisive comparison either way, or no part that holds or fails.",
    UNTESTABLE: "Cannot be tested here: this configuration has none of the claim's data (an experiment, "
                "estimator or profile is absent).",
    NOT_CONCLUSIVE: f"Not conclusive: fewer than {MIN_SEEDS} training seeds, a reduced preset (not ‘full’), "
                    f"profiles timed in fewer than {MIN_SEEDS} rounds, or a number that could not be computed; "
                    "the verdict the rule would give is shown beside it.",
}


# -- the interval of one comparison ------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """Mean of ``other - ref`` over seeds and tasks (``diff``), its interval at ``level``, the mean of ``ref``
    (``base``), its standard error and degrees of freedom, the per-seed mean differences, and the parts of the
    estimated variance of ``diff`` that come from the seeds and from the tasks."""
    diff: float
    lo: float
    hi: float
    base: float
    seeds: int
    tasks: int
    se: float = math.nan
    df: float = math.nan
    seed_means: tuple[float, ...] = ()
    seed_var: float = math.nan
    task_var: float = math.nan
    level: float = LEVEL

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

    @property
    def p(self) -> float:
        """Two-sided p-value of ``diff = 0`` (NaN where it cannot be computed)."""
        if not (math.isfinite(self.diff) and self.se >= 0 and self.df > 0):
            return math.nan
        if self.se == 0:
            return 1.0 if self.diff == 0 else 0.0
        return float(2 * stats.t.sf(abs(self.diff) / self.se, self.df))

    @property
    def p_tail(self) -> float:
        """The p-value Holm's correction uses: the larger of ``p`` and ``tail_p`` (the t's far tail is too thin
        when the seeds dominate and their mean square came out small)."""
        if self.seeds < 2 or not self.se > 0:
            return self.p
        return max(self.p, float(tail_p(self.diff, self.seed_var, self.task_var, self.seeds)))

    @property
    def mdd(self) -> float:
        """The smallest true difference this comparison detects (two-sided, at its level) with probability POWER,
        were its standard error the truth: the noncentral t's noncentrality at that power, times the error."""
        if not (self.se >= 0 and self.df > 0):
            return math.nan
        return detectable(self.df, self.level) * self.se

    @property
    def seed_share(self) -> float:
        """The seeds' share of the estimated variance of ``diff`` (the rest comes from the tasks)."""
        total = self.seed_var + self.task_var
        return self.seed_var / total if total > 0 else math.nan


@cache
def detectable(df: float, level: float = LEVEL, power: float = POWER) -> float:
    """The noncentrality (true difference over its standard error) a two-sided t test with ``df`` degrees of
    freedom at ``level`` detects with probability ``power``."""
    df = min(df, 1e4)  # beyond, the normal limit (the noncentral t fails at infinite degrees of freedom)
    crit = stats.t.ppf((1 + level) / 2, df)

    def short(delta: float) -> float:
        wrong_side = float(np.nan_to_num(stats.nct.cdf(-crit, df, delta)))  # negligible where scipy gives NaN
        return stats.nct.sf(crit, df, delta) + wrong_side - power
    return float(optimize.brentq(short, 0.0, crit + 10 * stats.norm.ppf(power) + 10))


@cache
def _chi2_grid(df: int, points: int = 400) -> tuple[np.ndarray, np.ndarray, float]:
    """Nodes and weights of a chi-square's distribution on a geometric grid, and the mass below it."""
    edges = np.geomspace(1e-12, stats.chi2.isf(1e-12, df), points + 1)
    return np.sqrt(edges[1:] * edges[:-1]), np.diff(stats.chi2.cdf(edges, df)), float(stats.chi2.cdf(edges[0], df))


def tail_p(diff, seed_var, task_var, seeds: int):
    """Two-sided p-value of ``diff = 0`` that integrates over the seeds' part of the variance instead of fixing its
    degrees of freedom: the seeds' part, known to S - 1 degrees of freedom, is seed_var · (S - 1) / U with U
    chi-square; the tasks' part, known to T - 1, is taken as known.  Exactly the t test on the seed means when
    the tasks' part is zero; valid in the far tail, where Holm's correction looks (docs/statistics.md)."""
    u, w, below = _chi2_grid(seeds - 1)
    diff, seed_var, task_var = (np.asarray(x, dtype=float)[..., None] for x in (diff, seed_var, task_var))
    z = np.abs(diff) / np.sqrt(seed_var * (seeds - 1) / u + task_var)
    return (2 * stats.norm.sf(z) * w).sum(-1) + below  # the mass below the grid counted as p = 1


def mean_squares(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-way ANOVA mean squares (seeds, tasks, residual) of [..., seeds, tasks] arrays, at least 2 × 2 each."""
    s, t = d.shape[-2:]
    seed_m, task_m = d.mean(-1, keepdims=True), d.mean(-2, keepdims=True)
    grand = d.mean((-2, -1), keepdims=True)
    ms_seed = t * ((seed_m - grand) ** 2).sum((-2, -1)) / (s - 1)
    ms_task = s * ((task_m - grand) ** 2).sum((-2, -1)) / (t - 1)
    ms_res = ((d - seed_m - task_m + grand) ** 2).sum((-2, -1)) / ((s - 1) * (t - 1))
    return ms_seed, ms_task, ms_res


def crossed(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, seeds' part and tasks' part of its variance, degrees of freedom) of [..., seeds, tasks] arrays with
    at least two seeds and two tasks: the interval of ``paired_interval``, for many arrays at once."""
    s, t = d.shape[-2:]
    return (d.mean((-2, -1)), *crossed_variance(*mean_squares(d), s, t))


def half_width(se, df, level: float = LEVEL):
    """Half the width of the t interval at ``level``."""
    return stats.t.ppf((1 + level) / 2, df) * se


def crossed_variance(ms_seed, ms_task, ms_res, seeds: int, tasks: int):
    """(seeds' part, tasks' part, degrees of freedom) of the estimated variance of the mean of a crossed
    [seeds, tasks] design, from its mean squares (numbers or arrays): the docstring's estimator."""
    ms_seed, ms_task, ms_res = (np.asarray(x, dtype=float) for x in (ms_seed, ms_task, ms_res))
    cells = seeds * tasks
    excess = np.maximum(ms_task - ms_res, 0.0)  # the task variance beyond the residual, times seeds
    kept = excess > 0
    weighted = DF_SEED_WEIGHT * ms_seed
    den = weighted ** 2 / (seeds - 1) + kept * (ms_task ** 2 / (tasks - 1) + ms_res ** 2 / ((seeds - 1) * (tasks - 1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(den > 0, (weighted + excess) ** 2 / den, np.inf)
    df = np.maximum(np.floor(df), seeds - 1)  # rounded down, never below the seeds' own degrees of freedom
    return ms_seed / cells, excess / cells, df


def _parts(d: np.ndarray) -> tuple[float, float, float]:
    """(seeds' part, tasks' part, degrees of freedom) of the variance of ``d.mean()``."""
    s, t = d.shape
    if s >= 2 and t >= 2:
        _, seed_var, task_var, df = crossed(d)
        return float(seed_var), float(task_var), float(df)
    if s >= 2:  # one task: the seeds are the only replication
        return float(d[:, 0].var(ddof=1) / s), 0.0, float(s - 1)
    if t >= 2:  # one seed: the tasks only (not conclusive, flagged by MIN_SEEDS)
        return 0.0, float(d[0].var(ddof=1) / t), float(t - 1)
    return math.nan, math.nan, math.nan


def paired_interval(ref: np.ndarray, other: np.ndarray, level: float = LEVEL) -> Interval:
    """The interval of the module docstring on two [seeds, tasks] arrays (``other - ref``)."""
    ref, other = np.asarray(ref, dtype=float), np.asarray(other, dtype=float)
    if ref.ndim != 2 or ref.shape != other.shape or ref.size == 0:
        raise ValueError(f"paired arrays must be [seeds, tasks] of one shape, got {ref.shape} and {other.shape}")
    if not (np.isfinite(ref).all() and np.isfinite(other).all()):
        raise ValueError("paired arrays must be finite")
    d = other - ref
    seed_var, task_var, df = _parts(d)
    se = math.sqrt(seed_var + task_var) if math.isfinite(seed_var + task_var) else math.nan
    half = float(half_width(se, df, level)) if se > 0 else 0.0 if se == 0 else math.nan
    diff = float(d.mean())
    return Interval(diff, diff - half, diff + half, float(ref.mean()), d.shape[0], d.shape[1], se, df,
                    tuple(float(x) for x in d.mean(1)), seed_var, task_var, level)


# -- comparisons, Holm, and the count rule -----------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """One comparison of a claim: ``ref`` (the estimator the claim says is better) against ``other`` in ``group``
    (the experiment); ``tests`` > 1 when it is the best of that many chances (its interval is then at the
    Bonferroni level, and its p-value counts them)."""
    where: str
    ref: str
    other: str
    result: Interval
    group: str = ""
    tests: int = 1

    @property
    def outcome(self) -> str:
        return self.result.outcome

    @property
    def p(self) -> float:
        return min(1.0, self.tests * self.result.p_tail)


def holm(p: Sequence[float], alpha: float = 1 - LEVEL) -> np.ndarray:
    """Which of the p-values Holm's step-down procedure rejects at family-wise level ``alpha`` (NaN: never)."""
    p = np.asarray(p, dtype=float)
    out = np.zeros(p.size, dtype=bool)
    order = np.argsort(np.where(np.isnan(p), np.inf, p), kind="stable")
    for rank, i in enumerate(order):
        if not p[i] <= alpha / (p.size - rank):
            break
        out[i] = True
    return out


def decisive(comparisons: Sequence[Comparison], family: Sequence[Comparison] | None = None) -> list[str]:
    """Each comparison's outcome after Holm's correction over ``family`` (default: the comparisons themselves):
    SUPPORTS or CONTRADICTS where it is decisive, UNDECIDED otherwise."""
    family = list(comparisons if family is None else family)
    passed = {id(c) for c, ok in zip(family, holm([c.p for c in family])) if ok}
    return [c.outcome if id(c) in passed and c.outcome in (SUPPORTS, CONTRADICTS) else UNDECIDED
            for c in comparisons]


def needed(n: int, share: float = ALL) -> int:
    """How many of ``n`` comparisons must support a claim whose words need ``share`` of them."""
    if share >= 1:
        return n
    return n // 2 + 1 if share <= MAJORITY else math.ceil(share * n - 1e-9)


def count_rule(outcomes: Sequence[str], strong: Sequence[str], share: float = ALL) -> str:
    """The rule of RULES on the outcomes of a claim's comparisons (``outcomes``: at their own level; ``strong``:
    after Holm, from ``decisive``)."""
    n = len(outcomes)
    if n == 0:
        return UNTESTABLE
    need = needed(n, share)
    if list(outcomes).count(SUPPORTS) >= need:
        return HOLDS
    if list(strong).count(CONTRADICTS) > n - need:
        return NOT_HOLD
    return IN_PART if SUPPORTS in strong else NOT_SHOWN


def parts_rule(parts: Sequence[str | None]) -> str:
    """A claim of several parts, each a verdict rule (None: no data for it)."""
    known = [p for p in parts if p not in (None, UNTESTABLE)]
    if not known:
        return UNTESTABLE
    if len(known) == len(parts) and all(p == HOLDS for p in known):
        return HOLDS
    if HOLDS in known:
        return IN_PART
    return NOT_HOLD if NOT_HOLD in known else NOT_SHOWN


@dataclass(frozen=True)
class Verdict:
    """What a claim's rule gives (``rule``), the deciding numbers, lines that break them down (by part, or by
    table), and why the verdict is not conclusive (``reasons``; none = conclusive).  A verdict with a number that
    could not be computed (``computable`` false) always has a reason, so it is never shown as holding."""
    rule: str
    evidence: str
    reasons: tuple[str, ...] = ()
    computable: bool = True
    breakdown: tuple[str, ...] = ()

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


def preset_reasons(preset: str) -> list[str]:
    return [] if preset == "full" else [f"preset {preset}, not full"]


def comparison_reasons(comparisons: Sequence[Comparison], preset: str) -> list[str]:
    """Why verdicts on these comparisons are not conclusive: a reduced preset, too few seeds, a failed number."""
    reasons = preset_reasons(preset)
    seeds = min(c.result.seeds for c in comparisons)
    if seeds < MIN_SEEDS:
        reasons.append(f"{seeds} training seed{'s' if seeds > 1 else ''}, fewer than {MIN_SEEDS}")
    failed = sum(c.outcome == NOT_COMPUTABLE for c in comparisons)
    if failed:
        reasons.append(f"{failed} comparison{'s' if failed > 1 else ''} could not be computed")
    return reasons


def judge(comparisons: Sequence[Comparison], preset: str, share: float = ALL, claimed: str = "",
          family: Sequence[Comparison] | None = None) -> Verdict:
    """The verdict of a claim made of comparisons (Holm over ``family``, default the comparisons); not
    conclusive with fewer than MIN_SEEDS seeds, a reduced preset or an outcome that could not be computed."""
    outcomes = [c.outcome for c in comparisons]
    strong = decisive(comparisons, family)
    rule = count_rule(outcomes, strong, share)
    if rule == UNTESTABLE:
        return Verdict(rule, "no comparison in this configuration")
    reasons = comparison_reasons(comparisons, preset)
    failed = NOT_COMPUTABLE in outcomes
    return Verdict(rule, summary(comparisons, strong, share, claimed), tuple(reasons), computable=not failed)


def counts(outcomes: Sequence[str], strong: Sequence[str]) -> str:
    """'supports k of n (d decisive), contradicts m (e decisive)'."""
    return (f"supports {list(outcomes).count(SUPPORTS)} of {len(outcomes)} ({list(strong).count(SUPPORTS)} "
            f"decisive), contradicts {list(outcomes).count(CONTRADICTS)} ({list(strong).count(CONTRADICTS)} decisive)")


def summary(comparisons: Sequence[Comparison], strong: Sequence[str], share: float = ALL, claimed: str = "") -> str:
    """The deciding numbers: supports and contradictions (decisive ones after Holm), what the words need, the
    median relative difference and the median smallest detectable difference."""
    n = len(comparisons)
    need = "all needed" if share >= 1 else f"{needed(n, share)} needed"
    rel = np.array([c.result.rel for c in comparisons], dtype=float)
    mdd = np.array([c.result.mdd / c.result.base if c.result.base else math.nan for c in comparisons], dtype=float)
    side = f" (positive: {claimed})" if claimed else ""
    words = f"{counts([c.outcome for c in comparisons], strong)}; {need}"
    if np.isfinite(rel).any():
        words += f"; median relative difference {np.nanmedian(rel):+.1%}{side}"
    if np.isfinite(mdd).any():
        words += f", median smallest detectable {np.nanmedian(mdd):.1%}"
    return words


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


def r_squared(k: Sequence[float], y: Sequence[float]) -> float:
    """Share of the variance of ``y`` a straight line in K explains (NaN with fewer than three points, 0 for a
    constant)."""
    k, y = _finite(k, y)
    if k.size < 3:
        return math.nan
    resid = y - np.polyval(np.polyfit(k, y, 1), k)
    total = float(((y - y.mean()) ** 2).sum())
    return 1 - float((resid ** 2).sum()) / total if total > 0 else 0.0  # constant: no growth for a line to explain


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
    """One estimator's rows of a profile at several K, sorted by K (``valid``: a time not flagged); times are the
    median, fastest and slowest of the timed rounds."""
    k: np.ndarray
    peak_bytes: np.ndarray
    ms: np.ndarray
    valid: np.ndarray
    ms_min: np.ndarray | None = None
    ms_max: np.ndarray | None = None

    def times(self, min_k: float = 0) -> dict[float, tuple[float, float, float]]:
        """K -> (median, fastest, slowest) ms, valid times at K >= ``min_k`` only."""
        lo = self.ms if self.ms_min is None else self.ms_min
        hi = self.ms if self.ms_max is None else self.ms_max
        return {float(k): (float(m), float(a), float(b)) for k, m, a, b, ok in zip(self.k, self.ms, lo, hi, self.valid)
                if ok and k >= min_k}


def profile_reasons(preset: str, repeats: int) -> list[str]:
    reasons = preset_reasons(preset)
    if repeats < MIN_SEEDS:
        reasons.append(f"timed in {repeats} round{'s' if repeats != 1 else ''}, fewer than {MIN_SEEDS}")
    return reasons


def within(lo: float, hi: float, band_lo: float, band_hi: float) -> str:
    """A measured range [lo, hi] against a band: inside it supports, entirely outside contradicts."""
    if not all(math.isfinite(x) for x in (lo, hi)):
        return NOT_COMPUTABLE
    if band_lo <= lo and hi <= band_hi:
        return SUPPORTS
    return CONTRADICTS if hi < band_lo or lo > band_hi else UNDECIDED


PART_RULE = {SUPPORTS: HOLDS, CONTRADICTS: NOT_HOLD, UNDECIDED: NOT_SHOWN}


@dataclass
class _Parts:
    """The parts of a profile claim as they are judged: outcome, words, and why not conclusive."""
    names: Sequence[str]
    reasons: list[str]
    outcomes: dict[str, str | None] = None
    words: list[str] = None
    failed: bool = False

    def __post_init__(self):
        self.outcomes, self.words = {n: None for n in self.names}, []

    def set(self, name: str, outcome: str, words: str) -> None:
        if outcome == NOT_COMPUTABLE:
            self.reasons.append(f"{name}: a number could not be computed")
            self.failed = True
        else:
            self.outcomes[name] = outcome
        self.words.append(words)

    def verdict(self) -> Verdict:
        rules = [PART_RULE.get(o) for o in self.outcomes.values()]
        rule = parts_rule(rules)
        lines = tuple(f"{n}: {PART_RULE[o] if o else 'no data'}" for n, o in self.outcomes.items())
        if rule == UNTESTABLE and not self.failed:
            return Verdict(rule, "; ".join(self.words) or "no profile rows for it in this configuration")
        return Verdict(rule, "; ".join(self.words), tuple(self.reasons), not self.failed, lines)


MEMORY_PARTS = ("MAML fills the GPU near K", "MAML grows linearly", "A-MAML stays flat", "A-MAML's share at K")


def memory_verdict(maml: Sweep | None, amaml: Sweep | None, gpu_bytes: float, maml_full_at: float,
                   amaml_steps: float, amaml_share: float, preset: str, repeats: int) -> Verdict:
    """Figure 3 in four parts: unrolled MAML fills the GPU within a factor NEAR of ``maml_full_at``; its memory
    is a straight line in K (R² >= LINEAR_R2); A-MAML's grows by at most FLAT_SHARE of MAML's bytes per step; and
    A-MAML uses less than ``amaml_share`` of the GPU at ``amaml_steps``."""
    parts = _Parts(MEMORY_PARTS, profile_reasons(preset, repeats))
    gb, mb = gpu_bytes / GB, MB
    maml_rate = slope(maml.k, maml.peak_bytes) if maml is not None else math.nan
    if maml is not None:
        k_full = steps_to_fill(maml.k, maml.peak_bytes, gpu_bytes)
        lo, hi = maml_full_at / NEAR, maml_full_at * NEAR
        where = f"K ≈ {k_full:,.0f}" if math.isfinite(k_full) else "never (it does not grow)"
        near = NOT_COMPUTABLE if math.isnan(k_full) else CONTRADICTS if math.isinf(k_full) else \
            within(k_full, k_full, lo, hi)
        parts.set(MEMORY_PARTS[0], near,
                  f"unrolled MAML grows {maml_rate / mb:.3g} MB per inner step and would fill {gb:g} GB at {where} "
                  f"(near {maml_full_at:g}: {lo:g}–{hi:g})")
        r2 = r_squared(maml.k, maml.peak_bytes)
        linear = UNDECIDED if math.isnan(r2) else SUPPORTS if r2 >= LINEAR_R2 and maml_rate > 0 else CONTRADICTS
        parts.set(MEMORY_PARTS[1], linear, f"a line in K explains {r2:.3f} of its variance (linear: ≥ {LINEAR_R2:g})"
                  if math.isfinite(r2) else "fewer than three measured K to tell a line")
    if amaml is not None:
        amaml_rate = slope(amaml.k, amaml.peak_bytes)
        if maml is not None:
            flat = amaml_rate <= FLAT_SHARE * maml_rate if math.isfinite(amaml_rate * maml_rate) else None
            parts.set(MEMORY_PARTS[2], NOT_COMPUTABLE if flat is None else SUPPORTS if flat else CONTRADICTS,
                      f"A-MAML grows {amaml_rate / mb:.3g} MB per inner step (flat: ≤ {FLAT_SHARE:.0%} of MAML's)")
        at, measured = value_at(amaml.k, amaml.peak_bytes, amaml_steps)
        share = at / gpu_bytes
        parts.set(MEMORY_PARTS[3], NOT_COMPUTABLE if not math.isfinite(at) else
                  SUPPORTS if share < amaml_share else CONTRADICTS,
                  f"A-MAML {at / mb:,.1f} MB at K = {amaml_steps:g} ({'measured' if measured else 'extrapolated'}) "
                  f"= {100 * share:.2g}% of {gb:g} GB (holds if < {amaml_share:.0%})")
    return parts.verdict()


TIME_PARTS = ("comparable to the first-order methods", "much smaller than MAML's")


def time_verdict(amaml: Sweep | None, peers: dict[str, Sweep], maml: Sweep | None, preset: str, repeats: int,
                 maml_amaml: Sweep | None = None, trained: bool = True) -> Verdict:
    """Figure 4 in two parts.  Comparable: at every K >= MIN_TIMED_K both timed validly (at the trained θ when
    ``trained``), the range of A-MAML's time over each peer's, from the fastest to the slowest timed round, lies
    within COMPARABLE either way (entirely outside: contradicts).  Much smaller: at the largest K unrolled MAML
    and A-MAML (``maml_amaml``, default ``amaml``) both timed validly, MAML takes at least MUCH_SMALLER times as
    long in its fastest round as A-MAML in its slowest (less in its slowest than A-MAML's fastest: contradicts)."""
    parts = _Parts(TIME_PARTS, profile_reasons(preset, repeats))
    if not trained and amaml is not None:
        parts.reasons.append("times at the initial θ only: the profile has no trained θ")
    if amaml is not None and peers:
        mine = amaml.times(MIN_TIMED_K)
        ranges = [(mine[k][1] / b, mine[k][2] / a) for s in peers.values() for k, (_, a, b) in
                  s.times(MIN_TIMED_K).items() if k in mine]
        if ranges:
            each = [within(lo, hi, 1 / COMPARABLE, COMPARABLE) for lo, hi in ranges]
            outcome = NOT_COMPUTABLE if NOT_COMPUTABLE in each else CONTRADICTS if CONTRADICTS in each else \
                SUPPORTS if all(o == SUPPORTS for o in each) else UNDECIDED
            parts.set(TIME_PARTS[0], outcome,
                      f"A-MAML / {', '.join(peers)}{' at the trained θ' if trained else ''}: "
                      f"×{min(r[0] for r in ranges):.2g}–×{max(r[1] for r in ranges):.2g} over {len(ranges)} "
                      f"(K ≥ {MIN_TIMED_K}, estimator) pairs, {each.count(SUPPORTS)} within ×{COMPARABLE:g} either "
                      f"way over every timed round, {each.count(CONTRADICTS)} outside it")
    base = maml_amaml or amaml
    if base is not None and maml is not None:
        mine, theirs = base.times(), maml.times()
        both = sorted(k for k in theirs if k in mine)
        if both:
            k = both[-1]
            lo, hi = theirs[k][1] / mine[k][2], theirs[k][2] / mine[k][1]
            parts.set(TIME_PARTS[1], within(lo, hi, MUCH_SMALLER, math.inf),
                      f"MAML / A-MAML at K = {k:g}: ×{theirs[k][0] / mine[k][0]:.3g} (×{lo:.3g}–×{hi:.3g} over the "
                      f"rounds; holds if ≥ ×{MUCH_SMALLER:g})")
    return parts.verdict()
