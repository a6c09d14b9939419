"""Deprecation aliases for modules that moved in the 0.2 layout (kept for one release).

A moved module keeps only ``__getattr__ = forward("harness.old", [new modules])``:
the first new module that has the name serves it, with a DeprecationWarning
naming where to import it from now.
"""
from __future__ import annotations

import importlib
import warnings


def forward(old: str, targets: list[str]):
    """A module ``__getattr__`` that serves names from ``targets`` and warns."""

    def __getattr__(name: str):
        for module in targets:
            target = importlib.import_module(module)
            if hasattr(target, name):
                warnings.warn(f"{old}.{name} moved to {module}.{name}; the old import goes away in the next "
                              "release", DeprecationWarning, stacklevel=2)
                return getattr(target, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    return __getattr__
