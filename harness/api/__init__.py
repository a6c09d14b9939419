"""The Python API: what ``import harness`` offers a notebook or a script.

Four names, each a thin face over the engine the command line uses:

- :func:`load` opens a sweep folder as a :class:`Sweep` (runs, outcomes, plan,
  tuning, manifest and claims as pandas objects; ``Sweep.report()`` rebuilds the page);
- :func:`run` trains one configuration and returns its per-epoch frame (``harness run``);
- :func:`run_sweep` runs a sweep from a dict or a TOML path and returns its :class:`Sweep`
  (``harness sweep``).

``harness.sweep`` stays the engine's sweep package, so the function is ``run_sweep``.
docs/api.md shows each with an example.
"""
from harness.api.folder import Sweep, load
from harness.api.running import run, run_sweep

__all__ = ["Sweep", "load", "run", "run_sweep"]
