"""Deprecated alias of ``harness.plugin.loader``: kept for one release so third-party plugins keep working.

Import from ``harness.plugin.loader`` instead.
"""
import importlib
import warnings

_MOVED = ['harness.plugin.loader']


def __getattr__(name):
    for module in _MOVED:
        target = importlib.import_module(module)
        if hasattr(target, name):
            warnings.warn(f"harness.registry.{name} moved to {module}.{name}; the old import goes away in the "
                          "next release", DeprecationWarning, stacklevel=2)
            return getattr(target, name)
    raise AttributeError(f"module 'harness.registry' has no attribute {name!r}")
