"""Rank optimizers across datasets with a performance profile (Dolan and Moré, 2002).

For problem p (a dataset/loss section) and method s, t[p, s] is the median over
seeds of the work to reach the section's target loss (a seed that never reaches
it, diverged, failed or was not run counts as infinite work). The ratio
r[p, s] = t[p, s] / min_s t[p, s]; the profile rho_s(tau) is the share of
problems with r[p, s] <= tau. rho_s(1) is how often s was fastest, rho_s at
large tau how often it reached the target at all.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

PROFILE_RULE = (
    "Performance profile (Dolan and Moré 2002, as AlgoPerf uses): per dataset/loss section, the "
    "work an optimizer needs is the median over its seeds of the training seconds (or samples "
    "seen) to reach the section's target loss; a seed that never reaches it, diverged, failed "
    "or was not run counts as infinite. Ratio = work / best work in that section; the curve "
    "shows the share of sections whose ratio is at most tau. Score = area under the curve over "
    "log2(tau) from 0 to log2(tau_max), divided by log2(tau_max) (1 = fastest everywhere)."
)


def work_matrix(final_runs: pd.DataFrame, reach: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Sections x methods: median over seeds of ``measure`` at the target (inf if not reached)."""
    data = final_runs[["cell_id", "section", "method"]].copy()
    data["work"] = reach[measure].reindex(data["cell_id"]).to_numpy(dtype=float)
    data["work"] = data["work"].fillna(np.inf)
    table = data.groupby(["section", "method"])["work"].median().unstack("method")
    return table.fillna(np.inf)


def ratios(work: pd.DataFrame) -> pd.DataFrame:
    """Performance ratios; sections where no method reached the target are dropped."""
    best = work.min(axis=1)
    keep = np.isfinite(best)
    work, best = work[keep], best[keep]
    # a method that needs no work at all (target met at epoch 0) is the best possible
    best = best.where(best > 0, np.nan)
    out = work.div(best, axis=0)
    out = out.where(~(work == 0), 1.0).fillna(1.0)
    return out


def ranking(ratio: pd.DataFrame, tau_max: float | None = None) -> pd.DataFrame:
    """One row per method: fastest share, solved share, median ratio and the profile score."""
    if ratio.empty:
        return pd.DataFrame(columns=["method", "sections", "fastest", "reached", "median ratio", "score"])
    finite = ratio.to_numpy()[np.isfinite(ratio.to_numpy())]
    tau_max = tau_max or max(2.0, float(finite.max()) * 1.05 if finite.size else 2.0)
    grid = np.logspace(0, np.log2(tau_max), 400, base=2.0)
    rows = []
    for method in ratio.columns:
        r = ratio[method].to_numpy()
        rho = (r[None, :] <= grid[:, None]).mean(axis=1)
        x = np.log2(grid)
        score = float(np.sum(np.diff(x) * (rho[1:] + rho[:-1]) / 2) / np.log2(tau_max))
        rows.append({"method": method, "sections": len(r), "fastest": float(np.mean(r <= 1.0)),
                     "reached": float(np.mean(np.isfinite(r))),
                     "median ratio": float(np.median(r)), "score": score})
    out = pd.DataFrame(rows).sort_values(["score", "fastest"], ascending=False, kind="stable")
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out.reset_index(drop=True)


def profile_curve(ratio_column: np.ndarray, tau_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Step-function points (tau, rho) of one method's profile, for plotting."""
    r = np.sort(ratio_column[np.isfinite(ratio_column)])
    n = len(ratio_column)
    taus = np.concatenate([[1.0], r, [tau_max]])
    rho = np.concatenate([[np.mean(ratio_column <= 1.0)], np.arange(1, len(r) + 1) / n, [len(r) / n]])
    return taus, rho


def tau_max(ratio: pd.DataFrame) -> float:
    """Where a drawn profile ends: 1.5 x the largest finite ratio (at least 2), so every step shows."""
    finite = ratio.to_numpy()[np.isfinite(ratio.to_numpy())]
    return max(2.0, float(finite.max()) * 1.5 if finite.size else 2.0)
