"""harness: benchmark gradient-descent optimizers and classification losses.

Optimizers, losses and datasets arrive through pluggy hooks (``harness.plugin.hookspecs``)
loaded from the ``harness.plugins`` entry-point group. Plugins import their API
from ``harness.plugin``; ``harness.hookimpl`` is the same marker as
``harness.plugin.hookimpl``.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("harness-gd")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from harness.plugin.hookspecs import hookimpl  # noqa: E402  (``@harness.hookimpl`` keeps working)

__all__ = ["hookimpl", "__version__"]
