"""Names and writers of the report's table files, shared by the page builder and the statistics job.

Apart from ``build`` because the statistics job (``harness.report.verdicts``)
writes its tables from a figure worker with the same code, so that a table is
the same bytes whichever process wrote it.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd

from harness.report import tables

TABLES = "tables"


def slug(text: str) -> str:
    """A file-name-safe, unique name for a label (plugin names may contain anything)."""
    base = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:40] or "x"
    return f"{base}-{hashlib.sha1(str(text).encode()).hexdigest()[:8]}"


def write_table(frame: pd.DataFrame, folder: Path, name: str, markdown: str | None = None) -> tuple[str, str]:
    """Write ``name``.csv, ``name``.md and ``name``.tex; return the CSV and Markdown paths relative to the page."""
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / f"{name}.csv", index=False)
    (folder / f"{name}.tex").write_text(tables.to_latex(frame), encoding="utf-8")
    (folder / f"{name}.md").write_text((markdown if markdown is not None else tables.to_markdown(frame)) + "\n")
    return f"{TABLES}/{name}.csv", f"{TABLES}/{name}.md"
