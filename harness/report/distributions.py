"""The four ``scipy.stats`` functions the report's statistics use, without importing ``scipy.stats``.

Why: ``import scipy.stats`` cost 0.5 to 0.8 s of every report build
(benchmarks/README.md, Report), against about 0.2 s for ``scipy.special``,
which holds the numerical kernels those functions call. Each function here
does what its scipy.stats counterpart does, on the same kernels, so the values
are the same to the last bit (the tables store p-values in full precision);
tests/test_stats.py compares them with scipy.stats:

* ``rank_rows``: average ranks within each row (``rankdata(axis=1)``), exact half-integers;
* ``friedman_chi2``: ``friedmanchisquare``'s statistic, same formula, and its
  p from ``scipy.special.chdtrc`` as scipy takes it;
* ``sign_test_p``: ``binomtest(k, n, 0.5)``'s two-sided p-value, scipy's
  algorithm on scipy's binomial kernels (``scipy.special._ufuncs``; when a
  scipy version lacks them, ``binomtest`` itself);
* ``studentized_range_q``: ``studentized_range.ppf(1 - alpha, k, inf)`` from a
  table of scipy's values at alpha 0.05 (the report's alpha); any other
  (k, alpha) asks scipy.stats.
"""
from __future__ import annotations

import math

import numpy as np

# scipy.stats.studentized_range.ppf(0.95, k, inf) for k = 2..30 (scipy 1.17)
Q_95 = {2: 2.771807648699355, 3: 3.314493155398122, 4: 3.6331595749026278, 5: 3.857655510378623,
        6: 4.030092053180576, 7: 4.169554155006547, 8: 4.286309409349043, 9: 4.38650911549537,
        10: 4.474124221725907, 11: 4.551863584065974, 12: 4.621655471868518, 13: 4.684919847313499,
        14: 4.7427317076846975, 15: 4.795923860431186, 16: 4.845154183957343, 17: 4.890951125576789,
        18: 4.933745358126922, 19: 4.973892348748306, 20: 5.0116887941184425, 21: 5.0473848150087655,
        22: 5.081193155799909, 23: 5.1132962282719765, 24: 5.143851577247147, 25: 5.17299617312959,
        26: 5.200849820280358, 27: 5.227517890554401, 28: 5.25309353580552, 29: 5.27765949383823,
        30: 5.30128957403117}


def _rank_row(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks (1 = smallest; ties share their mean rank) and the sizes of the tie groups."""
    order = np.argsort(row, kind="mergesort")
    ordered = row[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(new)
    counts = np.diff(np.r_[starts, len(row)])
    ranks = np.empty(len(row))
    ranks[order] = (starts + (counts + 1) / 2.0)[np.cumsum(new) - 1]
    return ranks, counts


def rank_rows(matrix) -> np.ndarray:
    """Average ranks within each row; a row holding NaN is all NaN (as ``rankdata``'s default)."""
    values = np.asarray(matrix, dtype=float)
    out = np.full(values.shape, np.nan)
    for i, row in enumerate(values):
        if not np.isnan(row).any():
            out[i] = _rank_row(row)[0]
    return out


def friedman_chi2(matrix) -> tuple[float, float]:
    """Friedman's chi-square and its p over blocks (rows) of k >= 3 treatments (columns), with tie correction."""
    from scipy.special import chdtrc

    values = np.asarray(matrix, dtype=float)
    n, k = values.shape
    ranked = [_rank_row(row) for row in values]
    data = np.array([r for r, _ in ranked])
    t = np.concatenate([c for _, c in ranked]).astype(float)
    ties = np.sum(t * (t * t - 1))
    c = 1 - ties / (k * (k * k - 1) * n)
    ssbn = np.sum(np.sum(data, axis=0) ** 2, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):   # every block all tied: NaN, as scipy
        statistic = (12.0 / (k * n * (k + 1)) * ssbn - 3 * n * (k + 1)) / np.float64(c)
    return float(statistic), float(chdtrc(np.float64(k - 1), statistic))


def _binomial(n: int):
    """pmf, cdf and sf of Binomial(n, 1/2) as ``scipy.stats.binom`` evaluates them (its kernels, its edges)."""
    from scipy.special import _ufuncs as kernels

    def pmf(x):
        return float(kernels._binom_pmf(x, n, 0.5)) if 0 <= x <= n else 0.0

    def cdf(x):
        x = math.floor(x)
        return 0.0 if x < 0 else 1.0 if x >= n else float(kernels._binom_cdf(x, n, 0.5))

    def sf(x):
        x = math.floor(x)
        return 1.0 if x < 0 else 0.0 if x >= n else float(kernels._binom_sf(x, n, 0.5))

    return pmf, cdf, sf


def _search(a, d: float, lo: int, hi: int) -> int:
    """scipy's ``_binary_search_for_binom_tst``: i in [lo, hi] with a(i) <= d < a(i + 1)."""
    while lo < hi:
        mid = lo + (hi - lo) // 2
        value = a(mid)
        if value < d:
            lo = mid + 1
        elif value > d:
            hi = mid - 1
        else:
            return mid
    return lo if a(lo) <= d else lo - 1


def sign_test_p(k: int, n: int) -> float:
    """``scipy.stats.binomtest(k, n, 0.5, alternative="two-sided").pvalue``, step by step."""
    try:
        pmf, cdf, sf = _binomial(n)
    except (ImportError, AttributeError):   # a scipy without these private kernels: the original
        from scipy.stats import binomtest

        return float(binomtest(k, n, 0.5, alternative="two-sided").pvalue)
    d, rerr, half = pmf(k), 1 + 1e-7, 0.5 * n
    if k == half:
        return 1.0
    if k < half:
        ix = _search(lambda x: -pmf(x), -d * rerr, math.ceil(half), n)
        y = n - ix + int(d * rerr == pmf(ix))
        pval = cdf(k) + sf(n - y)
    else:
        ix = _search(pmf, d * rerr, 0, math.floor(half))
        pval = cdf(ix) + sf(k - 1)
    return min(1.0, pval)


def studentized_range_q(k: int, alpha: float) -> float:
    """The (1 - alpha) quantile of the studentized range of k means, infinite degrees of freedom."""
    if alpha == 0.05 and k in Q_95:
        return Q_95[k]
    from scipy.stats import studentized_range   # rare: more methods than the table, or another alpha

    return float(studentized_range.ppf(1 - alpha, k, np.inf))
