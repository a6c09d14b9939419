"""Run one configuration epoch by epoch and return its records (one row per epoch).

``train(config)`` looks up the optimizer and loss plugins, refuses combinations
their ``check`` rejects (``harness.plugin.Refused``), loads the split (or takes the
one given), builds the model and trains until a stopping rule fires
(``harness.learning.stopping``). Epoch 0 is the state before any update.

Paired comparisons: the initial weights come from a generator seeded by
``config.seed`` alone (``harness.learning.model.init_weights``), batching draws from a
second, independent stream derived from the same seed, and the split depends
on the seed and dataset only; so with one seed every optimizer and loss starts
from the same weights on the same data, and a rerun is bit-identical (except
``train_seconds``).

Timing: the clock runs only around the training steps (batching, gradient and
update), never around the per-epoch evaluation of train/val/test metrics.
"""
from __future__ import annotations

import copy
import json
import math
import time
from contextlib import contextmanager
from typing import Callable, Optional

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from harness.learning import kernels, metrics, schedules
from harness.learning.checks import refusal
from harness.plugin.specs import Refused, resolve_params
from harness.learning.runconfig import RunConfig, validate_run
from harness.learning.split import Split
from harness.learning.model import MLP
from harness.results.schema import RECORD_COLUMNS, SPLITS
from harness.learning.stopping import Outcome, Stopper

BATCH_STREAM = 1   # spawn key of the batching stream; model.init_weights draws from spawn key 0


@contextmanager
def single_thread_blas():
    """Limit BLAS (and any OpenMP pool) to one thread: the one pinning used by `run`, sweep workers and benchmarks."""
    with threadpool_limits(limits=1):
        yield


def batch_rng(seed: int) -> np.random.Generator:
    """The batching stream of a run, independent of the weight-initialisation stream."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(BATCH_STREAM,)))


def _validate(config: RunConfig) -> None:
    """One-line UsageErrors for engine settings that cannot run (the same check `run` and `sweep` use)."""
    validate_run(config)


class _Evaluator:
    """Loss and metrics of the current model on the train, val and test parts."""

    def __init__(self, model: MLP, loss, parts: dict, n_classes: int, minority: int):
        self.model, self.loss, self.parts = model, loss, parts
        self.n_classes, self.minority = n_classes, minority

    def __call__(self) -> dict:
        row = {}
        with np.errstate(all="ignore"):
            for part in SPLITS:
                X, y = self.parts[part]
                if len(y) == 0:
                    for key in ("loss", "accuracy", "balanced_accuracy", "macro_f1", "minority_recall"):
                        row[f"{part}_{key}"] = float("nan")
                    confusion = np.zeros((self.n_classes, self.n_classes), np.int64)
                else:
                    logits = self.model.forward(X, train=False)
                    row[f"{part}_loss"] = float(np.mean(self.loss.per_sample(logits, y)))
                    pred = np.argmax(self.loss.predict_proba(logits), axis=1)
                    scores, confusion = metrics.evaluate(y, pred, self.n_classes, self.minority)
                    row.update({f"{part}_{k}": v for k, v in scores.items()})
                if part == "test":
                    row["test_confusion"] = json.dumps(confusion.tolist())
        return row


def _updates_per_epoch(optimizer, n: int, rng: np.random.Generator) -> int:
    """Count one epoch's batches on copies (for the 'step' schedule's default period)."""
    return sum(1 for _ in copy.deepcopy(optimizer).batches(n, copy.deepcopy(rng)))


def train_epoch(model: MLP, optimizer, loss, X: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                lr_at: Callable[[int], float], updates: int = 0):
    """One epoch of updates (the timed part of a run; the benchmark times this too).

    ``updates`` is the number of updates made before this epoch (the schedule's
    t). Returns (updates done, samples seen, last learning rate, the update
    number at which the batch loss became non-finite or None); the epoch is cut
    short at such an update.

    When the model, the optimizer and the loss all offer the compiled fast path
    (``harness.learning.kernels``) the epoch runs there: same batches from the
    optimizer's generator, same learning rates, same arithmetic up to rounding.
    Otherwise the general numpy path below runs the plugins' own methods.
    """
    n = len(y)
    plan = kernels.plan_for(model, optimizer, loss)
    if plan is not None and kernels.accepts(plan, X, y):
        batches = list(optimizer.batches(n, rng))
        lrs = np.fromiter(map(lr_at, range(updates, updates + len(batches))), np.float64, len(batches))
        with np.errstate(all="ignore"):
            done, seen, bad = kernels.run_epoch(plan, batches, X, y, lrs)
        lr = float(lrs[done - 1]) if done else lr_at(updates)
        return done, seen, lr, (updates + done if bad >= 0 else None)

    params, grads = model.params, model.grads
    one_sample_ok = not model.batch_norm
    done = seen = 0
    lr = lr_at(updates)
    with np.errstate(all="ignore"):
        for idx in optimizer.batches(n, rng):
            lr = lr_at(updates + done)
            size = len(idx)
            if size == 1 and one_sample_ok:
                i = int(idx[0])
                value = model.sample_grad(X[i], y[i:i + 1], loss)
            elif size == n and idx[0] == 0 and idx[-1] == n - 1 and np.all(idx[1:] > idx[:-1]):
                value = model.batch_grad(X, y, loss)  # all rows in order: no copy
            else:
                xb, yb = model.gather(X, y, idx)
                value = model.batch_grad(xb, yb, loss)
            optimizer.step(params, grads, lr)
            done += 1
            seen += size
            if not math.isfinite(value):
                return done, seen, lr, updates + done
    return done, seen, lr, None


def train(config: RunConfig, split: Optional[Split] = None, registry=None,
          progress: Optional[Callable[[dict], None]] = None) -> pd.DataFrame:
    """Train one configuration; one row per epoch with ``harness.results.schema.RECORD_COLUMNS``.

    Raises ``harness.plugin.Refused`` for a combination a plugin's check rejects and
    ``errors.UsageError`` for unknown names or bad values. ``progress`` (if
    given) is called with each epoch's row as soon as it is measured.
    """
    if registry is None:
        from harness.plugin.loader import load_registry

        registry = load_registry()
    opt_spec = registry.get("optimizers", config.optimizer)
    loss_spec = registry.get("losses", config.loss)
    reason = refusal((opt_spec, loss_spec, registry.datasets.get(config.dataset)), config)
    if reason:
        raise Refused(reason)
    opt_params = resolve_params(opt_spec.params, dict(config.optimizer_params), f"optimizer {config.optimizer}")
    loss_params = resolve_params(loss_spec.params, dict(config.loss_params), f"loss {config.loss}")
    _validate(config)

    if split is None:
        from harness.learning.split import load_split

        split = load_split(config.dataset, seed=config.seed, registry=registry,
                           **dict(config.dataset_params))
    dtype = np.dtype(config.dtype)
    parts = {part: (np.ascontiguousarray(getattr(split, f"X_{part}"), dtype=dtype),
                    np.ascontiguousarray(getattr(split, f"y_{part}"), dtype=np.int64))
             for part in SPLITS}
    X, y = parts["train"]
    n, n_classes = len(y), split.n_classes

    loss = loss_spec.factory(split.y_train, n_classes, **loss_params)
    optimizer = opt_spec.factory(**opt_params)
    model = MLP(X.shape[1], loss.n_outputs, tuple(config.hidden), config.activation,
                batch_norm=opt_spec.batch_norm, seed=config.seed, dtype=config.dtype)
    kernels.plan_for(model, optimizer, loss)  # loads the compiled kernels (if any) before the clock starts
    rng = batch_rng(config.seed)
    per_epoch = (_updates_per_epoch(optimizer, n, rng)
                 if config.schedule == "step" and config.step_every == 0 else 1)
    lr_at = schedules.from_config(config, per_epoch)
    evaluate = _Evaluator(model, loss, parts, n_classes, metrics.minority_class(split.y_train, n_classes))
    stopper = Stopper(config)

    records = []
    updates = samples_seen = 0
    seconds = 0.0
    lr = lr_at(0)

    def record(epoch: int) -> Outcome | None:
        row = {"epoch": epoch, "updates": updates, "samples_seen": samples_seen,
               "train_seconds": seconds, "learning_rate": lr, **evaluate()}
        records.append(row)
        if progress is not None:
            progress(dict(row))
        return stopper.check(epoch, row["train_loss"], updates, seconds)

    outcome = record(0)
    epoch = 0
    while outcome is None:
        epoch += 1
        start = time.perf_counter()
        done, seen, lr, bad_update = train_epoch(model, optimizer, loss, X, y, rng, lr_at, updates)
        seconds += time.perf_counter() - start
        updates += done
        samples_seen += seen
        outcome = record(epoch)
        if bad_update is not None:
            outcome = Outcome("diverged", f"batch loss became non-finite at update {bad_update} (epoch {epoch})")

    frame = pd.DataFrame.from_records(records)
    frame["status"] = outcome.status
    frame["reason"] = outcome.reason
    return frame[list(RECORD_COLUMNS)]
