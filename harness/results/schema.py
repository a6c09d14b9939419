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
# per-epoch diagnostics of the training state, NaN where they do not apply
DIAGNOSTIC_COLUMNS = (
    "bn_batch_shift",   # batch-norm models: mean over the run's batches of the RMS over the first BN layer's
                        # units of (batch mean - training-set mean) / training-set std; NaN without batch norm
)
RECORD_COLUMNS = WORK_COLUMNS + METRIC_COLUMNS + (
    "test_confusion",   # JSON list of lists, rows = true class, cols = predicted
    "status",
    "reason",
) + DIAGNOSTIC_COLUMNS

# added by the sweep: identity and the flattened RunConfig (params as canonical JSON)
CELL_COLUMNS = (
    "sweep", "cell_id", "phase",           # phase: "tune" (selection on val) or "final"
    "dataset", "loss", "optimizer", "seed", "lr", "schedule", "decay", "step_every",
    "epochs", "tol", "lecture_stop", "patience", "time_budget",
    "hidden", "activation", "dtype",
    "optimizer_params", "loss_params", "dataset_params",
    "reference_train_loss",                # convex optimum of the train loss (hidden=()), else NaN
)

# stored dtype of each column kind (every other column is float64); the trainer and the store build
# their frames with these, so a cell frame is typed once, where it is made
INT_COLUMNS = ("seed", "step_every", "epochs", "patience", "epoch", "updates", "samples_seen")
BOOL_COLUMNS = ("lecture_stop",)
STR_COLUMNS = ("sweep", "cell_id", "phase", "dataset", "loss", "optimizer", "schedule", "activation",
               "dtype", "hidden", "optimizer_params", "loss_params", "dataset_params",
               "test_confusion", "status", "reason")
