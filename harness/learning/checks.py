"""Should this run be refused? The engine's own rule and every plugin's ``check``, in one place.

Used by the trainer (a refused run raises ``Refused``) and by the sweep plan
(a refused cell is recorded as ``skipped`` with the reason). Plugins see a
:class:`harness.plugin.CheckContext` built from the run's configuration with
every hyper-parameter resolved, never the engine's ``RunConfig`` itself.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Iterable, Optional

from harness.learning.runconfig import RunConfig
from harness.learning.split import PREPROCESS_PARAMS
from harness.plugin.faults import last_line
from harness.plugin.specs import CheckContext, DatasetSpec, LossSpec, OptimizerSpec, resolve_params

__all__ = ["check_context", "refusal"]


def _dataset_params(spec: Optional[DatasetSpec], given: dict) -> dict:
    """The dataset's own and the generic preprocessing parameters, resolved (raw if the spec is unknown)."""
    if spec is None:
        return dict(given)
    own_names = {p.name for p in spec.params}
    own = resolve_params(spec.params, {k: v for k, v in given.items() if k in own_names}, f"dataset {spec.name}")
    generic = resolve_params(PREPROCESS_PARAMS, {k: v for k, v in given.items() if k not in own_names},
                             f"dataset {spec.name}")
    return {**generic, **own}


def check_context(optimizer: OptimizerSpec, loss: LossSpec, dataset: Optional[DatasetSpec],
                  config: RunConfig) -> CheckContext:
    """The read-only view of ``config`` a plugin's ``check`` receives (bad values raise UsageError)."""
    return CheckContext(
        dataset=config.dataset, loss=config.loss, optimizer=config.optimizer,
        optimizer_params=MappingProxyType(resolve_params(optimizer.params, dict(config.optimizer_params),
                                                         f"optimizer {optimizer.name}")),
        loss_params=MappingProxyType(resolve_params(loss.params, dict(config.loss_params), f"loss {loss.name}")),
        dataset_params=MappingProxyType(_dataset_params(dataset, dict(config.dataset_params))),
        hidden=tuple(int(h) for h in config.hidden), batch_norm=bool(optimizer.batch_norm),
        lr=float(config.lr), schedule=str(config.schedule), epochs=int(config.epochs), dtype=str(config.dtype))


def refusal(specs: Iterable, config: RunConfig) -> Optional[str]:
    """Why the run ``config`` cannot run with these specs (its optimizer, loss and dataset), or None.

    ``specs`` holds the run's OptimizerSpec and LossSpec and, if known, its
    DatasetSpec (None is skipped). The engine's rule comes first (batch
    normalisation needs a hidden layer), then each spec's ``check`` in the
    order given. Every reason names the spec it comes from
    (``"optimizer 'minibatch-bn': ..."``); a check that raises refuses the run
    with such a reason, so a buggy check never stops a sweep.
    """
    specs = [s for s in specs if s is not None]
    by_kind = {s.kind: s for s in specs}
    optimizer, loss = by_kind["optimizer"], by_kind["loss"]
    if optimizer.batch_norm and not tuple(config.hidden):
        return f"optimizer {optimizer.name!r}: batch normalisation needs a hidden layer to normalise (hidden=() has none)"
    if not any(s.check is not None for s in specs):
        return None
    context = check_context(optimizer, loss, by_kind.get("dataset"), config)
    for spec in specs:
        if spec.check is None:
            continue
        try:
            reason = spec.check(context)
        except Exception as exc:  # a buggy check refuses its run, it does not stop the others
            return f"{spec.kind} {spec.name!r}: check raised {last_line(exc)}"
        if reason:
            return f"{spec.kind} {spec.name!r}: {reason}"
    return None
