"""Time one training epoch of our MLP against scikit-learn's MLPClassifier and PyTorch CPU.

Same problem for every contestant: one hidden layer of 128 relu units, softmax
cross-entropy, plain SGD (no momentum, no L2 penalty), constant learning rate,
float64 (torch too), reshuffled batches of 1, 32, 128 and the full training
set, on digits (1797 x 64, 10 classes) and make_classification(20000, 100
features, 10 classes), both standardised.

* ours: ``harness.learning.trainer.train_epoch`` (the exact loop ``harness run`` times),
  which takes the compiled fast path (``harness.learning.kernels``) for these
  built-ins; in float64 (the compared column) and in float32 (an extra column);
* scikit-learn: ``MLPClassifier(solver='sgd', momentum=0, alpha=0, ...)``, one
  ``partial_fit`` call = one epoch;
* PyTorch: ``nn.Sequential(Linear, ReLU, Linear)`` + ``CrossEntropyLoss`` +
  ``optim.SGD``, skipped with a note when torch is not importable.

Fairness: BLAS is pinned to one thread for every contestant (threadpoolctl for
numpy/scipy/scikit-learn, ``torch.set_num_threads(1)``). The contestants of a
row are timed in turns (one epoch each per round, ``--repeats`` rounds after
one warm-up epoch each): a cell is the median of its epochs, a ratio the median
over rounds of the two epochs' ratio, so a burst of load from other processes
lands on every contestant of a round alike. Batch size 1 on the
20000-sample set times the first ``--subset`` samples' updates and scales to a
full epoch (marked ``*``).

The numba first-call cost is measured in fresh processes: with an empty
compilation cache (what the first run on a machine pays) and with the cache
filled (what every later process, e.g. each sweep worker, pays).

``--bn`` adds batch normalisation (``minibatch-bn``): one epoch (digits, batch
32, the MLP above with batch norm) through the compiled batch-norm kernel and
through the numpy path, and one default-sweep ``minibatch-bn`` cell (``ce``,
hidden 32, relu, 20 epochs, 1000 samples, the trainer's ``train_seconds``) on
digits and face-vs-background on both paths, beside a plain ``minibatch`` cell.

Usage: ``python benchmarks/bench_epoch.py [--repeats 7] [--subset 2000] [--quick] [--no-compile-cost] [--bn]``
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits, make_classification
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from harness.learning.model import MLP
from harness.learning.schedules import make_schedule
from harness.learning.trainer import train_epoch
from harness_plugins.losses import make_ce
from harness_plugins.optimizers import PlainGD

from machine_load import uptime

HIDDEN = 128
LR = 0.01


def datasets(quick: bool):
    X, y = load_digits(return_X_y=True)
    yield "digits", StandardScaler().fit_transform(X), y
    if not quick:
        X, y = make_classification(20000, 100, n_informative=30, n_classes=10, random_state=0)
        yield "classif20k", StandardScaler().fit_transform(X), y


def median_time(run_epoch, repeats: int) -> float:
    run_epoch()  # warm-up: buffers, caches, lazy imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_epoch()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_times(contestants: dict, repeats: int) -> dict:
    """Each contestant's epoch times, taken in turns: one epoch of each per round, ``repeats`` rounds.

    Why: on a shared machine the load drifts over seconds; timing one contestant's
    epochs and then the next one's lets a burst of load land on one of them and
    move the ratio. In turns, a round's epochs see about the same machine, and the
    ratio of two contestants is taken per round (``round_ratios``).
    """
    for run_epoch in contestants.values():
        run_epoch()  # warm-up: buffers, caches, lazy imports
    times = {name: [] for name in contestants}
    for _ in range(repeats):
        for name, run_epoch in contestants.items():
            start = time.perf_counter()
            run_epoch()
            times[name].append(time.perf_counter() - start)
    return times


def round_ratios(times: dict, anchor: str, ours_name: str = "ours") -> float:
    """The median over rounds of anchor time / our time (NaN when the anchor did not run)."""
    if anchor not in times:
        return float("nan")
    return statistics.median(a / o for a, o in zip(times[anchor], times[ours_name]))


def ours(X, y, batch, dtype="float64", batch_norm=False, compiled=True):
    X = np.ascontiguousarray(X, dtype=dtype)
    loss = make_ce(y, 10)
    model = MLP(X.shape[1], 10, (HIDDEN,), "relu", batch_norm=batch_norm, seed=0, dtype=dtype)
    optimizer = PlainGD("full") if batch >= len(y) else PlainGD("shuffled", batch, no_single_batches=batch_norm)
    if not compiled:
        optimizer.step_is_plain_gd = False  # an instance without the fast-path capability: the numpy path
    rng = np.random.default_rng(0)
    lr_at = make_schedule("constant", LR)
    return lambda: train_epoch(model, optimizer, loss, X, y, rng, lr_at)


def sklearn(X, y, batch):
    clf = MLPClassifier((HIDDEN,), activation="relu", solver="sgd", momentum=0.0, nesterovs_momentum=False,
                        alpha=0.0, batch_size=batch, learning_rate="constant", learning_rate_init=LR,
                        shuffle=True, random_state=0)
    classes = np.arange(10)

    def epoch():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.partial_fit(X, y, classes=classes)

    return epoch


def torch_contestant():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)

    def make(X, y, batch):
        torch.manual_seed(0)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y).long()
        net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], HIDDEN), torch.nn.ReLU(),
                                  torch.nn.Linear(HIDDEN, 10)).double()
        opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.0)
        crit = torch.nn.CrossEntropyLoss()
        n = len(y)

        def epoch():
            perm = torch.randperm(n)
            for start in range(0, n, batch):
                idx = perm[start:start + batch]
                opt.zero_grad(set_to_none=False)
                crit(net(Xt[idx]), yt[idx]).backward()
                opt.step()

        return epoch

    return make


FIRST_CALL = """
import time
start = time.perf_counter()
import numpy as np
from harness.learning.model import MLP
from harness.learning.schedules import make_schedule
from harness.learning.trainer import train_epoch
from harness_plugins.losses import make_ce
from harness_plugins.optimizers import PlainGD
imported = time.perf_counter()
X, y = np.random.default_rng(0).normal(size=(64, 8)), np.arange(64) % 3
for batch in (1, 16):
    model = MLP(8, 3, (4,), seed=0)
    train_epoch(model, PlainGD("shuffled", batch), make_ce(y, 3), X, y, np.random.default_rng(0),
                make_schedule("constant", 0.1))
print(f"{imported - start:.2f} {time.perf_counter() - imported:.2f}")
"""


def first_call_cost() -> str:
    """Seconds for imports and for the first float64 per-sample + mini-batch epochs, cold and cached cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        runs = [subprocess.run([sys.executable, "-c", FIRST_CALL], env=env, capture_output=True, text=True,
                               check=True).stdout.split() for _ in range(2)]
    (imp_cold, first_cold), (imp_warm, first_warm) = runs
    return (f"# numba first call (per-sample + mini-batch kernels, float64), fresh process: "
            f"{first_cold} s with an empty cache, {first_warm} s with the cache filled "
            f"(imports: {imp_cold} s / {imp_warm} s)")


BN_CELL = dict(loss="ce", hidden=(32,), activation="relu", epochs=20, lr=0.05, seed=0,
               dataset_params={"max_samples": 1000})


def bn_rows(repeats: int) -> None:
    """Batch normalisation: one epoch, then one default-sweep cell, compiled kernel vs numpy path."""
    from harness.learning import kernels
    from harness.learning.runconfig import RunConfig
    from harness.learning.split import load_split
    from harness.learning.trainer import train
    from harness.plugin.loader import load_registry

    X, y = next(datasets(True))[1:]
    t_plain = median_time(ours(X, y, 32), repeats)
    t_fast = median_time(ours(X, y, 32, batch_norm=True), repeats)
    t_numpy = median_time(ours(X, y, 32, batch_norm=True, compiled=False), repeats)
    print(f"# batch norm, one epoch: digits, batch 32, MLP 64-{HIDDEN}-10 relu, float64, median of {repeats}")
    print(f"bn epoch    compiled {t_fast * 1e3:.2f} ms  numpy path {t_numpy * 1e3:.2f} ms  "
          f"numpy/compiled {t_numpy / t_fast:.2f}x  (plain minibatch, compiled: {t_plain * 1e3:.2f} ms)", flush=True)
    registry = load_registry()
    print(f"# one default-sweep cell: {BN_CELL}; median of {repeats} runs' train_seconds (training steps only)")
    header = f"{'dataset':<20}{'bn compiled ms':>16}{'bn numpy ms':>13}{'numpy/compiled':>16}{'minibatch ms':>14}"
    print(header)
    print("-" * len(header))
    previous = os.environ.get(kernels.ENV_SWITCH)
    try:
        for name in ("digits", "face-vs-background"):
            split = load_split(name, seed=0, registry=registry, max_samples=1000)
            cells = {}
            for label, optimizer, flag in (("fast", "minibatch-bn", "1"), ("numpy", "minibatch-bn", "0"),
                                           ("plain", "minibatch", "1")):
                os.environ[kernels.ENV_SWITCH] = flag
                config = RunConfig.make(name, optimizer=optimizer, **BN_CELL)
                train(config, split=split, registry=registry)  # warm-up
                cells[label] = statistics.median(
                    train(config, split=split, registry=registry).train_seconds.iloc[-1] for _ in range(repeats))
            print(f"{name:<20}{cells['fast'] * 1e3:>16.1f}{cells['numpy'] * 1e3:>13.1f}"
                  f"{cells['numpy'] / cells['fast']:>16.2f}{cells['plain'] * 1e3:>14.1f}", flush=True)
    finally:
        if previous is None:
            os.environ.pop(kernels.ENV_SWITCH, None)
        else:
            os.environ[kernels.ENV_SWITCH] = previous


def versions() -> str:
    import numba
    import sklearn

    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = "absent"
    return (f"# python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
            f"scikit-learn {sklearn.__version__}, torch {torch_version}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="rounds: timed epochs per contestant (median)")
    parser.add_argument("--subset", type=int, default=2000,
                        help="batch size 1 on the 20000-sample set: time this many updates and scale")
    parser.add_argument("--quick", action="store_true", help="digits only")
    parser.add_argument("--no-compile-cost", action="store_true", help="skip the numba first-call measurement")
    parser.add_argument("--bn", action="store_true", help="add the batch-norm rows (one epoch and one sweep cell)")
    parser.add_argument("--bn-only", action="store_true", help="only the batch-norm rows")
    args = parser.parse_args(argv)

    torch_make = torch_contestant()
    print(f"# one-epoch times, median of {args.repeats} rounds (contestants in turns, after 1 warm-up); BLAS pinned to 1 thread for all; "
          f"float64; MLP d-{HIDDEN}-10 relu, SGD lr={LR}, no momentum/penalty")
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"uptime at start: {uptime()}")
    print(versions())
    if args.bn_only:
        with threadpool_limits(limits=1):
            bn_rows(args.repeats)
        print(f"# uptime at end: {uptime()} (other processes on the machine inflate times)")
        return
    if torch_make is None:
        print("# PyTorch not importable: torch column skipped (pip install torch to include it)")
    header = (f"{'dataset':<11}{'batch':>7}{'n':>7}{'ours ms':>10}{'f32 ms':>9}{'sklearn ms':>12}{'torch ms':>10}"
              f"{'sk/ours':>9}{'torch/ours':>11}{'ours us/upd':>12}")
    print(header)
    print("-" * len(header))
    with threadpool_limits(limits=1):
        for name, X, y in datasets(args.quick):
            for batch in (1, 32, 128, len(y)):
                Xs, ys, scale, mark = X, y, 1.0, " "
                if batch == 1 and len(y) > args.subset:
                    Xs, ys = X[:args.subset], y[:args.subset]
                    scale, mark = len(y) / args.subset, "*"
                contestants = {"ours": ours(Xs, ys, batch), "f32": ours(Xs, ys, batch, "float32"),
                               "sklearn": sklearn(Xs, ys, batch)}
                if torch_make:
                    contestants["torch"] = torch_make(Xs, ys, batch)
                times = interleaved_times(contestants, args.repeats)
                med = {k: statistics.median(v) * scale for k, v in times.items()}
                t_ours, t_f32, t_sk = med["ours"], med["f32"], med["sklearn"]
                t_torch = med.get("torch", float("nan"))
                updates = -(-len(y) // batch)
                label = "full" if batch == len(y) else str(batch)
                print(f"{name:<11}{label:>7}{len(y):>6}{mark}{t_ours * 1e3:>10.2f}{t_f32 * 1e3:>9.2f}"
                      f"{t_sk * 1e3:>12.2f}"
                      f"{t_torch * 1e3:>10.2f}{round_ratios(times, 'sklearn'):>9.2f}"
                      f"{round_ratios(times, 'torch'):>11.2f}"
                      f"{t_ours / updates * 1e6:>12.1f}", flush=True)
    print("# ratios > 1: ours (float64) is faster; each is the median over rounds of (anchor epoch / our epoch), the "
          "contestants timed in turns, one epoch each per round. f32 = ours in float32. * = timed on the first "
          f"{args.subset} samples' updates and scaled to the full epoch.")
    if args.bn:
        with threadpool_limits(limits=1):
            bn_rows(args.repeats)
    if not args.no_compile_cost:
        print(first_call_cost())
    print(f"# uptime at end: {uptime()} (other processes on the machine inflate times)")


if __name__ == "__main__":
    main()
