"""A sweep folder as a Python object: its runs, plan, tuning, manifest and claims as pandas frames.

Everything is read from what the sweep stored (``results/*.parquet`` and
``manifest.json``) by the functions the report uses, so a folder copied from
another machine loads the same way, and nothing here needs the sweep's code.
"""
from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import pandas as pd

from harness.errors import HarnessError
from harness.report import build_report
from harness.report import claims as claims_mod
from harness.report.build import registered_claims
from harness.report.frames import normalise, run_tables, runs
from harness.results.manifest import read_manifest
from harness.results.store import read_results

__all__ = ["Sweep", "load"]

PLAN_COLUMNS = ("cell_id", "phase", "dataset", "loss", "optimizer", "lr", "seed", "status", "reason")


class Sweep:
    """The stored results of one sweep folder (``reports/<name>``).

    Each frame is read once, when first asked for; call :func:`harness.load`
    again to see cells written since.

    >>> import harness
    >>> sweep = harness.load("reports/default")                          # doctest: +SKIP
    >>> sweep.outcomes.groupby(["dataset", "optimizer"])["test_accuracy"].mean()   # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Sweep({str(self.path)!r})"

    @property
    def name(self) -> str:
        """The sweep's name (the manifest's, else the folder's)."""
        return str(self.manifest.get("sweep") or self.path.name)

    @cached_property
    def manifest(self) -> dict:
        """``manifest.json``: the config, command, seeds, tuning decisions, environment and counts."""
        return read_manifest(self.path) or {}

    @cached_property
    def runs(self) -> pd.DataFrame:
        """Every stored record in long format: one row per (cell, epoch), the columns of
        ``harness.results.schema`` (``CELL_COLUMNS`` then ``RECORD_COLUMNS``)."""
        return read_results(self.path)

    @cached_property
    def outcomes(self) -> pd.DataFrame:
        """One row per run (cell): its setting, seed, phase, status and last-epoch values."""
        return runs(normalise(self.runs))

    @cached_property
    def plan(self) -> pd.DataFrame:
        """One row per cell the sweep planned (the manifest's list), with its stored status.

        A planned cell with no result file yet (an interrupted sweep) has status
        ``"missing"``; the manifest lists only its id, so its other columns are empty.
        """
        stored = self.outcomes.set_index("cell_id") if len(self.outcomes) else None
        ids = self.manifest.get("cells") or (list(stored.index) if stored is not None else [])
        rows = []
        for cid in ids:
            if stored is not None and cid in stored.index:
                rows.append({"cell_id": cid, **{c: stored.at[cid, c] for c in PLAN_COLUMNS[1:]}})
            else:
                rows.append({"cell_id": cid, "status": "missing", "reason": "no result file"})
        return pd.DataFrame(rows, columns=list(PLAN_COLUMNS))

    @cached_property
    def tuning(self) -> pd.DataFrame:
        """One row per tuned group: its learning-rate grid, the score of each rate and the rate chosen."""
        entries = self.manifest.get("tuning") or []
        return pd.DataFrame([{k: v for k, v in e.items()} for e in entries],
                            columns=["group", "dataset", "loss", "optimizer", "lr_grid", "scores", "metric",
                                     "chosen_lr", "why"])

    @cached_property
    def claims(self) -> pd.DataFrame:
        """The installed claims tested on this sweep: one row per claim with its headline verdict
        (the report's claims table; empty when no plugin registers a claim)."""
        _, final_df, final_runs = run_tables(normalise(self._results_or_error()))
        found = claims_mod.evaluate_sweep(registered_claims(), final_runs, final_df, self.manifest)
        return claims_mod.verdict_table(found)

    def report(self) -> Path:
        """Rebuild ``index.html`` with its figures and tables (``harness report DIR``); returns its path."""
        return Path(build_report(self.path, results=self._results_or_error()))

    def _results_or_error(self) -> pd.DataFrame:
        if len(self.runs) == 0:
            raise HarnessError(f"no stored results in {self.path} (expected {self.path / 'results'}/*.parquet)")
        return self.runs


def load(path: str | os.PathLike) -> Sweep:
    """Open a sweep folder written by ``harness sweep`` (or :func:`harness.run_sweep`).

    >>> import harness
    >>> sweep = harness.load("reports/default")      # doctest: +SKIP
    >>> sweep.runs.shape, len(sweep.plan)            # doctest: +SKIP
    """
    folder = Path(path)
    if not folder.is_dir():
        raise HarnessError(f"no such sweep folder: {folder}")
    if not (folder / "manifest.json").exists() and not (folder / "results").is_dir():
        raise HarnessError(f"{folder} is not a sweep folder (no manifest.json or results/)")
    return Sweep(folder)
