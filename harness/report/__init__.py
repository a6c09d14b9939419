"""Convergence reports: tables, plots and a self-contained HTML page from a sweep's results.

``build_report(sweep_dir)`` reads ``results/*.parquet`` and ``manifest.json``
and writes ``index.html`` with ``figures/*.png`` and ``tables/*.csv|md``
beside it (docs/reports.md explains every part and rule).
"""
from __future__ import annotations


def build_report(sweep_dir, results=None, manifest=None, claims=None, formats=("png",), processes=2, timings=None):
    """Build the report of the sweep in ``sweep_dir``; returns the path of ``index.html``."""
    from harness.report.build import build_report as _build

    return _build(sweep_dir, results=results, manifest=manifest, claims=claims, formats=formats,
                  processes=processes, timings=timings)


__all__ = ["build_report"]
