"""`python -m harness run`: train one configuration and print a per-epoch table.

Each row is printed as soon as its epoch is evaluated; the run's final status
and reason follow. BLAS runs on one thread, as in sweeps, so the timings are
comparable. ``--csv`` also writes the full records (harness.results.schema columns).
"""
from __future__ import annotations

import math
from dataclasses import fields

from harness.plugin.specs import DatasetUnavailable, Refused, resolve_params
from harness.learning.runconfig import RunConfig
from harness.errors import HarnessError, UsageError, unknown
from harness.learning.schedules import SCHEDULES

DEFAULTS = {f.name: f.default for f in fields(RunConfig)}
SET_KINDS = ("optimizer", "loss", "dataset")

# (header, record column, width, format spec); floats print "nan" when undefined
TABLE = (
    ("epoch", "epoch", 5, "d"),
    ("updates", "updates", 9, "d"),
    ("samples", "samples_seen", 9, "d"),
    ("train_s", "train_seconds", 8, ".3f"),
    ("lr", "learning_rate", 9, ".3g"),
    ("train_loss", "train_loss", 10, ".4f"),
    ("test_loss", "test_loss", 10, ".4f"),
    ("test_acc", "test_accuracy", 8, ".4f"),
    ("bal_acc", "test_balanced_accuracy", 8, ".4f"),
    ("min_recall", "test_minority_recall", 10, ".4f"),
)
KIND_TABLE = {"optimizer": "optimizers", "loss": "losses", "dataset": "datasets"}


def configure(parser):
    d = DEFAULTS
    parser.add_argument("--dataset", required=True, help="dataset name (see `harness list datasets`)")
    parser.add_argument("--loss", required=True, help="loss name (see `harness list losses`)")
    parser.add_argument("--optimizer", required=True, help="optimizer name (see `harness list optimizers`)")
    parser.add_argument("--seed", type=int, default=d["seed"], help="seed of split, initial weights and batching")
    parser.add_argument("--epochs", type=int, default=d["epochs"], help="maximum number of epochs")
    parser.add_argument("--lr", type=float, default=d["lr"], help="initial learning rate lr0")
    parser.add_argument("--schedule", default=d["schedule"], choices=SCHEDULES,
                        help="learning-rate schedule; t counts updates")
    parser.add_argument("--decay", type=float, default=d["decay"],
                        help="k of 'inverse' lr0/(1+k t); gamma of 'step'")
    parser.add_argument("--step-every", type=int, default=d["step_every"],
                        help="updates between 'step' drops (0: once per epoch)")
    parser.add_argument("--tol", type=float, default=d["tol"], help="stop when train loss <= tol (0: off)")
    parser.add_argument("--lecture-stop", action="store_true",
                        help="stop when train loss <= 1/sqrt(updates) (the lecture's rule)")
    parser.add_argument("--patience", type=int, default=d["patience"],
                        help="stop after this many epochs without train-loss improvement (0: off)")
    parser.add_argument("--time-budget", type=float, default=d["time_budget"],
                        help="stop after this many training seconds (0: off)")
    parser.add_argument("--hidden", default=",".join(map(str, d["hidden"])),
                        help="hidden layer widths, e.g. 64,32; 'none' for no hidden layer (convex)")
    parser.add_argument("--activation", default=d["activation"], choices=("relu", "tanh", "sigmoid"))
    parser.add_argument("--dtype", default=d["dtype"], choices=("float64", "float32"))
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KIND.PARAM=VALUE",
                        help="a plugin hyper-parameter, e.g. optimizer.batch_size=16, "
                             "loss.normalisation=lecture, dataset.imbalance=0.1 (repeatable)")
    parser.add_argument("--csv", metavar="PATH", help="also write the per-epoch records to this CSV file")


def parse_hidden(text: str) -> tuple:
    """'64,32' -> (64, 32); 'none', '' or '()' -> () (no hidden layer)."""
    text = text.strip()
    if text.lower() in ("", "none", "()", "0"):
        return ()
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--hidden expects comma-separated widths like 64,32 or 'none', got {text!r}") from None
    if any(w < 1 for w in widths):
        raise UsageError(f"--hidden widths must be positive, got {text!r}")
    return widths


def parse_sets(items) -> dict:
    """['optimizer.batch_size=16', ...] -> {'optimizer': {'batch_size': '16'}, 'loss': {}, 'dataset': {}}."""
    out = {kind: {} for kind in SET_KINDS}
    for item in items:
        key, eq, value = item.partition("=")
        kind, dot, name = key.strip().partition(".")
        if not eq or not dot or not name:
            raise UsageError(f"--set expects KIND.PARAM=VALUE (KIND one of {', '.join(SET_KINDS)}), got {item!r}")
        if kind not in out:
            raise unknown("--set kind", kind, SET_KINDS)
        out[kind][name.strip()] = value.strip()
    return out


def _typed(registry, kind: str, name: str, given: dict) -> dict:
    """Plugin hyper-parameters parsed by their Param definitions (one-line errors)."""
    spec = registry.get(KIND_TABLE[kind], name)
    resolved = resolve_params(spec.params, given, f"{kind} {name}")
    return {k: resolved[k] for k in given}


def build_config(args, registry) -> RunConfig:
    sets = parse_sets(args.sets)
    for name in ("epochs", "patience", "step_every"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    for name in ("lr", "decay", "tol", "time_budget"):
        if not math.isfinite(getattr(args, name)):
            raise UsageError(f"--{name.replace('_', '-')} must be a finite number")
    registry.get("datasets", args.dataset)  # unknown names fail here, before any work
    return RunConfig.make(
        args.dataset, args.loss, args.optimizer,
        optimizer_params=_typed(registry, "optimizer", args.optimizer, sets["optimizer"]),
        loss_params=_typed(registry, "loss", args.loss, sets["loss"]),
        dataset_params=sets["dataset"],
        hidden=parse_hidden(args.hidden),
        seed=args.seed, lr=args.lr, schedule=args.schedule, decay=args.decay, step_every=args.step_every,
        epochs=args.epochs, tol=args.tol, lecture_stop=args.lecture_stop, patience=args.patience,
        time_budget=args.time_budget, activation=args.activation, dtype=args.dtype,
    )


def _print_row(row: dict) -> None:
    print(" ".join(f"{row[col]:>{width}{spec}}" for _, col, width, spec in TABLE), flush=True)


def _print_header(config: RunConfig) -> None:
    params = {k: v for k, v in config.to_dict().items() if v not in ({}, "")}
    print("run: " + ", ".join(f"{k}={v}" for k, v in params.items()))
    print(" ".join(f"{header:>{width}}" for header, _, width, _ in TABLE))


def execute(args) -> int:
    from harness.plugin.loader import load_registry
    from harness.learning.trainer import single_thread_blas, train

    registry = load_registry()
    config = build_config(args, registry)
    def progress(row: dict) -> None:
        if row["epoch"] == 0:  # header only once the run is past validation and loading
            _print_header(config)
        _print_row(row)

    try:
        with single_thread_blas():
            records = train(config, registry=registry, progress=progress)
    except Refused as exc:
        raise UsageError(f"refused: {exc}") from None
    except DatasetUnavailable as exc:
        raise HarnessError(str(exc)) from None
    except HarnessError:
        raise
    except ValueError as exc:
        raise UsageError(" ".join(str(exc).split())) from None
    status, reason = records["status"].iloc[-1], records["reason"].iloc[-1]
    print(f"status: {status} ({reason})")
    if args.csv:
        try:
            records.to_csv(args.csv, index=False)
        except OSError as exc:
            raise HarnessError(f"cannot write {args.csv}: {exc.strerror or exc}") from None
        print(f"records written to {args.csv}")
    return 0
