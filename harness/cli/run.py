"""`python -m harness run`: train one configuration and print a per-epoch table.

Each row is printed as soon as its epoch is evaluated; the run's final status
and reason follow. BLAS runs on one thread, as in sweeps, so the timings are
comparable. ``--csv`` also writes the full records (harness.results.schema columns).
"""
from __future__ import annotations

import argparse
import re
import sys

from harness.errors import HarnessError, UsageError
from harness.learning.runconfig import RUN_PARAMS, SEED, RunConfig
from harness.plugin.loader import load_registry
from harness.plugin.specs import DatasetUnavailable, Refused
from harness.sweep.config import load_run_settings, settings_help
from harness.sweep.plan import single_run

DESCRIPTION = """\
Train one configuration and print a per-epoch table. The settings are the keys
of `harness sweep` (run.*, optimizer.*, loss.*, dataset.*), one value each:
--set run.hidden=64x32 and --hidden 64x32 are the same setting, and so are
--set optimizer.batch_size=16 and --set optimizer.minibatch.batch_size=16 when
the optimizer is minibatch. Grids (comma lists) are for `harness sweep`."""

DIVERGED_EXIT = 3   # a diverged run is a result, but scripts need to tell it from a finished one

EPILOG = settings_help() + """

exit status: 0 the run ended done or stopped by a stopping rule; 3 the run diverged (its records
are still printed and written with --csv); 1 a failure such as unavailable data; 2 bad usage.

examples:
  python -m harness run --dataset digits --loss ce --optimizer minibatch --hidden 64x32 \\
      --set optimizer.batch_size=16 --epochs 10
  python -m harness run --dataset iris --loss wce --optimizer sgd --schedule inverse:0.001 --hidden none"""

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
_OLD_HIDDEN = re.compile(r"^\s*\d+(\s*,\s*\d+)+\s*$")   # --hidden 64,32 (before 64x32)


def add_setting_options(parser, grids: bool) -> None:
    """One option per engine setting (``--epochs`` is ``run.epochs``), shared by `run` and `sweep`."""
    more = " (a comma list is a grid)" if grids else ""
    for p in RUN_PARAMS:
        flag = "--" + p.name.replace("_", "-")
        if p.type is bool:
            parser.add_argument(flag, dest=p.name, action="store_true", default=None,
                                help=f"run.{p.name}=true: {p.help}")
        else:
            parser.add_argument(flag, dest=p.name, metavar="V" + (",V" if grids else ""),
                                help=f"run.{p.name}: {p.help}{more}")


def setting_overrides(args) -> dict:
    """The engine settings given as dedicated options, as ``{name: text}`` (spellings of ``run.<name>``)."""
    return {p.name: ("true" if p.type is bool else getattr(args, p.name))
            for p in RUN_PARAMS if getattr(args, p.name) is not None}


def configure(parser):
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--dataset", required=True, help="dataset name (see `harness list datasets`)")
    parser.add_argument("--loss", required=True, help="loss name (see `harness list losses`)")
    parser.add_argument("--optimizer", required=True, help="optimizer name (see `harness list optimizers`)")
    parser.add_argument("--seed", default=str(SEED.default), help=SEED.help)
    add_setting_options(parser, grids=False)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="any key listed below, e.g. run.hidden=64x32, optimizer.batch_size=16, "
                             "loss.normalisation=lecture, dataset.imbalance=0.1 (repeatable)")
    parser.add_argument("--csv", metavar="PATH", help="also write the per-epoch records to this CSV file")


def build_config(args, registry) -> RunConfig:
    """The fully resolved RunConfig, by the grammar and builder a sweep uses."""
    overrides = setting_overrides(args)
    if overrides.get("hidden") and _OLD_HIDDEN.match(overrides["hidden"]):
        overrides["hidden"] = "x".join(w.strip() for w in overrides["hidden"].split(","))
        print(f"harness run: note: --hidden {args.hidden} is deprecated; write --hidden {overrides['hidden']} "
              "(commas separate grid values)", file=sys.stderr)
    settings = load_run_settings(args.dataset, args.loss, args.optimizer, seed=args.seed, sets=args.sets,
                                 overrides=overrides, registry=registry)
    return single_run(settings, registry)


def _print_row(row: dict) -> None:
    print(" ".join(f"{row[col]:>{width}{spec}}" for _, col, width, spec in TABLE), flush=True)


def _print_header(config: RunConfig) -> None:
    params = {k: v for k, v in config.to_dict().items() if v not in ({}, "")}
    print("run: " + ", ".join(f"{k}={v}" for k, v in params.items()))
    print(" ".join(f"{header:>{width}}" for header, _, width, _ in TABLE))


def execute(args) -> int:
    # the trainer (pandas) loads here, not at import, so that `harness --help` stays fast
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
    return DIVERGED_EXIT if status == "diverged" else 0
