"""Each stored run of a sweep becomes an MLflow run: params, per-epoch metrics, status, tags.

The MLflow experiment is named after the sweep. A run carries the tags
``harness.sweep``, ``harness.cell_id`` and ``harness.phase``; its params are
the cell's settings (plugin hyper-parameters as ``optimizer.<param>``,
``loss.<param>``, ``dataset.<param>``); its metrics are the per-epoch columns of
``harness.results.schema`` with ``step = epoch`` (values never measured, NaN,
are left out). A run is tagged ``harness.exported = true`` only once all of it
is written, so a rerun skips the cells found with that tag and replaces a run
an interrupted export left half-written: exporting twice gives the same runs.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from harness.errors import HarnessError
from harness.results.manifest import read_manifest
from harness.results.schema import CELL_COLUMNS, DIAGNOSTIC_COLUMNS, METRIC_COLUMNS, WORK_COLUMNS
from harness.results.store import read_results

__all__ = ["INSTALL_HINT", "ExportSummary", "default_tracking_uri", "export_mlflow"]

INSTALL_HINT = 'MLflow is not installed; install it with: pip install "harness-gd[mlflow]"'
CELL_TAG, SWEEP_TAG, PHASE_TAG, DONE_TAG = "harness.cell_id", "harness.sweep", "harness.phase", "harness.exported"
# harness status -> MLflow run status (the harness status and reason are kept as tags)
RUN_STATUS = {"done": "FINISHED", "stopped": "FINISHED", "diverged": "FAILED", "error": "FAILED",
              "skipped": "KILLED"}
METRICS = (tuple(c for c in WORK_COLUMNS if c != "epoch") + METRIC_COLUMNS + DIAGNOSTIC_COLUMNS
           + ("reference_train_loss",))
IDENTITY = ("sweep", "cell_id", "phase")
PLUGIN_PARAMS = {"optimizer_params": "optimizer", "loss_params": "loss", "dataset_params": "dataset"}
BATCH_METRICS, BATCH_PARAMS = 1000, 100   # MLflow's log_batch limits per call


@dataclass(frozen=True)
class ExportSummary:
    """What one export did: runs written now, runs found already exported, where they went."""

    tracking_uri: str
    experiment: str
    exported: int
    already: int
    replaced: int


def default_tracking_uri(sweep_dir) -> str:
    """A SQLite tracking store inside the sweep folder: ``sqlite:///DIR/mlflow.db``."""
    return f"sqlite:///{(Path(sweep_dir) / 'mlflow.db').resolve().as_posix()}"


def _client(tracking_uri: str):
    try:
        from mlflow.tracking import MlflowClient   # optional extra: imported only when exporting
    except ImportError:
        raise HarnessError(INSTALL_HINT) from None
    return MlflowClient(tracking_uri=tracking_uri)


def _hidden(text) -> str:
    """The stored hidden layers (JSON list) in the settings grammar: ``64x32``, ``none``."""
    try:
        widths = json.loads(text) if isinstance(text, str) else list(text)
    except ValueError:
        return str(text)
    return "x".join(str(w) for w in widths) or "none"


def params_of(row: pd.Series) -> dict:
    """The cell's settings as MLflow params (strings), plugin hyper-parameters flattened."""
    params = {}
    for col in CELL_COLUMNS:
        if col in IDENTITY or col == "reference_train_loss" or col not in row.index:
            continue
        if col in PLUGIN_PARAMS:
            try:
                values = json.loads(row[col]) if isinstance(row[col], str) and row[col] else {}
            except ValueError:
                values = {}
            params.update({f"{PLUGIN_PARAMS[col]}.{k}": str(v) for k, v in sorted(values.items())})
        elif col == "hidden":
            params[col] = _hidden(row[col])
        else:
            params[col] = str(row[col])
    return params


def metrics_of(cell: pd.DataFrame, start_ms: int) -> list:
    """``(key, value, timestamp ms, step)`` for every measured value; the timestamp adds the training seconds."""
    out = []
    for _, row in cell.iterrows():
        seconds = row.get("train_seconds")
        stamp = start_ms + (int(float(seconds) * 1000) if _finite(seconds) else 0)
        for key in METRICS:
            if key in row.index and row[key] is not None and not _nan(row[key]):
                out.append((key, float(row[key]), stamp, int(row["epoch"])))
    return out


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _nan(value) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True   # not a number: nothing to log


def _start_ms(manifest: dict) -> int:
    try:
        return int(datetime.fromisoformat(str(manifest["started"])).timestamp() * 1000)
    except (KeyError, ValueError):
        return int(time.time() * 1000)


def run_name(row: pd.Series) -> str:
    return f"{row['dataset']} / {row['loss']} / {row['optimizer']} lr={float(row['lr']):g} seed={row['seed']} ({row['phase']})"


def _experiment(client, name: str, sweep_dir: Path, tracking_uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    local = tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri
    # a local store keeps its artifacts beside the results, not in ./mlruns of wherever it was run
    artifacts = (sweep_dir / "mlartifacts").resolve().as_uri() if local else None
    return client.create_experiment(name, artifact_location=artifacts, tags={SWEEP_TAG: name})


def _exported_runs(client, experiment_id: str) -> dict:
    """``{cell id: run}`` of the runs of this experiment that carry a cell-id tag."""
    found, token = {}, None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        for run in page:
            cid = run.data.tags.get(CELL_TAG)
            if cid:
                found[cid] = run
        token = page.token
        if not token:
            return found


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _write_run(client, experiment_id: str, cell: pd.DataFrame, start_ms: int) -> None:
    from mlflow.entities import Metric, Param, RunTag   # optional extra, as in _client

    first, last = cell.iloc[0], cell.iloc[-1]
    status = str(last["status"])
    tags = {SWEEP_TAG: str(first["sweep"]), CELL_TAG: str(first["cell_id"]), PHASE_TAG: str(first["phase"]),
            "harness.status": status, "harness.reason": str(last["reason"])}
    run = client.create_run(experiment_id, start_time=start_ms, tags=tags, run_name=run_name(first))
    run_id = run.info.run_id
    for batch in _chunks(sorted(params_of(first).items()), BATCH_PARAMS):
        client.log_batch(run_id, params=[Param(k, v) for k, v in batch])
    for batch in _chunks(metrics_of(cell, start_ms), BATCH_METRICS):
        client.log_batch(run_id, metrics=[Metric(k, v, t, s) for k, v, t, s in batch])
    seconds = last.get("train_seconds")
    end_ms = start_ms + (int(float(seconds) * 1000) if _finite(seconds) else 0)
    client.set_terminated(run_id, status=RUN_STATUS.get(status, "FAILED"), end_time=end_ms)
    client.log_batch(run_id, tags=[RunTag(DONE_TAG, "true")])   # last: marks the run complete


def export_mlflow(sweep_dir, tracking_uri: str | None = None) -> ExportSummary:
    """Export every stored run of ``sweep_dir`` to MLflow (default: ``sqlite:///DIR/mlflow.db``).

    Idempotent: a cell already exported to the experiment (found by its
    ``harness.cell_id`` tag) is not written again.
    """
    sweep_dir = Path(sweep_dir)
    results = read_results(sweep_dir)
    if results is None or len(results) == 0:
        raise HarnessError(f"no stored results in {sweep_dir} (expected {sweep_dir / 'results'}/*.parquet "
                           "written by `harness sweep`)")
    uri = tracking_uri or default_tracking_uri(sweep_dir)
    client = _client(uri)
    manifest = read_manifest(sweep_dir) or {}
    name = str(manifest.get("sweep") or results["sweep"].iloc[0] or sweep_dir.name)
    experiment_id = _experiment(client, name, sweep_dir, uri)
    existing = _exported_runs(client, experiment_id)
    start_ms = _start_ms(manifest)
    exported = already = replaced = 0
    for cell_id, cell in results.groupby("cell_id", sort=False):
        previous = existing.get(cell_id)
        if previous is not None and previous.data.tags.get(DONE_TAG) == "true":
            already += 1
            continue
        if previous is not None:   # left half-written by an interrupted export
            client.delete_run(previous.info.run_id)
            replaced += 1
        _write_run(client, experiment_id, cell.sort_values("epoch", kind="stable"), start_ms)
        exported += 1
    return ExportSummary(uri, name, exported, already, replaced)
