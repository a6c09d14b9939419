"""harness: benchmark gradient-descent optimizers and classification losses.

Optimizers, losses and datasets arrive through pluggy hooks (``harness.plugin.hookspecs``)
loaded from the ``harness.plugins`` entry-point group. Plugins import their API
from ``harness.plugin``; ``harness.hookimpl`` is the same marker as
``harness.plugin.hookimpl``.

The Python API (docs/api.md): ``harness.load(dir)`` opens a sweep folder,
``harness.run(dataset, loss, optimizer, **settings)`` trains one configuration,
``harness.run_sweep(config, **settings)`` runs a sweep; ``harness.Sweep`` is
what ``load`` and ``run_sweep`` return.
"""
from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("harness-gd")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from harness.plugin.hookspecs import hookimpl  # noqa: E402  (``@harness.hookimpl`` keeps working)

if TYPE_CHECKING:  # for type checkers and editors; at run time the API loads on first use
    from harness.api import Sweep, load, run, run_sweep

# The API pulls in pandas, pyarrow and the engine: it loads on first use (PEP 562),
# so that `harness --help` and plugins importing `harness.hookimpl` stay fast.
_API = ("Sweep", "load", "run", "run_sweep")

__all__ = ["hookimpl", "__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        # import_module, not an import statement: the root package must not depend on the API
        # (plugins import `harness`; import-linter would otherwise count every layer as theirs)
        return getattr(importlib.import_module("harness.api"), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(_API))
