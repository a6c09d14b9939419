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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and editors; at run time these load on first use
    from harness.api import Sweep, load, run, run_sweep
    from harness.plugin.hookspecs import hookimpl

# Everything here loads on first use (PEP 562), so that `harness --help` stays fast:
# the API pulls in pandas, pyarrow and the engine; ``hookimpl`` the plugin API (numpy,
# pluggy); ``__version__`` importlib.metadata. Plugins importing `harness.hookimpl` get
# the same marker as ``harness.plugin.hookimpl``.
_API = ("Sweep", "load", "run", "run_sweep")

__all__ = ["hookimpl", "__version__", *_API]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("harness-gd")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    # import_module, not an import statement: the root package must not depend on the API
    # (plugins import `harness`; import-linter would otherwise count every layer as theirs)
    if name in _API:
        return getattr(importlib.import_module("harness.api"), name)
    if name == "hookimpl":
        value = importlib.import_module("harness.plugin.hookspecs").hookimpl
    elif name == "__version__":
        value = _version()
    else:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    globals()[name] = value   # looked up once
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))
