"""The description of one training run: :class:`RunConfig`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

__all__ = ["RunConfig"]


def _items(d: Mapping[str, Any] | Iterable | None) -> tuple:
    if d is None:
        return ()
    if isinstance(d, Mapping):
        d = d.items()
    return tuple(sorted((str(k), v) for k, v in d))


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run (one sweep cell).

    Small, hashable and picklable; ``harness.sweep.runner`` keys its cache on a hash of
    it. Plugin hyper-parameters are kept as sorted ``(name, value)`` tuples;
    use :meth:`make` to build one from dicts.

    Schedules: ``constant``, ``inverse`` (lr/(1+k t)), ``inverse_sqrt``
    (lr/sqrt(1+t)), ``step`` (lr * gamma**floor(t/step_every)), where ``t``
    counts updates (see docs/learning.md). Stopping: ``epochs`` (max),
    ``tol`` (train loss <= tol), ``lecture_stop`` (train loss <= 1/sqrt(updates)),
    ``patience`` (epochs without improvement of the train loss), ``time_budget``
    (training seconds). ``hidden=()`` is softmax/logistic regression (convex).
    """

    dataset: str
    loss: str
    optimizer: str
    seed: int = 0
    lr: float = 0.1
    schedule: str = "constant"
    decay: float = 0.0          # k for "inverse"; gamma for "step"
    step_every: int = 0         # updates between drops for "step" (0: one epoch)
    epochs: int = 30
    tol: float = 0.0
    lecture_stop: bool = False
    patience: int = 0
    time_budget: float = 0.0
    hidden: tuple = (64,)
    activation: str = "relu"
    dtype: str = "float64"
    optimizer_params: tuple = ()
    loss_params: tuple = ()
    dataset_params: tuple = ()

    @classmethod
    def make(cls, dataset, loss, optimizer, *, optimizer_params=None, loss_params=None,
             dataset_params=None, hidden=(64,), **kw) -> "RunConfig":
        return cls(dataset=dataset, loss=loss, optimizer=optimizer,
                   optimizer_params=_items(optimizer_params), loss_params=_items(loss_params),
                   dataset_params=_items(dataset_params), hidden=tuple(int(h) for h in hidden), **kw)

    def to_dict(self) -> dict:
        """Plain dict (params as dicts) for JSON, tables and hashing."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in ("optimizer_params", "loss_params", "dataset_params"):
            d[k] = dict(d[k])
        d["hidden"] = list(self.hidden)
        return d
