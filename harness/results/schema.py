"""Column names of the long-format results: one row per (run, epoch).

The trainer produces ``RECORD_COLUMNS`` for every epoch (epoch 0 is the state
before the first update); the sweep adds ``CELL_COLUMNS`` (the cell's config
and identity); the report reads both. Keep every producer and consumer on
these names.
"""

SPLITS = ("train", "val", "test")
METRICS = ("loss", "accuracy", "balanced_accuracy", "macro_f1", "minority_recall")

# status of a run/cell, repeated on each of its rows
STATUSES = ("done", "stopped", "diverged", "error", "timeout", "skipped")
# done: reached max epochs; stopped: a stopping rule fired (reason says which);
# diverged: non-finite or exploding loss; error: raised (reason = last line) or its worker died (signal/exit code);
# timeout: still running after the sweep's per-cell timeout; skipped: not run because the combination was refused.

WORK_COLUMNS = ("epoch", "updates", "samples_seen", "train_seconds", "learning_rate")
METRIC_COLUMNS = tuple(f"{s}_{m}" for s in SPLITS for m in METRICS)
RECORD_COLUMNS = WORK_COLUMNS + METRIC_COLUMNS + (
    "test_confusion",   # JSON list of lists, rows = true class, cols = predicted
    "status",
    "reason",
)

# added by the sweep: identity and the flattened RunConfig (params as canonical JSON)
CELL_COLUMNS = (
    "sweep", "cell_id", "phase",           # phase: "tune" (selection on val) or "final"
    "dataset", "loss", "optimizer", "seed", "lr", "schedule", "decay", "step_every",
    "epochs", "tol", "lecture_stop", "patience", "time_budget",
    "hidden", "activation", "dtype",
    "optimizer_params", "loss_params", "dataset_params",
    "reference_train_loss",                # convex optimum of the train loss (hidden=()), else NaN
)
