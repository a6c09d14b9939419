"""``python -m harness sweep``: run a grid of configurations and write the convergence report."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.cli.run import add_setting_options, setting_overrides
from harness.errors import HarnessError, last_line
from harness.plugin.loader import load_registry
from harness.sweep.config import MAX_SEEDS, TIMEOUT, load_config, settings_help

DESCRIPTION = """\
Run every combination of datasets x losses x optimizers x hyper-parameter grid x
seeds, tune each optimizer's learning rate on the validation split, store every
cell as it finishes and write the report to OUT/NAME/index.html.

With no arguments it runs the default sweep (harness/sweep/presets/default.toml: the
five built-in optimizers x ce, bce, wce x digits, breast_cancer,
face-vs-background, 8 seeds, each seed tuned on its own; docs/sweep.md gives its time).
Command-line options override the config file key by key."""

EPILOG = """\
tuning rule (docs/sweep.md):
  every optimizer is tuned: its grid is tune.lr.<optimizer>, else run.lr, else the grid it
  declares, else a default log grid 1e-3..1 (flagged). For each (dataset, loss, optimizer,
  grid point) every rate runs on every seed (tune.per_seed = true, the default; false: on
  tune.seeds only); each objective of tune.metric (default: what the claims ask for, plus
  val_loss for the tables) picks the best rate among runs that finished (ties -> smaller lr).
  A pick at a grid edge extends the grid one log step that way (tune.max_extensions per side).
  The chosen rates run on every seed. The test split is never used.

resume and safety:
  each cell is written to OUT/NAME/results/<cell id>.parquet the moment it ends;
  rerunning the same command skips stored cells (--force reruns them). A second
  sweep writing to the same folder at the same time is refused, and so is a sweep
  with another configuration on a folder that holds one (--name or --force).

examples:
  python -m harness sweep --dry-run
  python -m harness sweep --jobs 2 --seeds 5 --name five-seeds
  python -m harness sweep --config reports/examples/convex.toml
  python -m harness sweep --datasets digits --losses ce,wce --optimizers sgd,minibatch \\
      --set optimizer.minibatch.batch_size=16,64 --set run.lr=0.01,0.1 --epochs 10
  python -m harness sweep --backend dask --scheduler tcp://10.0.0.5:8786

learning rate on the command line:
  --lr 0.05 (or --set run.lr=0.05) runs every optimizer at 0.05, untuned; --lr 0.01,0.1 tunes every
  optimizer over that grid. Either way the config file's [tune.lr] grids are ignored, and the first
  line of output says so.

exit status:
  0    every cell of the plan is stored (cells that ended in error or timeout are results, not failures)
  1    a failure you can act on: a cell could not be written, the dask scheduler is unreachable, another
       sweep holds the folder, the report could not be built; stored cells are kept, rerun to resume
  2    bad usage, including a folder that holds another sweep (use --name NAME or --force)
  130  interrupted (Ctrl-C); stored cells are kept, rerun to resume
faults: a cell that crashes its worker is stored as error (signal/exit code) and retried once on resume;
  one running past --timeout seconds is stored as timeout. See docs/faults.md.

""" + settings_help() + """
  top level: name, out, datasets, losses, optimizers, seeds, jobs, backend, scheduler, timeout
  tune.metric, tune.per_seed, tune.seeds, tune.max_extensions, tune.lr.<optimizer>
"""


def configure(parser):
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--config", metavar="TOML",
                        help="sweep config file (default: the built-in preset 'default')")
    parser.add_argument("--datasets", metavar="A,B", help="comma list of datasets (see `harness list datasets`)")
    parser.add_argument("--losses", metavar="A,B", help="comma list of losses (see `harness list losses`)")
    parser.add_argument("--optimizers", metavar="A,B", help="comma list of optimizers")
    parser.add_argument("--seeds", metavar="N|A,B",
                        help=f"3 means seeds 0,1,2; 0,5,7 means exactly those (at most {MAX_SEEDS})")
    parser.add_argument("--jobs", metavar="N", help="parallel worker processes (loky backend)")
    parser.add_argument("--out", metavar="DIR", help="parent folder of the sweep folder (default: reports)")
    parser.add_argument("--name", metavar="NAME", help="sweep name = folder under --out (default: from config)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=V1,V2",
                        help="set or grid any key, repeatable (see below)")
    parser.add_argument("--backend", choices=("loky", "dask"), default=None,
                        help="loky: local processes (default); dask: an existing dask.distributed cluster")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="dask scheduler address, e.g. tcp://host:8786")
    parser.add_argument("--timeout", metavar="SECONDS", help=f"{TIMEOUT.help} (default {TIMEOUT.default:g})")
    add_setting_options(parser, grids=True)
    parser.add_argument("--dry-run", action="store_true", help="print the plan, its size and the skips; run nothing")
    parser.add_argument("--force", action="store_true", help="rerun cells that are already stored")
    parser.add_argument("--csv", action="store_true", help="also export OUT/NAME/results.csv")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar or phase messages")
    parser.add_argument("--no-report", dest="report", action="store_false",
                        help="store the results but do not build the report")


def execute(args) -> int:
    # the runner (pandas, pyarrow, joblib) loads here, not at import, so that `harness --help` stays fast
    from harness.sweep.runner import run_sweep

    registry = load_registry()
    for failure in registry.failures:
        print(f"warning: {failure}", file=sys.stderr)
    overrides = {
        "datasets": args.datasets, "losses": args.losses, "optimizers": args.optimizers,
        "seeds": args.seeds, "jobs": args.jobs, "out": args.out, "name": args.name,
        "backend": args.backend, "scheduler": args.scheduler, "timeout": args.timeout,
        **setting_overrides(args),
    }
    config = load_config(args.config, sets=args.sets, overrides=overrides, registry=registry)
    if not args.dry_run:   # the dry run prints them at the top of the plan
        for note in config.notes:
            print(note, flush=True)
    try:
        outcome = run_sweep(config, registry=registry, quiet=args.quiet, dry_run=args.dry_run, force=args.force,
                            csv=args.csv)
        if outcome is not None and args.report:
            print(f"report: {_build_report(outcome)}")
    except BrokenPipeError:
        raise
    except OSError as exc:   # e.g. a read-only or full disk under --out
        where = f"{exc.filename}: " if exc.filename else ""
        raise HarnessError(f"{where}{exc.strerror or exc}") from None
    return 0


def _build_report(outcome) -> Path:
    """The page of a finished sweep, from the results and manifest the runner returns."""
    sweep_dir = outcome.sweep_dir
    try:
        from harness.report import build_report   # heavy (matplotlib): only when a report is built
    except ImportError as exc:
        raise HarnessError(f"results are stored in {sweep_dir}, but the report builder is unavailable: "
                           f"{exc}") from None
    try:
        return Path(build_report(sweep_dir, results=outcome.results, manifest=outcome.manifest))
    except HarnessError:
        raise
    except Exception as exc:
        raise HarnessError(f"results are stored in {sweep_dir}, but building the report failed "
                           f"({last_line(exc)}); retry with `python -m harness report {sweep_dir}`") from None


