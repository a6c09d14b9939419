"""``python -m harness export DIR --to mlflow|csv``: send a sweep's stored runs to another tool."""
from __future__ import annotations

import argparse
import logging

from harness.cli.report import _sweep_dir

from harness.errors import HarnessError, UsageError, last_line

DESCRIPTION = """\
Export the runs a sweep stored in DIR/results/*.parquet. Nothing is trained.

--to mlflow: each run becomes an MLflow run in the experiment named after the
sweep: its settings as params, every per-epoch value as a metric with
step = epoch, its status (done/stopped -> FINISHED, diverged/error -> FAILED,
skipped -> KILLED; the harness status and reason as tags) and the tags
harness.sweep, harness.cell_id and harness.phase. By default into a SQLite
tracking store in the sweep folder (sqlite:///DIR/mlflow.db). Rerunning adds
only the runs not yet exported (found by their harness.cell_id tag). Needs the
optional extra: pip install "harness-gd[mlflow]".

--to csv: DIR/results.csv, as `harness sweep --csv` writes it."""

EPILOG = """\
examples:
  python -m harness export reports/default --to mlflow
  mlflow ui --backend-store-uri sqlite:///reports/default/mlflow.db
  python -m harness export reports/default --to mlflow --tracking-uri http://localhost:5000
  python -m harness export default --to csv

exit status: 0 exported, 2 bad usage, 1 a failure (no results, MLflow not installed, tracking store unreachable)."""


def configure(parser):
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("dir", metavar="DIR", help="the sweep folder (reports/<name>) holding results/")
    parser.add_argument("--to", required=True, choices=("mlflow", "csv"), help="where the runs go")
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="MLflow tracking URI (default: sqlite:///DIR/mlflow.db)")


def execute(args) -> int:
    sweep_dir = _sweep_dir(args.dir)
    if args.tracking_uri is not None and args.to != "mlflow":
        raise UsageError("--tracking-uri is for --to mlflow")
    # pandas, pyarrow and mlflow load here, not at import, so that `harness --help` stays fast
    if args.to == "csv":
        from harness.results.store import export_csv, read_results

        results = read_results(sweep_dir)
        if len(results) == 0:
            raise HarnessError(f"no stored results in {sweep_dir}")
        print(f"results CSV: {export_csv(sweep_dir, results)}")
        return 0
    from harness.export.mlflow_runs import export_mlflow

    # MLflow announces creating and migrating a new SQLite store on stderr; a harness user need not see it
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)

    try:
        summary = export_mlflow(sweep_dir, args.tracking_uri)
    except HarnessError:
        raise
    except Exception as exc:   # the tracking store refused or could not be reached: one line
        where = args.tracking_uri or "the sweep's SQLite store"
        raise HarnessError(f"MLflow export to {where} failed: {last_line(exc)}") from None
    print(f"mlflow: {summary.exported} runs exported, {summary.already} already there"
          + (f", {summary.replaced} half-written ones replaced" if summary.replaced else "")
          + f"; experiment {summary.experiment!r} at {summary.tracking_uri}")
    return 0


