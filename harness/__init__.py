"""harness: benchmark gradient-descent optimizers and classification losses.

Optimizers, losses and datasets arrive through pluggy hooks (``harness.plugin.hookspecs``)
loaded from the ``harness.plugins`` entry-point group (``harness.plugins``).
"""
from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("harness-gd")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

hookimpl = pluggy.HookimplMarker("harness")
"""Marker for plugin hook implementations: ``@harness.hookimpl``."""

__all__ = ["hookimpl", "__version__"]
