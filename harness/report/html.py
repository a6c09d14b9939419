"""Render the report page with jinja2 (autoescape on: plugin and config names are data).

Nothing reaches the page unescaped: tables are passed as lists of strings and
the template has no ``|safe``. The page has no scripts and no external
resources; figures are PNG files beside it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

TEMPLATES = Path(__file__).with_name("templates")
WRAPPED = ("reason", "group", "measured", "rule", "sections", "section", "claim")


def table(frame: pd.DataFrame, title: str = "", csv: str = "", md: str = "", digits: int = 4) -> dict:
    """A table as the template wants it: column names, rows of strings, numeric-column flags."""
    def cell(v) -> str:
        if v is None:
            return ""
        if isinstance(v, (float, np.floating)):
            return "–" if not np.isfinite(v) else f"{v:.{digits}g}"
        return str(v)

    classes = ["num" if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               else "wrap" if str(c) in WRAPPED else "text" for c in frame.columns]
    rows = [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    return {"title": title, "columns": [str(c) for c in frame.columns], "rows": rows,
            "classes": classes, "csv": csv, "md": md}


def _first(mapping: dict, *keys):
    for key in keys:
        if isinstance(mapping, dict) and mapping.get(key) not in (None, "", [], {}):
            return mapping[key]
    return None


def reproducibility(manifest: dict | None) -> dict:
    """The footer: command, seeds, times, versions, BLAS, CPU, dataset fingerprints, full manifest."""
    manifest = manifest or {}
    env = manifest.get("environment") or {}
    items = []

    def add(label, value):
        if value not in (None, "", [], {}):
            items.append((label, value if isinstance(value, str) else json.dumps(value, default=str)))

    add("command", _first(manifest, "command", "argv"))
    add("working directory", manifest.get("cwd"))
    add("sweep", manifest.get("sweep"))
    add("status", manifest.get("status"))
    add("seeds", manifest.get("seeds"))
    add("tuning seeds", manifest.get("tune_seeds"))
    add("started", manifest.get("started"))
    add("finished", manifest.get("finished"))
    add("duration (s)", manifest.get("duration_seconds"))
    add("execution", manifest.get("execution"))
    add("cell counts", manifest.get("counts"))
    add("python", " ".join(str(v) for v in (env.get("implementation"), env.get("python")) if v))
    add("platform", env.get("platform"))
    packages = env.get("packages") or {}
    add("packages", ", ".join(f"{k} {v}" for k, v in packages.items() if v))
    plugins = env.get("plugins") or []
    add("plugins", ", ".join(f"{p.get('name')} ({p.get('distribution')} {p.get('version')})"
                             for p in plugins if isinstance(p, dict)))
    blas = env.get("blas") or []
    add("BLAS", "; ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('num_threads')} threads, "
                          f"{b.get('threading_layer')})" for b in blas if isinstance(b, dict)))
    cpu = env.get("cpu") or {}
    if cpu:
        add("CPU", f"{cpu.get('model')}; {cpu.get('usable_cores')} usable of {cpu.get('logical_cores')} logical cores")
    datasets = manifest.get("datasets") or {}
    if isinstance(datasets, dict):
        add("dataset fingerprints", ", ".join(
            f"{name}: {info.get('fingerprint')}" for name, info in datasets.items() if isinstance(info, dict)))
    shown = {k: v for k, v in manifest.items() if k != "cells"}
    if isinstance(manifest.get("cells"), list):
        shown["cells"] = f"{len(manifest['cells'])} cell ids (see manifest.json)"
    return {"entries": items, "full": json.dumps(shown, indent=2, default=str) if manifest else ""}


def render(context: dict) -> str:
    """The HTML text of the report page."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("index.html.j2").render(**context)
