"""Hook specifications: the whole surface a plugin can implement.

Each hook receives a ``register`` callback; call it once per spec object
(``harness.plugin.specs.OptimizerSpec`` / ``LossSpec`` / ``DatasetSpec``).
"""
import pluggy

hookspec = pluggy.HookspecMarker("harness")


@hookspec
def register_optimizers(register):
    """Register optimizers: call ``register(OptimizerSpec(...))`` for each."""


@hookspec
def register_losses(register):
    """Register losses: call ``register(LossSpec(...))`` for each."""


@hookspec
def register_datasets(register):
    """Register datasets: call ``register(DatasetSpec(...))`` for each."""
