"""Describe an exception raised by plugin code: its last line, its traceback and who to blame.

``last_line`` is the one-line form every user-facing message uses (the sweep
runner and executor keep their own copies today and can reuse this one).
``origin`` finds the module and the installed distribution that own the file
where an exception was raised, so an import error deep inside a dependency is
not blamed on the plugin whose entry point happened to be loading.
"""
from __future__ import annotations

import os
import sys
import traceback

from harness.errors import last_line   # re-exported: plugin failures are recorded the same way
from importlib.metadata import packages_distributions, version, PackageNotFoundError
from typing import Optional

__all__ = ["last_line", "full_traceback", "origin"]


def full_traceback(exc: BaseException) -> str:
    """The whole traceback, as Python would print it."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()


def _failing_file(exc: BaseException) -> Optional[str]:
    """The file where ``exc`` was raised (a SyntaxError's own file; else the innermost frame's)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return exc.filename
    frames = traceback.extract_tb(exc.__traceback__)
    real = [f for f in frames if not f.filename.startswith("<")]  # skip <frozen importlib._bootstrap>
    return real[-1].filename if real else None


def _module_name(path: str) -> Optional[str]:
    """The dotted module name of ``path``, relative to the longest ``sys.path`` entry holding it."""
    path = os.path.abspath(path)
    best = None
    for entry in sys.path:
        root = os.path.abspath(entry or os.getcwd())
        if path.startswith(root + os.sep) and (best is None or len(root) > len(best)):
            best = root
    if best is None:
        return None
    parts = os.path.splitext(os.path.relpath(path, best))[0].split(os.sep)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or None


def origin(exc: BaseException) -> tuple[Optional[str], Optional[str]]:
    """(module, "distribution version") where ``exc`` was raised; either may be None if unknown."""
    path = _failing_file(exc)
    module = _module_name(path) if path else None
    if module is None:
        return None, None
    owners = packages_distributions().get(module.split(".")[0], [])
    if not owners:
        return module, None
    dist = owners[0]
    try:
        return module, f"{dist} {version(dist)}"
    except PackageNotFoundError:
        return module, dist
