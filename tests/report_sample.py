"""A small synthetic, schema-valid result set: for the report's tests and for trying the report.

Curves follow L(e) = floor + (L0 - floor) exp(-rate e) per optimizer, so a
test can make a lecture claim true, false or mixed by choosing the rates and
floors. ``python -c "from report_sample import demo; print(demo('/tmp/r'))"``
writes a demo report.
"""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd

from harness.results.schema import CELL_COLUMNS, RECORD_COLUMNS

# optimizer -> (rate per epoch, loss floor, seconds per epoch, updates per epoch for n=100)
BEHAVIOUR = {
    "bgd": {"rate": 0.12, "floor": 0.02, "seconds": 0.002, "updates": 1},
    "point": {"rate": 1.3, "floor": 0.20, "seconds": 0.030, "updates": 100},
    "sgd": {"rate": 1.5, "floor": 0.12, "seconds": 0.030, "updates": 100},
    "minibatch": {"rate": 0.7, "floor": 0.06, "seconds": 0.004, "updates": 4},
    "minibatch-bn": {"rate": 1.0, "floor": 0.05, "seconds": 0.006, "updates": 4},
}
OPTIMIZER_PARAMS = {"minibatch": {"batch_size": 32}, "minibatch-bn": {"batch_size": 32}}
RECALL = {"ce": 0.55, "wce": 0.8, "bce": 0.6}
N_TRAIN = 100


def _cell_id(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _confusion(recall: float, n_minority: int = 10, n_majority: int = 90, minority: int = 1) -> list:
    hit = int(round(recall * n_minority))
    majority_ok = int(round(0.97 * n_majority))
    if minority == 1:
        return [[majority_ok, n_majority - majority_ok], [n_minority - hit, hit]]
    return [[hit, n_minority - hit], [n_majority - majority_ok, majority_ok]]


def run_records(optimizer: str, loss: str, seed: int, epochs: int, lr: float, behaviour: dict,
                recall: dict, status: str = "done", reason: str = "", diverge_at: int | None = None,
                initial: float = 0.7) -> list:
    """The per-epoch records (dicts with the RECORD_COLUMNS) of one synthetic run."""
    b = behaviour[optimizer]
    jitter = (1.0 + 0.04 * (seed - 1)) / (1.0 + 0.5 * math.log10(lr / 0.1) ** 2)
    rows = []
    for epoch in range(epochs + 1):
        train = b["floor"] * jitter + (initial - b["floor"] * jitter) * math.exp(-b["rate"] * jitter * epoch)
        if diverge_at is not None and epoch >= diverge_at:
            train = math.inf
        test = train * 1.15 + 0.02
        rec = recall.get(loss, 0.5) * min(1.0, 0.3 + epoch / max(1, epochs)) * (1 - 0.02 * seed)
        acc = float(np.clip(1 - 0.4 * min(train, 1.0), 0, 1)) if math.isfinite(train) else math.nan
        rows.append({
            "epoch": epoch, "updates": epoch * b["updates"], "samples_seen": epoch * N_TRAIN,
            "train_seconds": epoch * b["seconds"] * (1 + 0.03 * seed), "learning_rate": lr,
            "train_loss": train, "val_loss": test * 1.02, "test_loss": test,
            "train_accuracy": acc, "val_accuracy": acc, "test_accuracy": acc,
            "train_balanced_accuracy": acc, "val_balanced_accuracy": acc,
            "test_balanced_accuracy": (0.97 + rec) / 2,
            "train_macro_f1": acc, "val_macro_f1": acc, "test_macro_f1": acc,
            "train_minority_recall": rec, "val_minority_recall": rec, "test_minority_recall": rec,
            "test_confusion": json.dumps(_confusion(rec)), "status": status, "reason": reason,
        })
        if diverge_at is not None and epoch >= diverge_at:
            break
    return rows


def synthetic_results(datasets=("digits", "face-vs-background"), losses=("ce", "wce"),
                      optimizers=tuple(BEHAVIOUR), seeds=(0, 1, 2), epochs: int = 8,
                      lrs=(0.01, 0.1, 1.0), behaviour: dict | None = None, recall: dict | None = None,
                      hidden=(16,), reference: float | None = None, extras: bool = True) -> pd.DataFrame:
    """Tune rows (every lr on seed 0) and final rows (lr 0.1 on every seed), long format.

    With ``extras`` one final run diverges and one error and one skipped cell are added.
    """
    behaviour = {**BEHAVIOUR, **(behaviour or {})}
    recall = {**RECALL, **(recall or {})}
    records = []

    def add(phase, dataset, loss, optimizer, seed, lr, **kw):
        cell = {"sweep": "synthetic", "phase": phase, "dataset": dataset, "loss": loss, "optimizer": optimizer,
                "seed": seed, "lr": lr, "schedule": "constant", "decay": 0.0, "step_every": 0, "epochs": epochs,
                "tol": 0.0, "lecture_stop": False, "patience": 0, "time_budget": 0.0,
                "hidden": json.dumps(list(hidden)), "activation": "relu", "dtype": "float64",
                "optimizer_params": json.dumps(OPTIMIZER_PARAMS.get(optimizer, {}), sort_keys=True),
                "loss_params": "{}", "dataset_params": "{}",
                "reference_train_loss": math.nan if reference is None else reference}
        cell["cell_id"] = _cell_id(cell)
        status = kw.pop("status", "done")
        if status in ("error", "skipped"):
            rec = run_records(optimizer, loss, seed, 0, lr, behaviour, recall, status, kw.pop("reason"))
            for col in rec[0]:
                if col not in ("epoch", "updates", "samples_seen", "train_seconds", "learning_rate", "status", "reason"):
                    rec[0][col] = math.nan if col != "test_confusion" else ""
        else:
            rec = run_records(optimizer, loss, seed, epochs, lr, behaviour, recall, status, **kw)
        records.extend({**r, **cell} for r in rec)

    for dataset in datasets:
        for loss in losses:
            for optimizer in optimizers:
                for lr in lrs:
                    if extras and lr == max(lrs) and optimizer in ("sgd", "point"):
                        add("tune", dataset, loss, optimizer, 0, lr, status="diverged",
                            reason="train loss is not finite", diverge_at=2)
                    else:
                        add("tune", dataset, loss, optimizer, 0, lr)
                for seed in seeds:
                    add("final", dataset, loss, optimizer, seed, 0.1)
    if extras:
        add("final", datasets[0], losses[0], optimizers[0], 99, 0.1, status="diverged",
            reason="train loss exceeded 1000x its initial value", diverge_at=3)
        add("final", datasets[0], losses[0], optimizers[0], 98, 0.1, status="error",
            reason="RuntimeError: synthetic failure")
        add("final", datasets[0], losses[0], optimizers[0], 97, 0.1, status="skipped",
            reason="batch norm needs more than one sample per update")
    return pd.DataFrame(records, columns=list(CELL_COLUMNS + RECORD_COLUMNS))


def demo(sweep_dir) -> str:
    """Write a report of the synthetic results into ``sweep_dir``; returns the page's path."""
    from harness.report import build_report

    return str(build_report(sweep_dir, results=synthetic_results(), manifest={"sweep": "synthetic demo"}))
