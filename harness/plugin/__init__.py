"""The plugin API: everything a plugin imports, from one place.

``from harness.plugin import OptimizerSpec, Param, hookimpl`` is the documented
import (docs/plugins.md). This layer imports nothing of the engine: a plugin
depends on it alone. The loader (``harness.plugin.loader``) and the kinds'
hook specs (``harness.plugin.hookspecs``) live here too.
"""
from harness.plugin.claims import Budget, ClaimSpec
from harness.plugin.cache import atomic_save_npz, data_home, fingerprint
from harness.plugin.hookspecs import hookimpl
from harness.plugin.specs import (CheckContext, Dataset, DatasetSpec, DatasetUnavailable, Loss, LossSpec, Optimizer,
                                  OptimizerSpec, Param, Refused)

__all__ = [
    "hookimpl",
    "Param",
    "OptimizerSpec",
    "LossSpec",
    "DatasetSpec",
    "Dataset",
    "DatasetUnavailable",
    "Refused",
    "CheckContext",
    "Optimizer",
    "Loss",
    "ClaimSpec",
    "Budget",
    "fingerprint",
    "data_home",
    "atomic_save_npz",
]
