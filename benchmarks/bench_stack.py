"""What a learning-rate grid costs stacked (``harness.learning.stacked``) against one run and K runs.

Two tables, BLAS pinned to one thread, the machine's load (``uptime``) printed:

* ``epoch``: the training steps only, one epoch of the built-in MLP (hidden 32,
  relu, softmax ce, float64) at the default sweep's training-set sizes on
  synthetic data (digits 600 x 64 / 10 classes, breast_cancer 340 x 30 / 2,
  face-vs-background 600 x 625 / 2), batch 1, 32 and full: the stacked kernel
  on K rates against ``trainer.train_epoch`` of one rate; median of
  ``--repeats`` epochs after a warm-up.
* ``cell``: what the tune phase pays per (dataset, optimizer) group and seed:
  the default sweep's datasets (``max_samples`` 1000) and optimizers, loss ce,
  20 epochs, evaluation included, each optimizer's own 5-rate grid; one run (the
  middle rate) vs the K runs one after another vs ``train_stacked``; wall time,
  median of 3. The issue's target is grid <= 2 x one run.

Usage: ``python benchmarks/bench_stack.py [--repeats 5] [--only epoch|cell]``
(face-vs-background needs ``HARNESS_DATA_HOME``; it is skipped with a note otherwise).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

from harness.learning import stacked
from harness.learning.model import MLP
from harness.learning.runconfig import RunConfig
from harness.learning.schedules import make_schedule
from harness.learning.split import Split, load_split
from harness.learning.trainer import batch_rng, single_thread_blas, train, train_epoch
from harness.plugin import DatasetUnavailable
from harness.plugin.loader import load_registry

from machine_load import uptime

K = 5
HIDDEN = 32
SIZES = {"digits": (600, 64, 10), "breast_cancer": (340, 30, 2), "face-vs-background": (600, 625, 2)}
BATCHES = {"1": ("sgd", {}), "32": ("minibatch", {"batch_size": 32}), "full": ("bgd", {})}
OPTIMIZERS = ("bgd", "point", "sgd", "minibatch", "minibatch-bn")


def _interleaved(fns: dict, repeats: int) -> dict:
    """{name: (median, minimum) wall seconds}: the functions take turns, so a change of load hits all alike."""
    times: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def _synthetic_split(n: int, d: int, classes: int) -> Split:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(classes, d))
    y = rng.integers(0, classes, size=n + 2)
    y[:classes] = np.arange(classes)
    X = centres[y] + rng.normal(scale=2.0, size=(len(y), d))
    return Split(X[:n], y[:n], X[n:n + 1], y[n:n + 1], X[n + 1:], y[n + 1:], tuple(map(str, range(classes))))


def epoch_table(registry, repeats: int) -> None:
    """Training steps only: one stacked epoch of K rates vs one epoch of one rate."""
    rates = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3)   # small: nothing diverges or stops, all K train every epoch
    print(f"\n## epoch: training steps of one epoch, K={K}, hidden {HIDDEN}, relu, ce, float64 "
          f"(median of {repeats})")
    print(f"{'set':27} {'batch':>5} {'one run':>10} {'stacked':>10} {'stacked/one':>12} {'stacked/K runs':>15} "
          f"{'min ratio':>12}")
    for name, (n, d, classes) in SIZES.items():
        split = _synthetic_split(n, d, classes)
        for batch, (optimizer, params) in BATCHES.items():
            configs = [RunConfig.make("synthetic", loss="ce", optimizer=optimizer, lr=lr, hidden=(HIDDEN,),
                                      epochs=1, seed=0, optimizer_params=params or None) for lr in rates]
            stack = stacked._Stack.build(configs, split, registry)
            assert stack is not None, "no stacked fast path for the built-ins"
            stack._epoch(stack.runs)    # warm-up
            spec = registry.get("optimizers", optimizer)
            optimizer_obj = spec.factory(**params)
            loss = registry.get("losses", "ce").factory(split.y_train, classes)
            model = MLP(d, loss.n_outputs, (HIDDEN,), "relu", seed=0)
            X = np.ascontiguousarray(split.X_train)
            y = np.ascontiguousarray(split.y_train, dtype=np.int64)
            rng, lr_at = batch_rng(0), make_schedule("constant", rates[2])
            train_epoch(model, optimizer_obj, loss, X, y, rng, lr_at)   # warm-up
            got = _interleaved({"one": lambda: train_epoch(model, optimizer_obj, loss, X, y, rng, lr_at),
                                "stack": lambda: stack._epoch(stack.runs)}, repeats)
            (t_one, m_one), (t_stack, m_stack) = got["one"], got["stack"]
            print(f"{name + f' {n}x{d}':27} {batch:>5} {t_one * 1e3:8.2f}ms {t_stack * 1e3:8.2f}ms "
                  f"{t_stack / t_one:11.2f}x {t_stack / (K * t_one):14.2f}x {m_stack / m_one:11.2f}x")


def cell_table(registry, repeats: int) -> None:
    """A tuning cell: the grid stacked vs one run vs the K runs one by one, evaluation included."""
    print(f"\n## cell: one group's {K}-rate grid, loss ce, 20 epochs, hidden {HIDDEN}, evaluation included "
          f"(wall, median of {repeats})")
    print(f"{'dataset':20} {'optimizer':13} {'one run':>9} {'K runs':>9} {'stacked':>9} {'grid/one':>9} "
          f"{'K runs/one':>11} {'train one':>10} {'train grid':>10} {'ratio':>9}")
    ratios = []
    for dataset in SIZES:
        try:
            split = load_split(dataset, seed=0, registry=registry, max_samples=1000)
        except DatasetUnavailable as exc:
            print(f"{dataset:20} skipped: {exc}")
            continue
        for optimizer in OPTIMIZERS:
            spec = registry.get("optimizers", optimizer)
            params = {"batch_size": 32} if optimizer.startswith("minibatch") else None
            configs = [RunConfig.make(dataset, loss="ce", optimizer=optimizer, lr=lr, hidden=(HIDDEN,), epochs=20,
                                      seed=0, optimizer_params=params, dataset_params={"max_samples": 1000})
                       for lr in spec.lr_grid[:K]]
            middle = configs[len(configs) // 2]
            train(middle, split=split, registry=registry)   # warm-up (kernels loaded)
            stacked.train_stacked(configs[:1], split=split, registry=registry)
            got = _interleaved({
                "one": lambda: train(middle, split=split, registry=registry),
                "runs": lambda: [train(c, split=split, registry=registry) for c in configs],
                "stack": lambda: stacked.train_stacked(configs, split=split, registry=registry)}, repeats)
            (t_one, _), (t_runs, _), (t_stack, _) = got["one"], got["runs"], got["stack"]
            ratios.append(t_stack / t_one)
            # training seconds inside the cell (the rest is evaluation and set-up): one run, and the grid's
            # stacked epochs (the sum of the runs' shares)
            train_one = train(middle, split=split, registry=registry).train_seconds.iloc[-1]
            frames = stacked.train_stacked(configs, split=split, registry=registry)
            train_stack = sum(frame.train_seconds.iloc[-1] for frame in frames)
            print(f"{dataset:20} {optimizer:13} {t_one:8.3f}s {t_runs:8.3f}s {t_stack:8.3f}s "
                  f"{t_stack / t_one:8.2f}x {t_runs / t_one:10.2f}x {train_one:9.3f}s {train_stack:9.3f}s "
                  f"{train_stack / train_one:8.2f}x")
    if ratios:
        print(f"grid/one run: median {statistics.median(ratios):.2f}x, worst {max(ratios):.2f}x "
              f"(target <= 2x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="epochs timed per epoch-table cell")
    parser.add_argument("--only", choices=("epoch", "cell"), help="print one table only")
    args = parser.parse_args()
    import numba
    print(f"# bench_stack  {time.strftime('%Y-%m-%d %H:%M')}  python {platform.python_version()}  "
          f"numpy {np.__version__}  numba {numba.__version__}")
    print(f"load before: {uptime()}")
    registry = load_registry()
    with single_thread_blas():
        if args.only in (None, "epoch"):
            epoch_table(registry, args.repeats)
        if args.only in (None, "cell"):
            cell_table(registry, 3)
    print(f"\nload after: {uptime()}")


if __name__ == "__main__":
    main()
