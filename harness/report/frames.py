"""Shape the long-format results into what the report reads: runs, settings, labels.

The store holds one row per (cell, epoch). The report thinks in *runs* (one
cell = one seed of one setting), *settings* (a run's config without its seed)
grouped into *sections* (one dataset and loss: the rows of one table) and
*methods* (the optimizer with its hyper-parameters: one row of a table, one
curve of a plot, one solver of the performance profile).
"""
from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np
import pandas as pd

# what makes a problem: the rows of one table share these
SECTION_COLUMNS = ("dataset", "dataset_params", "hidden", "activation", "dtype", "loss", "loss_params")
# what makes a method inside a section (the learning rate is chosen per section)
METHOD_COLUMNS = ("optimizer", "optimizer_params", "schedule", "decay", "step_every",
                  "epochs", "tol", "lecture_stop", "patience", "time_budget")
SETTING_COLUMNS = SECTION_COLUMNS + METHOD_COLUMNS + ("lr",)
OK_STATUSES = ("done", "stopped")
FAILED_STATUSES = ("error", "timeout", "skipped")
FINAL_FIELDS = ("train_loss", "val_loss", "test_loss", "train_accuracy", "test_accuracy",
                "test_balanced_accuracy", "test_macro_f1", "test_minority_recall",
                "val_minority_recall", "updates", "samples_seen", "train_seconds", "test_confusion")


def _canonical(value) -> str | float | int | bool:
    """A hashable, comparable form of a cell value (lists and arrays become JSON)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return json.dumps([_plain(v) for v in value])
    if isinstance(value, dict):
        return json.dumps({str(k): _plain(v) for k, v in sorted(value.items())}, sort_keys=True)
    return value


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    return value


def normalise(results: pd.DataFrame) -> pd.DataFrame:
    """A copy with hashable setting columns and the defaults the report relies on.

    Parquet returns list columns (``hidden``) as arrays, which pandas cannot
    group by; params missing or empty become ``"{}"``.
    """
    df = results.copy()
    for col in SETTING_COLUMNS + ("phase", "status", "reason", "cell_id"):
        if col not in df.columns:
            df[col] = np.nan if col in ("lr", "decay", "tol", "time_budget") else ""
    for col in ("hidden", "optimizer_params", "loss_params", "dataset_params"):
        df[col] = df[col].map(_canonical)
    for col in ("optimizer_params", "loss_params", "dataset_params"):
        df[col] = df[col].map(lambda v: "{}" if v is None or v == "" or (isinstance(v, float) and np.isnan(v)) else v)
    for col in ("dataset", "loss", "optimizer", "phase", "status", "reason", "schedule", "activation", "dtype"):
        df[col] = df[col].fillna("").astype(str)
    if "reference_train_loss" not in df.columns:
        df["reference_train_loss"] = np.nan
    df["reference_train_loss"] = pd.to_numeric(df["reference_train_loss"], errors="coerce")
    if "seed" not in df.columns:
        df["seed"] = 0
    if "epoch" not in df.columns:
        df["epoch"] = 0
    return df


def final_phase(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the final phase, or every row when the sweep had no tuning phase."""
    final = df[df["phase"] == "final"]
    return final if len(final) else df


TABLE_OBJECTIVE = "val_loss_best"    # the tables' runs are those tuned for it (when the sweep tuned for it)


def run_tables(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """From normalised stored rows: every run (labelled), the final phase's rows, and the final runs."""
    all_runs = add_labels(runs(df))
    final_df = final_phase(df)
    final_runs = all_runs[all_runs["cell_id"].isin(set(final_df["cell_id"]))].reset_index(drop=True)
    return all_runs, final_df, final_runs


def tuned_for(final_runs: pd.DataFrame, manifest: dict | None, objective: str) -> tuple[pd.DataFrame, str]:
    """The final runs whose learning rates were chosen for ``objective``, and the objective they were.

    The sweep's manifest lists, per tuning objective, the final cells its choices
    made (``selection``). A sweep without that record (older sweeps, a sweep with
    no tuning) has one final run per setting and seed: all of them, objective "".
    An objective the sweep did not tune for falls back to the tables' objective
    (or the first one recorded), and the second value says which was used.
    """
    selection = (manifest or {}).get("selection")
    if not isinstance(selection, dict) or not selection:
        return final_runs, ""
    if objective not in selection:
        objective = TABLE_OBJECTIVE if TABLE_OBJECTIVE in selection else next(iter(selection))
    ids = set(selection[objective] or ())
    return final_runs[final_runs["cell_id"].isin(ids)].reset_index(drop=True), objective


def runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run (cell): its setting, seed, status and its last and first records.

    ``initial_train_loss`` is the epoch-0 loss; the ``FINAL_FIELDS`` come from
    the run's last recorded epoch; ``last_epoch`` is that epoch.
    """
    if df.empty:
        return pd.DataFrame(columns=list(SETTING_COLUMNS) + ["cell_id", "seed", "phase", "status", "reason"])
    ordered = df.sort_values(["cell_id", "epoch"], kind="stable")
    last = ordered.groupby("cell_id", sort=False).tail(1).set_index("cell_id")
    first = ordered.groupby("cell_id", sort=False).head(1).set_index("cell_id")
    keep = [c for c in SETTING_COLUMNS + ("seed", "phase", "status", "reason", "reference_train_loss")
            if c in last.columns]
    out = last[keep].copy()
    for field in FINAL_FIELDS:
        out[field] = last[field] if field in last.columns else np.nan
    out["last_epoch"] = last["epoch"]
    out["initial_train_loss"] = first["train_loss"] if "train_loss" in first.columns else np.nan
    return out.reset_index()


def imbalance(family_runs: pd.DataFrame) -> float:
    """Largest/smallest true-class count in a stored test confusion matrix (1.0 if unknown)."""
    for text in family_runs["test_confusion"].dropna() if "test_confusion" in family_runs.columns else ():
        if not text:
            continue
        try:
            counts = np.asarray(json.loads(text), dtype=float).sum(axis=1)
        except (TypeError, ValueError):
            continue
        if counts.size > 1 and counts.min() > 0:
            return float(counts.max() / counts.min())
    return 1.0


def params_text(params_json: str) -> str:
    """``{"batch_size": 32}`` -> ``batch_size=32`` (empty for no params)."""
    try:
        params = json.loads(params_json) if params_json else {}
    except (TypeError, ValueError):
        return str(params_json)
    if not isinstance(params, dict):
        return str(params)
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))


def hidden_text(hidden) -> str:
    try:
        layers = json.loads(hidden) if isinstance(hidden, str) else list(hidden)
    except (TypeError, ValueError):
        return str(hidden)
    return "none (convex)" if not layers else "-".join(str(h) for h in layers)


def _varying(frame: pd.DataFrame, columns) -> list:
    return [c for c in columns if c in frame.columns and frame[c].astype(str).nunique() > 1]


def _varying_keys(frame: pd.DataFrame, name_col: str, params_col: str) -> dict:
    """Per plugin name, the params whose values differ between its runs (those name a variant)."""
    out = {}
    for name, group in frame.groupby(name_col):
        parsed = []
        for text in group[params_col].unique():
            try:
                value = json.loads(text) if text else {}
            except (TypeError, ValueError):
                value = {}
            parsed.append(value if isinstance(value, dict) else {})
        keys = set().union(*parsed) if parsed else set()
        out[name] = sorted(k for k in keys if len({json.dumps(p.get(k), sort_keys=True) for p in parsed}) > 1)
    return out


def _label_params(params_json: str, keys) -> str:
    if not keys:
        return ""
    try:
        params = json.loads(params_json) if params_json else {}
    except (TypeError, ValueError):
        return ""
    return ", ".join(f"{k}={params.get(k)}" for k in keys if k in params)


def add_labels(run_frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``family`` (dataset ...), ``section`` (dataset and loss ...) and ``method`` (optimizer ...) labels.

    Labels name a plugin's params and the engine settings only where they vary
    across the sweep, so a sweep with one setting per optimizer reads
    ``<dataset> / <loss>`` and ``<optimizer>`` while a batch-size sweep reads
    ``<optimizer> (batch_size=16)``.
    """
    out = run_frame.copy()
    if out.empty:
        out["section"] = []
        out["method"] = []
        out["family"] = []
        return out
    vary = set(_varying(out, ("hidden", "activation", "dtype", "schedule", "decay", "step_every",
                               "epochs", "tol", "lecture_stop", "patience", "time_budget")))
    keys = {col: _varying_keys(out, name, col) for name, col in
            (("dataset", "dataset_params"), ("loss", "loss_params"), ("optimizer", "optimizer_params"))}

    def family(row) -> str:
        text = str(row["dataset"])
        extra = _label_params(row["dataset_params"], keys["dataset_params"].get(row["dataset"]))
        if extra:
            text += f" [{extra}]"
        if "hidden" in vary:
            text += f" hidden={hidden_text(row['hidden'])}"
        for col in ("activation", "dtype"):
            if col in vary:
                text += f" {col}={row[col]}"
        return text

    def section(row) -> str:
        text = f"{row['family']} / {row['loss']}"
        extra = _label_params(row["loss_params"], keys["loss_params"].get(row["loss"]))
        return text + (f" [{extra}]" if extra else "")

    def method(row) -> str:
        text = str(row["optimizer"])
        own = _label_params(row["optimizer_params"], keys["optimizer_params"].get(row["optimizer"]))
        extra = ([own] if own else []) + [f"{c}={row[c]}" for c in METHOD_COLUMNS[2:] if c in vary]
        return text + (f" ({', '.join(extra)})" if extra else "")

    out["family"] = out.apply(family, axis=1)
    out["section"] = out.apply(section, axis=1)
    out["method"] = out.apply(method, axis=1)
    return out


def labelled_rows(df: pd.DataFrame, run_frame: pd.DataFrame) -> pd.DataFrame:
    """The per-epoch rows of ``df`` with the run labels of ``run_frame`` joined on."""
    labels = run_frame.set_index("cell_id")[["family", "section", "method"]]
    return df.join(labels, on="cell_id", how="inner")


class TuningColumns(NamedTuple):
    """The tuning runs' columns the learning-rate figures read, as arrays, and the chosen rates'."""

    section: np.ndarray
    method: np.ndarray
    lr: np.ndarray
    val: np.ndarray
    seed: np.ndarray
    drawn: np.ndarray      # a finite validation loss of a run that did not diverge: a point
    failed: np.ndarray     # a finished run without one: a cross at the top
    chosen_section: np.ndarray
    chosen_method: np.ndarray
    chosen_lr: np.ndarray


def tuning_columns(tune_runs: pd.DataFrame, chosen: pd.DataFrame) -> TuningColumns:
    """``tune_runs`` and ``chosen`` as whole-column arrays, for the static and the interactive learning-rate
    figures alike: masked per section and method, not a pandas filter per method (which cost most of a
    figure), and one rule for which runs are drawn and which are marked as failed."""
    status, val = tune_runs["status"].to_numpy(object), tune_runs["val_loss"].to_numpy(float)
    drawn = (status != "diverged") & np.isfinite(val)
    return TuningColumns(tune_runs["section"].to_numpy(object), tune_runs["method"].to_numpy(object),
                         tune_runs["lr"].to_numpy(float), val, tune_runs["seed"].to_numpy(), drawn,
                         ~drawn & np.isin(status, ("diverged",) + OK_STATUSES),
                         chosen["section"].to_numpy(object), chosen["method"].to_numpy(object),
                         chosen["lr"].to_numpy(float))
