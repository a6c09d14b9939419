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

from harness.learning import evaluation, kernels, metrics, schedules
from harness.learning.checks import refusal
from harness.plugin.specs import Refused, resolve_params
from harness.learning.runconfig import RunConfig, validate_run
from harness.learning.split import Split, load_split
from harness.learning.model import MLP
from harness.results.schema import INT_COLUMNS, METRICS, RECORD_COLUMNS, SPLITS, STR_COLUMNS
from harness.learning.stopping import Outcome, Stopper

BATCH_STREAM = 1   # spawn key of the batching stream; model.init_weights draws from spawn key 0
SHIFT_STREAM = 2   # spawn key of the row order behind bn_batch_shift


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


class EvaluationRows:
    """The train, val and test rows of a run stacked once (in ``SPLITS`` order), shared by its evaluations.

    ``bounds`` are the parts' first rows (and the end); ``bins`` the bin of each
    row's (part, true class) in the stacked confusion counts, to which the
    predicted class is added; ``train`` the training part they were stacked from
    (a ``bn_batch_shift`` of those rows can be measured on the stacked product).
    """

    def __init__(self, parts: dict, n_classes: int):
        sizes = [len(parts[part][1]) for part in SPLITS]
        self.train = parts["train"][0]
        self.bounds = np.cumsum([0, *sizes])
        self.X = np.ascontiguousarray(np.concatenate([parts[part][0] for part in SPLITS]))
        self.y = np.concatenate([np.asarray(parts[part][1], np.int64) for part in SPLITS])
        self.bins = np.repeat(np.arange(len(SPLITS)) * (n_classes * n_classes), sizes) + self.y * n_classes


class _Evaluator:
    """Loss, metrics and diagnostics of the current model on the train, val and test parts.

    The three parts are stacked once (:class:`EvaluationRows`; several runs on
    the same parts may share one), so each evaluation is one forward pass (one
    matrix product per layer), one ``per_sample`` and one ``predict_proba`` call,
    and one ``np.bincount`` for the three confusion matrices; the outputs are then
    split per part. This needs only what the loss contract already says: both
    methods work row by row. ``batch_shift`` (a :class:`_BatchShift`, or None)
    adds the ``bn_batch_shift`` diagnostic; without it that column is NaN.

    When the model and the loss offer it, the compiled evaluation
    (``harness.learning.evaluation``) computes the same row instead.
    """

    def __init__(self, model: MLP, loss, parts: dict, n_classes: int, minority: int,
                 batch_shift: Optional["_BatchShift"] = None, rows: Optional[EvaluationRows] = None):
        self.model, self.loss, self.parts = model, loss, parts
        self.n_classes, self.minority = n_classes, minority
        self.batch_shift = batch_shift
        self.rows = rows if rows is not None else EvaluationRows(parts, n_classes)
        self._X, self._y, self._bounds, self._bins = self.rows.X, self.rows.y, self.rows.bounds, self.rows.bins
        self._confusion_text = ("", "")   # (counts as bytes, their JSON): the text is rebuilt only on change
        self.compiled = self._compiled_path()

    def _compiled_path(self):
        """The compiled evaluation when model and loss offer it (``harness.learning.evaluation``), else None.

        It measures ``bn_batch_shift`` from its own product over the stacked
        training rows, so the shift must be of those rows.
        """
        shift = None
        if self.batch_shift is not None:
            if self.batch_shift.source is not self.rows.train:
                return None
            shift = (self.batch_shift.order, self.batch_shift.starts)
        return evaluation.compiled_evaluation(self.model, self.loss, self.rows, self.n_classes, self.minority, shift)

    def __call__(self) -> dict:
        row, confusion = self.compiled() if self.compiled is not None else self._numpy_row()
        row["test_confusion"] = self._confusion_json(confusion)
        return row

    def _numpy_row(self) -> tuple[dict, np.ndarray]:
        """The general path: the plugins' own methods on the stacked rows (and the test part's counts)."""
        row = {}
        K = self.n_classes
        with np.errstate(all="ignore"):
            logits = self.model.forward(self._X, train=False)
            per_sample = np.asarray(self.loss.per_sample(logits, self._y), np.float64)
            pred = np.argmax(self.loss.predict_proba(logits), axis=1)
            counts = np.bincount(self._bins + pred, minlength=len(SPLITS) * K * K).reshape(len(SPLITS), K, K)
            for i, (part, scores) in enumerate(zip(SPLITS, metrics.scores_by_part(counts, self.minority))):
                start, stop = self._bounds[i], self._bounds[i + 1]
                if start == stop:
                    for key in METRICS:
                        row[f"{part}_{key}"] = float("nan")
                    continue
                row[f"{part}_loss"] = float(np.mean(per_sample[start:stop]))
                for key, value in scores.items():
                    row[f"{part}_{key}"] = value
            row["bn_batch_shift"] = self.batch_shift() if self.batch_shift is not None else float("nan")
        return row, counts[-1]

    def _confusion_json(self, confusion: np.ndarray) -> str:
        """``json.dumps(confusion.tolist())``, reused while the counts stay the same (they often do)."""
        key = confusion.tobytes()
        if key != self._confusion_text[0]:
            self._confusion_text = (key, json.dumps(confusion.tolist()))
        return self._confusion_text[1]


class _BatchShift:
    """The ``bn_batch_shift`` diagnostic of a batch-norm model (see ``metrics.batch_shift``).

    The training rows ``X`` are cut once, in an order drawn from the run's seed on
    its own stream (not the batching stream, so measuring never changes training),
    into consecutive batches of the run's batch size; each call measures the first
    BN layer's inputs at the current weights. ``source``, ``order`` and ``starts``
    let the compiled evaluation take the same rows from its own first-layer product.
    """

    def __init__(self, model: MLP, X: np.ndarray, batch_size: Optional[int], seed: int):
        n = len(X)
        rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(SHIFT_STREAM,)))
        self.order = rng.permutation(n)
        self.model, self.source, self.X = model, X, np.ascontiguousarray(X[self.order])
        size = n if not batch_size else int(batch_size)
        starts = np.arange(0, n, size)
        if n > size and n % size == 1:
            starts = starts[:-1]   # a trailing batch of one is folded into the previous (as batch norm trains)
        self.starts = starts

    def __call__(self) -> float:
        z = self.X @ self.model.W[0]
        z += self.model.b[0]
        return metrics.batch_shift(z, self.starts)


def _own(values: np.ndarray, dtype) -> np.ndarray:
    """C-contiguous, of ``dtype`` and writable (copied if not).

    The split cache hands out read-only arrays, and numba types an array by its
    writability too: a read-only input would need a second compiled kernel, and
    that compilation would land inside the first epoch's clock.
    """
    out = np.ascontiguousarray(values, dtype=dtype)
    return out if out.flags.writeable else out.copy()


def run_split(config: RunConfig, registry) -> Split:
    """The split a run trains on: its dataset, params and seed (cached per process by ``load_split``)."""
    return load_split(config.dataset, seed=config.seed, registry=registry, **dict(config.dataset_params))


def run_parts(split: Split, dtype) -> dict:
    """``{part: (X, y)}`` of a run: its own writable copies of the split's arrays in the run's dtype."""
    return {part: (_own(getattr(split, f"X_{part}"), np.dtype(dtype)), _own(getattr(split, f"y_{part}"), np.int64))
            for part in SPLITS}


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
        split = run_split(config, registry)
    parts = run_parts(split, config.dtype)
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
    shift = _BatchShift(model, X, opt_params.get("batch_size"), config.seed) if model.batch_norm else None
    evaluate = _Evaluator(model, loss, parts, n_classes, metrics.minority_class(split.y_train, n_classes), shift)
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

    for row in records:
        row["status"], row["reason"] = outcome.status, outcome.reason
    return records_frame(records)


def records_frame(records: list) -> pd.DataFrame:
    """The rows as a frame of ``RECORD_COLUMNS``, each column built once with its stored dtype."""
    def column(col):
        values = [row[col] for row in records]
        if col in STR_COLUMNS:
            return values   # pandas picks its text dtype, as for any frame of strings
        return np.array(values, np.int64 if col in INT_COLUMNS else np.float64)

    return pd.DataFrame({col: column(col) for col in RECORD_COLUMNS}, columns=list(RECORD_COLUMNS))
