"""Train one learning-rate grid as one computation: ``train_stacked(configs)``.

The runs of one tuning grid share seed, split, initial weights and batch order;
only ``lr`` differs. Where the compiled fast path applies to all of them
(``harness.learning.kernels``: plain-GD optimizer, a loss with a row kernel, no
batch norm), they train together in ``harness.learning.stacked_kernels``: one
batch order drawn per epoch, the first layer of all K networks one wide matrix
product. Each run keeps its own model, schedule, ``_Evaluator`` and
``stopping.Stopper``; a run that diverges (mid-epoch, at the same update as it
would alone) or stops leaves the stack and the rest go on. Anything else (a
plugin optimizer with state, a loss without a kernel, batch norm, the general
numpy path) trains the configs one after another with ``trainer.train``.

The records are those ``trainer.train(config)`` returns for each config; the
weights are bit for bit those of a run alone on the per-sample path and equal
to rounding (the first layer's wider BLAS product) on the batch path, which
takes a batch ``kernels.CHUNK_ROWS`` rows at a time as a run alone does.

``train_seconds`` of a stacked run: the clock runs around each stacked epoch's
training steps (drawing the batches, the kernels, moving weights in and out of
the stack), and that epoch's seconds are split evenly among the runs that
started it. So a run's seconds are its share of the grid's cost, not what it
would take alone; a sweep keeps timing its final runs one by one.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Optional

import numpy as np
import pandas as pd

from harness.learning import kernels, metrics, schedules, stacked_kernels, trainer
from harness.learning.checks import refusal
from harness.learning.model import MLP
from harness.learning.runconfig import RunConfig
from harness.learning.split import Split
from harness.learning.stopping import Outcome, Stopper
from harness.plugin.specs import resolve_params
from harness.results.schema import RECORD_COLUMNS


def same_but_lr(configs) -> bool:
    """Whether the configs differ in ``lr`` only."""
    first = configs[0]
    return all(dataclasses.replace(c, lr=first.lr) == first for c in configs)


def train_stacked(configs: list[RunConfig], split: Optional[Split] = None, registry=None) -> list[pd.DataFrame]:
    """Records of each config, as ``trainer.train(config)`` returns them, trained as one stack where possible.

    Raises ValueError when the configs differ in anything but ``lr``; the errors
    of ``trainer.train`` otherwise (refusals, unknown names, bad values).
    """
    configs = list(configs)
    if not configs:
        return []
    if not same_but_lr(configs):
        raise ValueError("train_stacked needs configs that differ in lr only")
    if registry is None:
        from harness.plugin.loader import load_registry

        registry = load_registry()
    stack = _Stack.build(configs, split, registry)
    if stack is None:
        if split is None and len(configs) > 1:
            split = trainer.run_split(configs[0], registry)
        return [trainer.train(config, split=split, registry=registry) for config in configs]
    return stack.train()


class _Run:
    """One config of the stack: its model, schedule, evaluator, stopper and records."""

    def __init__(self, config, model, optimizer, loss, lr_at, evaluate):
        self.config, self.model, self.optimizer, self.loss = config, model, optimizer, loss
        self.lr_at, self.evaluate, self.stopper = lr_at, evaluate, Stopper(config)
        self.records: list = []
        self.updates = self.samples_seen = 0
        self.seconds = 0.0
        self.lr = lr_at(0)
        self.outcome: Outcome | None = None

    def record(self, epoch: int) -> None:
        row = {"epoch": epoch, "updates": self.updates, "samples_seen": self.samples_seen,
               "train_seconds": self.seconds, "learning_rate": self.lr, **self.evaluate()}
        self.records.append(row)
        self.outcome = self.stopper.check(epoch, row["train_loss"], self.updates, self.seconds)

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame.from_records(self.records)
        frame["status"] = self.outcome.status
        frame["reason"] = self.outcome.reason
        return frame[list(RECORD_COLUMNS)]


class _Stack:
    """The runs of one grid and the stacked weights and work buffers of the compiled loops."""

    @classmethod
    def build(cls, configs, split, registry) -> "_Stack | None":
        """The stack, or None when some part lacks the compiled path (the caller then trains run by run)."""
        if stacked_kernels.numba is None or not kernels.enabled():
            return None
        config = configs[0]
        opt_spec = registry.get("optimizers", config.optimizer)
        loss_spec = registry.get("losses", config.loss)
        dataset_spec = registry.datasets.get(config.dataset)
        if opt_spec.batch_norm or any(refusal((opt_spec, loss_spec, dataset_spec), c) for c in configs):
            return None  # batch norm has no compiled path; train() raises the refusal itself
        opt_params = resolve_params(opt_spec.params, dict(config.optimizer_params), f"optimizer {config.optimizer}")
        loss_params = resolve_params(loss_spec.params, dict(config.loss_params), f"loss {config.loss}")
        for c in configs:
            trainer._validate(c)
        if split is None:
            split = trainer.run_split(config, registry)
        parts = trainer.run_parts(split, config.dtype)
        X, y = parts["train"]
        n_classes = split.n_classes
        minority = metrics.minority_class(split.y_train, n_classes)
        rng = trainer.batch_rng(config.seed)
        rows = trainer.EvaluationRows(parts, n_classes)   # the stacked evaluation rows, shared by the runs
        runs, plans, per_epoch = [], [], 1
        for c in configs:
            loss = loss_spec.factory(split.y_train, n_classes, **loss_params)
            optimizer = opt_spec.factory(**opt_params)
            model = MLP(X.shape[1], loss.n_outputs, tuple(c.hidden), c.activation,
                        batch_norm=opt_spec.batch_norm, seed=c.seed, dtype=c.dtype)
            plan = kernels.plan_for(model, optimizer, loss)
            if plan is None or not kernels.accepts(plan, X, y):
                return None
            if not plans and config.schedule == "step" and config.step_every == 0:
                per_epoch = trainer._updates_per_epoch(optimizer, len(y), rng)
            plans.append(plan)
            runs.append(_Run(c, model, optimizer, loss, schedules.from_config(c, per_epoch),
                             trainer._Evaluator(model, loss, parts, n_classes, minority, rows=rows)))
        if any(not np.array_equal(p.kernel_params, plans[0].kernel_params) or p.kernel is not plans[0].kernel
               for p in plans):
            return None
        return cls(runs, plans[0], X, y, rng)

    def __init__(self, runs, plan, X, y, rng):
        self.runs, self.plan, self.X, self.y, self.rng = runs, plan, X, y, rng
        model = runs[0].model
        self.dtype = model.dtype
        self.layout = model.layout
        self.rest_start = int(model.layout[1, 2]) if len(model.layout) > 1 else model.flat_params.size
        self.rest_layout = model.layout.copy()
        self.rest_layout[:, 2:] -= self.rest_start
        self.d, self.f0 = int(model.layout[0, 0]), int(model.layout[0, 1])
        self.width = int(model.layout[:, 1].sum())       # per copy: activations of every layer
        self._buffers: dict = {}
        self.rest_width = self.width - self.f0              # per copy: activations of layers 1..
        self._compile()

    def _compile(self) -> None:
        """Load (or compile) both stacked loops before any clock starts, on empty epochs."""
        self._gather(self.runs[:1])
        none = np.zeros(0, np.int64)
        rates = np.zeros((1, 0), self.dtype)
        self._sample(none, rates, 0)
        self._batch(none, np.zeros(1, np.int64), rates, np.zeros(0, self.dtype), False, 0)

    # ------------------------------------------------------------ weights in and out of the stack
    def _gather(self, runs) -> None:
        K, d, f0, dtype = len(runs), self.d, self.f0, self.dtype
        self.W0 = np.empty((d, K * f0), dtype)
        self.b0 = np.empty(K * f0, dtype)
        self.rest = np.empty((K, self.runs[0].model.flat_params.size - self.rest_start), dtype)
        wo, bo = int(self.layout[0, 2]), int(self.layout[0, 3])
        for k, run in enumerate(runs):
            flat = run.model.flat_params
            self.W0[:, k * f0:(k + 1) * f0] = flat[wo:wo + d * f0].reshape(d, f0)
            self.b0[k * f0:(k + 1) * f0] = flat[bo:bo + f0]
            self.rest[k] = flat[self.rest_start:]
        self.stacked = runs

    def _scatter(self) -> None:
        d, f0 = self.d, self.f0
        wo, bo = int(self.layout[0, 2]), int(self.layout[0, 3])
        for k, run in enumerate(self.stacked):
            flat = run.model.flat_params
            flat[wo:wo + d * f0].reshape(d, f0)[...] = self.W0[:, k * f0:(k + 1) * f0]
            flat[bo:bo + f0] = self.b0[k * f0:(k + 1) * f0]
            flat[self.rest_start:] = self.rest[k]

    # ------------------------------------------------------------ the compiled loops
    def _buffer(self, name: str, shape, dtype=None) -> np.ndarray:
        """A work array kept across epochs (fresh large allocations cost page faults on every epoch);
        of the runs' dtype unless ``dtype`` says otherwise."""
        size = int(np.prod(shape))
        buf = self._buffers.get(name)
        if buf is None or buf.size < size:
            buf = self._buffers[name] = np.empty(max(size, 1), dtype or self.dtype)
        return buf[:size].reshape(shape)

    def _sample(self, order, lrs, t0):
        K, b = len(self.stacked), self._buffer
        KF, wr = K * self.f0, max(self.rest_width, 1)
        bad = np.zeros(K, np.int64)
        done = stacked_kernels.stacked_sample_epoch(
            self.W0, self.b0, self.rest, self.layout, self.rest_layout, self.plan.act, self.X, self.y, order,
            lrs, t0, self.plan.kernel, self.plan.kernel_params, b("A0", KF), b("D0", KF), b("Ar", (K, wr)),
            b("Dr", (K, wr)), b("lrcol", KF), np.empty(K), bad, b("rows", (K, self.width), np.int64),
            b("ident", self.d, np.int64), b("bounds", (K, len(self.layout)), np.float64), self.plan.skip_limit)
        return done, bad

    def _batch(self, order, starts, lrs, inv_sizes, identity, t0):
        K, b, d = len(self.stacked), self._buffer, self.d
        KF = K * self.f0
        sizes = np.diff(starts)
        chunk = kernels.CHUNK_ROWS   # rows of a batch at a time, as a run alone takes them
        rows = min(int(sizes.max()) if len(sizes) else 0, chunk)
        largest = max([d * KF] + [int(fi * fo) for fi, fo in self.rest_layout[1:, :2]])  # a chunk's gradient block
        bad = np.zeros(K, np.int64)
        done = stacked_kernels.stacked_batch_epoch(
            self.W0, self.b0, b("gW0", (d, KF)), b("gb0", KF), self.rest, b("grest", self.rest.shape),
            self.layout, self.rest_layout, self.plan.act, self.X, self.y, order, starts, lrs, inv_sizes, identity,
            chunk, t0, self.plan.kernel, self.plan.kernel_params, b("A0", rows * KF), b("D0", rows * KF),
            b("Ar", (K, rows * self.width)), b("Dr", (K, rows * self.width)), b("Xb", 0 if identity else rows * d),
            b("lrcol", KF), np.empty(K), bad, b("part", max(largest, 1)))
        return done, bad

    def _epoch(self, active) -> dict:
        """One epoch of every active run.

        Returns {run: (updates done, samples seen, the update at which its batch
        loss became non-finite or None, its learning rates for this epoch)}.
        """
        n = len(self.y)
        batches = list(active[0].optimizer.batches(n, self.rng))
        sizes = np.fromiter(map(len, batches), np.int64, len(batches))
        order = np.concatenate(batches).astype(np.int64, copy=False) if batches else np.empty(0, np.int64)
        if len(order) and (order.min() < 0 or order.max() >= n):
            raise IndexError(f"optimizer batch index out of range 0..{n - 1}")  # the kernels do not bounds-check
        T = len(batches)
        updates = active[0].updates
        lrs_of = {run: np.fromiter(map(run.lr_at, range(updates, updates + T)), np.float64, T) for run in active}
        per_sample = T > 0 and bool(np.all(sizes == 1))
        starts = np.zeros(T + 1, np.int64)
        np.cumsum(sizes, out=starts[1:])
        identity = T == 1 and sizes[0] == n and np.array_equal(order, np.arange(n))
        inv_sizes = (1.0 / np.maximum(sizes, 1)).astype(self.dtype)
        result, going, t0 = {}, list(active), 0
        with np.errstate(all="ignore"):
            while going:
                self._gather(going)
                lrs = np.stack([lrs_of[run] for run in going]).astype(self.dtype)
                if per_sample:
                    done, bad = self._sample(order, lrs, t0)
                else:
                    done, bad = self._batch(order, starts, lrs, inv_sizes, identity, t0)
                self._scatter()
                failed = [run for run, flag in zip(going, bad) if flag]
                for run in failed:
                    result[run] = (done, int(starts[done]), updates + done, lrs_of[run])
                going = [run for run in going if run not in failed]
                if not failed:
                    break
                t0 = done
        for run in going:
            result[run] = (T, int(starts[T]), None, lrs_of[run])
        return result

    def train(self) -> list[pd.DataFrame]:
        for run in self.runs:
            run.record(0)
        active = [run for run in self.runs if run.outcome is None]
        epoch = 0
        while active:
            epoch += 1
            start = time.perf_counter()
            result = self._epoch(active)
            share = (time.perf_counter() - start) / len(active)
            for run in active:
                done, seen, bad_update, lrs = result[run]
                run.seconds += share
                run.lr = float(lrs[done - 1]) if done else run.lr_at(run.updates)
                run.updates += done
                run.samples_seen += seen
                run.record(epoch)
                if bad_update is not None:
                    run.outcome = Outcome("diverged",
                                          f"batch loss became non-finite at update {bad_update} (epoch {epoch})")
            active = [run for run in active if run.outcome is None]
        return [run.frame() for run in self.runs]
