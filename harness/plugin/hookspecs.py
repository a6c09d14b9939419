"""Hook specifications: the whole surface a plugin implements, and the marker for it.

A plugin module (or object) named by a ``harness.plugins`` entry point defines
one or more of these functions, each decorated with :data:`hookimpl`. Every
hook receives one argument, ``register``: call it once per spec object you
provide. The loader calls each plugin's hooks separately, so a failure stays
with the plugin that caused it (see docs/plugins.md, "How loading behaves").
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:  # annotations only: specs are imported by plugins, not needed to declare hooks
    from harness.plugin.claims import ClaimSpec
    from harness.plugin.specs import DatasetSpec, LossSpec, OptimizerSpec

__all__ = ["hookspec", "hookimpl", "HOOK_NAMES"]

hookspec = pluggy.HookspecMarker("harness")
"""Marks the hook specifications below (harness's own use)."""

hookimpl = pluggy.HookimplMarker("harness")
"""Marks a plugin's hook implementation: ``@hookimpl def register_optimizers(register): ...``."""


@hookspec
def register_optimizers(register: Callable[[OptimizerSpec], None]) -> None:
    """Register optimizers: call ``register(OptimizerSpec(...))`` once for each.

    Called once per command that needs plugins (``harness plugins``, ``list``,
    ``run``, ``sweep``), right after the plugin is imported; keep it cheap
    (build nothing heavy: that belongs in the spec's ``factory``).

    If this raises (anything, ``SystemExit`` included) or calls ``register``
    with something that is not an ``OptimizerSpec`` or a name already taken,
    the whole plugin is reported as failed by ``harness plugins`` and none of
    its specs are used; the other plugins still load. Under
    ``HARNESS_STRICT_PLUGINS=1`` the failure is fatal.
    """


@hookspec
def register_losses(register: Callable[[LossSpec], None]) -> None:
    """Register losses: call ``register(LossSpec(...))`` once for each.

    Called like :func:`register_optimizers`, with the same failure rules.
    """


@hookspec
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register datasets: call ``register(DatasetSpec(...))`` once for each.

    Called like :func:`register_optimizers`, with the same failure rules. Do
    not load the data here: ``DatasetSpec.load`` is called only when a run
    needs it.
    """


@hookspec
def register_claims(register: Callable[[ClaimSpec], None]) -> None:
    """Register claims the report tests: call ``register(ClaimSpec(...))`` once for each.

    A claim compares runs that differ in one factor alone (docs/plugins.md,
    "Claims"; how it is tested: docs/reports.md). Called like :func:`register_optimizers`, with the same
    failure rules.
    """


HOOK_NAMES = ("register_optimizers", "register_losses", "register_datasets", "register_claims")
"""Every hook name, in the order the loader calls them."""
