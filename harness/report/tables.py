"""The report's tables: per dataset and loss, one row per optimizer.

Numbers are kept twice: a numeric frame (written as CSV, one column per mean
and std) and a formatted one (``mean ± std`` strings, for Markdown and HTML).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.frames import FAILED_STATUSES, OK_STATUSES, params_text

TARGET_FRACTION = 0.1
TARGET_RULE = (
    "Target loss of a dataset/loss section: L0 - 0.9 (L0 - L*), i.e. the training loss after "
    "90% of the best reduction: L0 is the mean epoch-0 training loss of the section's runs and "
    "L* the lowest mean (over seeds) final training loss of any optimizer in the section. "
    "A run reaches the target where its training loss first falls to it: between the last record "
    "above the target and the first at or below it, the epoch, samples seen and training seconds "
    "are interpolated linearly in the loss; they are averaged over the seeds that reached it."
)
SUMMARY_METRICS = (
    ("train_loss", "train loss"),
    ("test_loss", "test loss"),
    ("test_accuracy", "test accuracy"),
    ("test_balanced_accuracy", "balanced accuracy"),
    ("test_minority_recall", "minority recall"),
)
TO_TARGET = (("epoch", "epochs to target"), ("samples_seen", "samples to target"),
             ("train_seconds", "s to target"))


def section_targets(final_runs: pd.DataFrame) -> pd.DataFrame:
    """Per section: L0, L* (and which method reached it) and the target loss."""
    rows = []
    for section, group in final_runs.groupby("section", sort=True):
        ok = group[group["status"].isin(OK_STATUSES)]
        initial = float(np.nanmean(group["initial_train_loss"])) if group["initial_train_loss"].notna().any() else np.nan
        means = ok.groupby("method")["train_loss"].mean().dropna()
        means = means[np.isfinite(means)]
        if means.empty or not np.isfinite(initial):
            rows.append({"section": section, "initial_loss": initial, "best_loss": np.nan,
                         "best_method": "", "target_loss": np.nan})
            continue
        best = float(means.min())
        rows.append({"section": section, "initial_loss": initial, "best_loss": best,
                     "best_method": str(means.idxmin()),
                     "target_loss": best + TARGET_FRACTION * (initial - best)})
    return pd.DataFrame(rows, columns=["section", "initial_loss", "best_loss", "best_method", "target_loss"])


def first_reach(loss: np.ndarray, axes: dict, target: float) -> dict | None:
    """Where a run's loss first falls to ``target``, on each axis (``{name: values per record}``); None if never.

    The one interpolation the summary table, the fixed-target figure and its
    interactive twin share: between the last record above the target and the
    first at or below it, each axis moves linearly with the loss (records are
    per epoch, so without it every run would reach a target on a whole epoch).
    A run at or below the target at its first record reaches it there.
    """
    hit = np.flatnonzero(loss <= target)
    if not hit.size:
        return None
    i = int(hit[0])
    share = 0.0 if i == 0 else (loss[i - 1] - target) / (loss[i - 1] - loss[i])
    return {name: _between(values, i, share) for name, values in axes.items()}


def _finite_runs(rows: pd.DataFrame, final_runs: pd.DataFrame):
    """(cell_id, section, losses, {axis: values}) per final run: its finite-loss records in epoch order."""
    section_of = dict(zip(final_runs["cell_id"].tolist(), final_runs["section"].tolist()))
    data = rows[["cell_id", "epoch", "samples_seen", "train_seconds", "train_loss"]]
    data = data[np.isfinite(data["train_loss"]) & data["cell_id"].isin(list(section_of))]
    data = data.sort_values(["cell_id", "epoch"], kind="stable")
    # whole columns as arrays, sliced per run (a pandas group per run cost most of this)
    ids = data["cell_id"].tolist()
    loss = data["train_loss"].to_numpy(float)
    columns = {col: data[col].to_numpy(float) for col, _ in TO_TARGET}
    starts = [k for k in range(len(ids)) if k == 0 or ids[k] != ids[k - 1]]
    for a, b in zip(starts, starts[1:] + [len(ids)]):
        yield ids[a], section_of[ids[a]], loss[a:b], {col: values[a:b] for col, values in columns.items()}


def time_to_target(rows: pd.DataFrame, final_runs: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """Per run: the epoch, samples seen and seconds at which it first reached its section's target (``first_reach``)."""
    target_of = targets.set_index("section")["target_loss"]
    found = {}
    for cid, section, loss, axes in _finite_runs(rows, final_runs):
        at = first_reach(loss, axes, float(target_of.get(section, np.nan)))
        if at is not None:
            found[cid] = at
    first = pd.DataFrame.from_dict(found, orient="index", columns=[c for c, _ in TO_TARGET])
    out = pd.DataFrame(index=final_runs["cell_id"])
    for col, _ in TO_TARGET:
        out[col] = first[col].reindex(out.index) if len(first) else np.nan
    out["reached"] = out["epoch"].notna()
    return out


# the fixed-target view's targets: these shares of a section's best reduction L0 - L* (0.9 is the table's target)
FIXED_TARGET_SHARES = (0.5, 0.75, 0.9, 0.95, 0.99)
FIXED_TARGET_RULE = (
    "Fixed-target view (as IOHanalyzer and AlgoPerf show it): each section gets five target losses, "
    "L0 - s (L0 - L*) for s = 50%, 75%, 90%, 95% and 99% of the best reduction (L0 and L* as for the "
    "table's target, which is the 90% one). For every (final run, target) pair, the samples seen and training "
    "seconds at which the run first reaches the target are interpolated linearly between the epoch records "
    "around the crossing; an optimizer's curve is the share of its (run, target) pairs reached within x "
    "(an ECDF of time to target; pairs never reached keep it below 1)."
)


def fixed_target_times(rows: pd.DataFrame, final_runs: pd.DataFrame, targets: pd.DataFrame,
                       shares=FIXED_TARGET_SHARES) -> pd.DataFrame:
    """One row per (final run, target): section, method, share, target loss and where it was reached (NaN: never)."""
    frame = targets.set_index("section")
    initial_of, best_of = frame["initial_loss"].to_dict(), frame["best_loss"].to_dict()
    method_of = dict(zip(final_runs["cell_id"].tolist(), final_runs["method"].tolist()))
    never = {col: np.nan for col, _ in TO_TARGET}
    records, seen = [], set()
    for cid, section, loss, axes in _finite_runs(rows, final_runs):
        seen.add(cid)
        initial, best = initial_of.get(section, np.nan), best_of.get(section, np.nan)
        for share in shares:
            target = float(initial - share * (initial - best))
            at = first_reach(loss, axes, target) if np.isfinite(target) else None
            records.append({"cell_id": cid, "section": section, "method": method_of[cid], "share": share,
                            "target_loss": target, **(at or never)})
    for cid, section, method in final_runs[["cell_id", "section", "method"]].itertuples(index=False):
        if cid not in seen:   # no finite record at all (failed before its first record): never reached
            records.extend({"cell_id": cid, "section": section, "method": method, "share": share,
                            "target_loss": np.nan, **never} for share in shares)
    columns = ["cell_id", "section", "method", "share", "target_loss"] + [c for c, _ in TO_TARGET]
    return pd.DataFrame(records, columns=columns)


def ecdf(times, total: int) -> tuple[np.ndarray, np.ndarray]:
    """Step points (x, share) of the ECDF of ``times`` over ``total`` pairs; NaN and inf count as never reached."""
    t = np.sort(np.asarray(times, dtype=float))
    t = t[np.isfinite(t)]
    return t, np.arange(1, len(t) + 1) / max(int(total), 1)


def _between(values: np.ndarray, i: int, share: float) -> float:
    """The value a share of the way from record i-1 to record i (record i itself when i is 0)."""
    if i == 0:
        return float(values[0])
    return float(values[i - 1] + share * (values[i] - values[i - 1]))


def _mean_std(values: pd.Series) -> tuple[float, float]:
    values = pd.to_numeric(values, errors="coerce")
    values = values[np.isfinite(values)]
    if values.empty:
        return np.nan, np.nan
    return float(values.mean()), float(values.std(ddof=0)) if len(values) > 1 else 0.0


def summary(final_runs: pd.DataFrame, rows: pd.DataFrame, targets: pd.DataFrame | None = None,
            reach: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The numeric summary (one row per section and method) and the section targets.

    Means and standard deviations (population, over seeds) use runs that ended
    ``done`` or ``stopped``; diverged runs are counted, not averaged; failed
    counts ``error`` and ``skipped`` runs. ``targets`` and ``reach``
    (``section_targets``, ``time_to_target``) are computed when not given.
    """
    targets = section_targets(final_runs) if targets is None else targets
    reach = time_to_target(rows, final_runs, targets) if reach is None else reach
    target_of = targets.set_index("section")["target_loss"]
    records = []
    for (section, method), group in final_runs.groupby(["section", "method"], sort=True):
        ok = group[group["status"].isin(OK_STATUSES)]
        first = group.iloc[0]
        lrs = sorted({float(v) for v in group["lr"] if pd.notna(v)})
        rec = {
            "section": section, "dataset": first["dataset"], "loss": first["loss"],
            "method": method, "optimizer": first["optimizer"],
            "optimizer_params": params_text(first["optimizer_params"]),
            "lr": lrs[0] if len(lrs) == 1 else (np.nan if not lrs else ";".join(f"{v:g}" for v in lrs)),
            "runs": len(group), "ok_runs": len(ok),
        }
        for col, _ in SUMMARY_METRICS:
            rec[f"{col}_mean"], rec[f"{col}_std"] = _mean_std(ok[col])
        rec["target_loss"] = target_of.get(section, np.nan)
        hit = reach.loc[ok["cell_id"]]
        hit = hit[hit["reached"]]
        rec["reached"] = len(hit)
        for col, _ in TO_TARGET:
            rec[f"{col}_to_target_mean"], rec[f"{col}_to_target_std"] = _mean_std(hit[col])
        rec["diverged"] = int((group["status"] == "diverged").sum())
        rec["failed"] = int(group["status"].isin(FAILED_STATUSES).sum())
        records.append(rec)
    return pd.DataFrame(records), targets


def fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}"
    return str(value)


def _pm(mean, std) -> str:
    if mean is None or not np.isfinite(mean):
        return "–"
    return f"{fmt(mean)} ± {fmt(std, 2)}"


def formatted(section_rows: pd.DataFrame) -> pd.DataFrame:
    """The human table of one section (strings): what Markdown and HTML show."""
    out = pd.DataFrame()
    out["optimizer"] = section_rows["method"]
    out["lr"] = [v if isinstance(v, str) else fmt(v) for v in section_rows["lr"]]
    out["params"] = section_rows["optimizer_params"].fillna("").astype(str).values
    out["seeds ok/run"] = [f"{o}/{r}" for o, r in zip(section_rows["ok_runs"], section_rows["runs"])]
    for col, title in SUMMARY_METRICS:
        out[title] = [_pm(m, s) for m, s in zip(section_rows[f"{col}_mean"], section_rows[f"{col}_std"])]
    out["reached target"] = [f"{h}/{o}" for h, o in zip(section_rows["reached"], section_rows["ok_runs"])]
    for col, title in TO_TARGET:   # means only here; the CSV has the standard deviations
        out[title] = [fmt(m) for m in section_rows[f"{col}_to_target_mean"]]
    out["diverged / failed"] = [f"{int(d)} / {int(f)}" for d, f in zip(section_rows["diverged"], section_rows["failed"])]
    return out.reset_index(drop=True)


def problems_table(results_runs: pd.DataFrame) -> pd.DataFrame:
    """Runs that did not finish normally: diverged, error and skipped, with reasons."""
    bad = results_runs[~results_runs["status"].isin(OK_STATUSES)]
    cols = ["phase", "dataset", "loss", "optimizer", "optimizer_params", "lr", "seed", "status", "reason"]
    out = bad.reindex(columns=cols).copy()
    out["optimizer_params"] = out["optimizer_params"].map(lambda p: params_text(p) if isinstance(p, str) else "")
    out["lr"] = out["lr"].map(fmt)
    out["seed"] = out["seed"].map(fmt)
    out["reason"] = out["reason"].fillna("").astype(str)
    return out.sort_values(["status", "dataset", "loss", "optimizer", "phase", "seed"],
                           kind="stable").reset_index(drop=True)


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-style Markdown table (uses tabulate when installed, else a small formatter)."""
    try:
        import tabulate  # noqa: F401

        return frame.to_markdown(index=False)
    except ImportError:
        pass
    cells = [[str(c) for c in frame.columns]] + [[str(v).replace("|", "\\|") for v in row]
                                                 for row in frame.itertuples(index=False)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(frame.columns))]
    line = lambda r: "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |"  # noqa: E731
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


RANK_METRICS = (("train_loss", "final training loss"), ("test_loss", "final test loss"))
RANK_RULE = (
    "Average ranks: in each dataset/loss section the methods are ranked (1 = best, ties share the mean rank) "
    "by the median over seeds of their final value, a diverged run counting as infinite (so a method with half "
    "or more of its seeds diverged ranks last); only sections where "
    "every method has a finished or diverged run count (complete blocks). Friedman's test asks whether the "
    "ranks differ at all; two methods whose average ranks differ by less than the Nemenyi critical difference "
    "(alpha 0.05, Demsar 2006) are not significantly different."
)


def rank_matrix(final_runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Sections x methods: the median over seeds of the final ``metric`` (inf for a diverged run); complete rows only."""
    usable = final_runs[final_runs["status"].isin(OK_STATUSES + ("diverged",))].copy()
    if usable.empty or metric not in usable.columns:
        return pd.DataFrame()
    values = pd.to_numeric(usable[metric], errors="coerce")
    usable["value"] = np.where(usable["status"] == "diverged", np.inf, values)
    matrix = usable.groupby(["section", "method"])["value"].median().unstack("method")
    return matrix.dropna(axis=0, how="any")


def to_latex(frame: pd.DataFrame) -> str:
    """A booktabs LaTeX table (\\toprule, \\midrule, \\bottomrule); text is escaped, numbers have 4 digits."""
    return frame.to_latex(index=False, escape=True, float_format=lambda v: fmt(v), na_rep="--")
