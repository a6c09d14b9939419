"""The statistics behind every verdict: a paired sign test, Holm's correction, a stratified bootstrap.

A claim is judged on per-pair *effects* signed so that a positive effect
supports it. |effect| at or below the claim's tie tolerance is a tie: counted
and reported, but dropped from the sign test (an exact binomial test of the
supporting share against 1/2, two-sided, ``scipy.stats.binomtest``). The
p-values of the claims on one page are corrected together with Holm's
step-down method, so the chance that the page shows any definite verdict
for a claim that is really a coin flip stays at most ``ALPHA``. The effect is
summarised by its median with a paired bootstrap confidence interval that
resamples pairs (seeds) within each stratum (a dataset/loss section), with a
fixed generator seed so the page is the same on every build.

scipy.stats is imported where a test needs it, not with this module: importing
it costs nearly a second, and the report's main process (which reads the
constants and rules here) leaves the tests to its statistics job
(``harness.report.verdicts``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
ALPHA = 0.05
RESAMPLES = 2000
LEVEL = 0.95
BOOTSTRAP_SEED = 20240601
MIN_AGAINST = 3     # a section whose every untied pair (at least this many) goes against the pooled result contradicts it


@lru_cache(maxsize=4096)
def sign_test(support: int, against: int) -> float:
    """Two-sided exact sign test p-value of ``support`` successes among ``support + against`` untied pairs."""
    from scipy.stats import binomtest

    n = support + against
    if n == 0:
        return 1.0
    return float(binomtest(support, n, 0.5, alternative="two-sided").pvalue)


def holm(pvalues) -> np.ndarray:
    """Holm-adjusted p-values (step-down, monotone, at most 1); NaN entries stay NaN and do not count."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    running = 0.0
    for rank, index in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out


def holm_within(p: float, others) -> float:
    """The Holm-adjusted value of ``p`` in the family made of ``p`` and the ``others``."""
    return float(holm([p, *others])[0])


def min_pairs(alpha: float = ALPHA, m: int = 1) -> int:
    """The fewest untied pairs with which the sign test can reach ``alpha`` after Holm over ``m`` tests.

    Holm's smallest threshold is alpha/m, and n pairs that all agree give the
    smallest possible two-sided p = 2 * 0.5**n, so n >= log2(2 m / alpha).
    """
    n = max(1, math.ceil(math.log2(2 * max(1, m) / alpha)))
    while 2 * 0.5 ** n > alpha / max(1, m):     # guard against rounding at the boundary
        n += 1
    return n


def _median(values: np.ndarray, axis=None):
    # inverted_cdf: always an observed effect (no averaging, so +-inf from diverged runs stay meaningful)
    return np.quantile(values, 0.5, axis=axis, method="inverted_cdf")


def bootstrap_ci(effects, strata, resamples: int = RESAMPLES, level: float = LEVEL,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile interval of the median effect, resampling pairs with replacement within each stratum."""
    effects = np.asarray(effects, dtype=float)
    strata = np.asarray(strata, dtype=object)
    if effects.size == 0:
        return np.nan, np.nan
    owns = [effects[strata == label] for label in sorted(set(strata.tolist()), key=str)]
    picks = _resample_indices(seed, resamples, tuple(own.size for own in owns))
    medians = _median(np.concatenate([own[pick] for own, pick in zip(owns, picks)], axis=1), axis=1)
    tail = (1 - level) / 2
    return (float(np.quantile(medians, tail, method="inverted_cdf")),
            float(np.quantile(medians, 1 - tail, method="inverted_cdf")))


@lru_cache(maxsize=256)
def _resample_indices(seed: int, resamples: int, sizes: tuple) -> tuple:
    """The pairs ``bootstrap_ci`` draws: per stratum of ``sizes[i]`` pairs, a (resamples, size) index array,
    from one generator seeded ``seed``, drawn stratum after stratum.

    They depend on the sizes alone, and a page asks for the same sizes again and
    again (every section of a claim at every budget), so they are drawn once.
    Read-only: the cache hands out the same arrays.
    """
    rng = np.random.default_rng(seed)
    out = []
    for size in sizes:
        pick = rng.integers(0, size, size=(resamples, size))
        pick.flags.writeable = False
        out.append(pick)
    return tuple(out)


@dataclass
class Evidence:
    """The effects of one claim at one budget (pooled, or one section): counts, test and summary."""

    pairs: int = 0
    ties: int = 0
    support: int = 0
    against: int = 0
    p: float = float("nan")
    median: float = float("nan")
    ci: tuple = (float("nan"), float("nan"))
    sections: dict = field(default_factory=dict)

    @property
    def untied(self) -> int:
        return self.support + self.against

    @property
    def direction(self) -> int:
        """+1 when more untied pairs support the claim, -1 when more go against, 0 otherwise."""
        return int(np.sign(self.support - self.against))


def evidence(effects, tie: float, strata=None, seed: int = BOOTSTRAP_SEED, resamples: int = RESAMPLES) -> Evidence:
    """Counts, sign-test p, median effect and its stratified bootstrap CI; per-stratum evidence in ``sections``.

    ``resamples=0`` skips the interval (simulations that only need the verdict).
    """
    effects = np.asarray(effects, dtype=float)
    strata = np.asarray(["all"] * effects.size if strata is None else strata, dtype=object)
    out = _counts(effects, tie)
    if effects.size:
        out.median = float(_median(effects))
        out.ci = bootstrap_ci(effects, strata, resamples, seed=seed) if resamples else out.ci
    for label in sorted(set(strata.tolist()), key=str):
        own = effects[strata == label]
        section = _counts(own, tie)
        section.median = float(_median(own))
        section.ci = bootstrap_ci(own, np.zeros(own.size), resamples, seed=seed) if resamples else section.ci
        out.sections[label] = section
    return out


def _counts(effects: np.ndarray, tie: float) -> Evidence:
    support = int(np.sum(effects > tie))
    against = int(np.sum(effects < -tie))
    return Evidence(pairs=int(effects.size), ties=int(effects.size) - support - against,
                    support=support, against=against, p=sign_test(support, against))


def judge(effects, tie: float, strata=None, alpha: float = ALPHA, others=(), resamples: int = RESAMPLES):
    """One claim on its own: (verdict, reason, Evidence), Holm over it and the ``others`` claims' p-values.

    Each section is corrected over the same number of claims (as if every
    other claim were tested on it too, the conservative case).
    """
    ev = evidence(effects, tie, strata, resamples=resamples)
    m = 1 + len(others)
    p_adj = holm_within(ev.p, others)
    sections = {label: (s, holm_within(s.p, others)) for label, s in ev.sections.items()}
    verdict, reason = decide(ev, p_adj, alpha, m, sections)
    return verdict, reason, ev


def _significant(ev: Evidence, p_adj: float, alpha: float) -> int:
    """+1 / -1 when ``ev`` is a significant majority for / against the claim, else 0."""
    return ev.direction if ev.untied and p_adj <= alpha else 0


def contradicts(ev: Evidence, p_adj: float, direction: int, alpha: float = ALPHA) -> bool:
    """Whether a section goes against ``direction``: significantly, or with every one of >= 3 untied pairs."""
    if _significant(ev, p_adj, alpha) == -direction:
        return True
    unanimous = ev.against if direction > 0 else ev.support
    return ev.untied >= MIN_AGAINST and unanimous == ev.untied


def decide_section(ev: Evidence, p_adj: float, alpha: float, m: int) -> tuple[str, str]:
    """The verdict of one section on its own (no cross-section check) and why."""
    return _decide(ev, p_adj, alpha, m, {})


def decide(ev: Evidence, p_adj: float, alpha: float, m: int, sections: dict) -> tuple[str, str]:
    """The pooled verdict and its reason; ``sections`` maps label -> (Evidence, Holm-adjusted p)."""
    return _decide(ev, p_adj, alpha, m, sections)


def _decide(ev: Evidence, p_adj: float, alpha: float, m: int, sections: dict) -> tuple[str, str]:
    if ev.pairs == 0:
        return INCONCLUSIVE, "no pairs"
    sig = {label: _significant(s, q, alpha) for label, (s, q) in sections.items()}
    pro = sorted(label for label, d in sig.items() if d > 0)
    con = sorted(label for label, d in sig.items() if d < 0)
    if pro and con:
        return INCONCLUSIVE, (f"the sections disagree: significantly supported on {', '.join(pro)} and "
                              f"contradicted on {', '.join(con)}")
    needed = min_pairs(alpha, m)
    counted = f"{ev.support} of {ev.untied} untied pairs support it"
    # the Holm-adjusted p decides; "too few pairs" explains a p that could not have reached alpha. (A
    # claim ranked after others in Holm's step-down can be significant with fewer pairs than `needed`,
    # which is the count for the smallest threshold alpha/m.)
    if p_adj > alpha and ev.untied < needed:
        return INCONCLUSIVE, (f"too few pairs: {ev.untied} untied ({ev.ties} ties), at least {needed} are needed "
                              f"to reach alpha {alpha:g} after Holm over {m} claim(s)")
    if p_adj > alpha:
        return INCONCLUSIVE, f"no significant majority: {counted} (Holm p {p_adj:.3g} > {alpha:g})"
    direction = ev.direction
    against = sorted(label for label, (s, q) in sections.items() if contradicts(s, q, direction, alpha))
    if against:
        word = "supported" if direction > 0 else "contradicted"
        return INCONCLUSIVE, (f"the sections disagree: {word} overall ({counted}) but the other way on "
                              f"{', '.join(against)}")
    return (HOLDS if direction > 0 else FAILS), f"{counted} (Holm p {p_adj:.3g} <= {alpha:g})"


# --------------------------------------------------------------------------- ranks across sections
def average_ranks(matrix) -> np.ndarray:
    """Mean rank of each column over the rows (rank 1 = lowest value; ties share the mean rank)."""
    from scipy.stats import rankdata

    return rankdata(np.asarray(matrix, dtype=float), axis=1).mean(axis=0)


def friedman(matrix) -> tuple[float, float]:
    """Friedman's chi-square and p over complete blocks (rows = sections, columns = methods)."""
    from scipy.stats import friedmanchisquare

    values = np.asarray(matrix, dtype=float)
    if values.shape[0] < 2 or values.shape[1] < 3:
        return np.nan, np.nan
    result = friedmanchisquare(*values.T)
    return float(result.statistic), float(result.pvalue)


def nemenyi_cd(k: int, n: int, alpha: float = ALPHA) -> float:
    """The Nemenyi critical difference of average ranks for k methods over n blocks (Demsar 2006)."""
    from scipy.stats import studentized_range

    if k < 2 or n < 1:
        return np.nan
    q = studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6.0 * n)))
