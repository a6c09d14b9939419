"""``python -m harness report DIR``: rebuild a sweep's report from its stored results (no training)."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import HarnessError, last_line

DESCRIPTION = """\
Rebuild DIR/index.html with its figures (DIR/figures/*.png, and *.svg/*.pdf
with --format) and tables (DIR/tables/*.csv, *.md and *.tex) from the results a sweep stored in
DIR/results/*.parquet and DIR/manifest.json. Nothing is trained; run it after
changing the report code or to refresh a report of an interrupted sweep.
docs/reports.md explains every part of the page and the rules behind it."""

EPILOG = """\
examples:
  python -m harness report reports/default
  python -m harness report default          (a sweep name under ./reports works too)
  python -m harness report reports/default --format png,svg,pdf"""


def configure(parser):
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("dir", metavar="DIR", help="the sweep folder (reports/<name>) holding results/ and manifest.json")
    parser.add_argument("--all-cells", action="store_true",
                        help="include result files of older plans left in the folder (default: only the cells "
                        "the manifest lists)")
    parser.add_argument("--format", default="png", metavar="F,F",
                        help="figure files to write: a comma list of png, svg, pdf (default png; the page always "
                        "gets PNG)")


def _sweep_dir(text: str) -> Path:
    path = Path(text)
    if not path.is_dir() and not path.is_absolute() and (Path("reports") / text).is_dir():
        path = Path("reports") / text
    if not path.exists():
        raise HarnessError(f"no such sweep folder: {text}")
    if not path.is_dir():
        raise HarnessError(f"not a folder: {text} (give the sweep folder, e.g. reports/default)")
    return path


def execute(args) -> int:
    sweep_dir = _sweep_dir(args.dir)
    formats = [f for f in str(getattr(args, "format", "png")).split(",") if f.strip()]
    # pandas, pyarrow and matplotlib load here, not at import, so that `harness --help` stays fast
    from harness.report.build import build_report, check_formats
    from harness.results.store import read_results

    formats = check_formats(formats)   # a typo fails before the results are read
    # a one-shot process: what the imports made lives until it exits, so the collector need not scan it
    # again on each full pass of the build (0.08 s of the main process)
    import gc

    gc.freeze()
    try:
        results = read_results(sweep_dir, all_cells=bool(getattr(args, "all_cells", False)))
    except Exception as exc:  # a corrupt or foreign file: one line, not a traceback
        raise HarnessError(f"cannot read the results in {sweep_dir}: {last_line(exc)}") from None
    if results is None or len(results) == 0:
        raise HarnessError(f"no stored results in {sweep_dir} (expected {sweep_dir / 'results'}/*.parquet "
                           "written by `python -m harness sweep`)")

    try:
        page = build_report(sweep_dir, results=results, formats=formats)
    except HarnessError:
        raise
    except Exception as exc:
        raise HarnessError(f"building the report failed: {last_line(exc)}") from None
    print(f"report: {page}")
    return 0


