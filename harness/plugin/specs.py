"""The types every optimizer, loss and dataset plugin must satisfy.

Built-ins in ``plugins/`` and third-party packages use exactly these. A plugin
hands a *spec* (name, one-line description, hyper-parameters with defaults and a
factory) to the ``register`` callback of a hook; heavy work happens only when
the factory is called, so listing plugins stays cheap.

Division of labour (see docs/plugins.md):

* the **runner** (``harness.learning.trainer``) owns the model parameters;
* an **optimizer** owns its state, a step rule and a batching scheme (which
  sample indices form each update in an epoch);
* a **loss** is fused with its output activation and returns the mean loss and
  its gradient with respect to the logits;
* a **dataset** returns raw arrays; splitting and standardising are the
  engine's job (``harness.learning.split``), so every dataset is preprocessed the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from harness.errors import HarnessError, UsageError

__all__ = [
    "Param",
    "OptimizerSpec",
    "LossSpec",
    "DatasetSpec",
    "Optimizer",
    "Loss",
    "Dataset",
    "DatasetUnavailable",
    "Refused",
]


class DatasetUnavailable(HarnessError, RuntimeError):
    """Raised by a dataset loader whose data is not on this machine.

    The message must be one line telling the user how to get the data; the CLI
    prints it without a traceback.
    """


class Refused(UsageError):
    """A combination that makes no sense (e.g. batch norm with one sample per update)."""


# --------------------------------------------------------------------------- params
@dataclass(frozen=True)
class Param:
    """One hyper-parameter: its name, default, one-line help and allowed values.

    The type is the type of ``default`` (bool, int, float or str). ``choices``
    restricts the values; ``low``/``high`` bound numbers (inclusive).
    """

    name: str
    default: Any
    help: str = ""
    choices: Optional[tuple] = None
    low: Optional[float] = None
    high: Optional[float] = None

    @property
    def type(self) -> type:
        return type(self.default)

    def parse(self, value: Any) -> Any:
        """Coerce ``value`` (possibly a CLI string) to this param's type, or raise UsageError (a ValueError)."""
        kind = self.type
        if kind is bool:
            if isinstance(value, bool):
                out = value
            elif str(value).lower() in ("1", "true", "yes", "on"):
                out = True
            elif str(value).lower() in ("0", "false", "no", "off"):
                out = False
            else:
                raise UsageError(f"{self.name}: expected true/false, got {value!r}")
        elif kind is int:
            if isinstance(value, bool):
                raise UsageError(f"{self.name}: expected an integer, got {value!r}")
            try:
                f = float(value)
            except (TypeError, ValueError):
                raise UsageError(f"{self.name}: expected an integer, got {value!r}") from None
            if not f.is_integer():
                raise UsageError(f"{self.name}: expected an integer, got {value!r}")
            out = int(f)
        elif kind is float:
            if isinstance(value, bool):
                raise UsageError(f"{self.name}: expected a number, got {value!r}")
            try:
                out = float(value)
            except (TypeError, ValueError):
                raise UsageError(f"{self.name}: expected a number, got {value!r}") from None
            if not np.isfinite(out):
                raise UsageError(f"{self.name}: expected a finite number, got {value!r}")
        else:
            out = str(value)
        if self.choices is not None and out not in self.choices:
            raise UsageError(
                f"{self.name}: {out!r} is not one of {', '.join(map(str, self.choices))}"
            )
        if self.low is not None and out < self.low:
            raise UsageError(f"{self.name}: {out!r} is below the minimum {self.low}")
        if self.high is not None and out > self.high:
            raise UsageError(f"{self.name}: {out!r} is above the maximum {self.high}")
        return out

    def to_dict(self) -> dict:
        d = {"name": self.name, "default": self.default, "type": self.type.__name__, "help": self.help}
        if self.choices is not None:
            d["choices"] = list(self.choices)
        if self.low is not None:
            d["low"] = self.low
        if self.high is not None:
            d["high"] = self.high
        return d


def resolve_params(params: Sequence[Param], given: Mapping[str, Any], owner: str) -> dict:
    """Defaults overlaid with ``given``, each value parsed; unknown names or bad values raise UsageError (a ValueError) naming the owner."""
    known = {p.name: p for p in params}
    unknown = sorted(set(given) - set(known))
    if unknown:
        valid = ", ".join(sorted(known)) or "none"
        raise UsageError(f"{owner}: unknown hyper-parameter {unknown[0]!r} (valid: {valid})")
    return {p.name: p.parse(given[p.name]) if p.name in given else p.default for p in params}


# --------------------------------------------------------------------------- runtime protocols
@runtime_checkable
class Optimizer(Protocol):
    """A step rule with its own state and a batching scheme.

    ``batches`` yields, for one epoch, the index array of each update (BGD: one
    array of all indices; point GD: ``[0], [1], ...`` in a fixed order; SGD: a
    fresh permutation one at a time; mini-batch: shuffled chunks). It must draw
    randomness only from ``rng`` so a seed reproduces the run bit for bit.

    ``step`` updates ``params`` in place from ``grads`` (mean gradient over the
    batch) with learning rate ``lr``. Arrays are matched by position and keep
    their shapes (1-D bias vectors included).
    """

    uses_batch_norm: bool

    def batches(self, n_samples: int, rng: np.random.Generator) -> Iterable[np.ndarray]: ...

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], lr: float) -> None: ...


@runtime_checkable
class Loss(Protocol):
    """A loss fused with its output activation (softmax or sigmoid).

    ``n_outputs`` is the number of logits the network must produce.
    ``loss_grad(logits, y, grad_out)`` returns the mean loss over the batch and
    writes d(mean loss)/d(logits) into ``grad_out`` (same shape as ``logits``).
    ``per_sample(logits, y)`` returns one loss value per row.
    ``predict_proba(logits)`` returns class probabilities (n, n_classes).
    ``y`` holds integer labels 0..K-1. All must stay finite for logits of +-1e4.
    """

    n_outputs: int

    def loss_grad(self, logits: np.ndarray, y: np.ndarray, grad_out: np.ndarray) -> float: ...

    def per_sample(self, logits: np.ndarray, y: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, logits: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Dataset:
    """Raw data as a dataset plugin returns it, before split and standardisation.

    ``X`` is (n, d) float64, ``y`` is (n,) int64 with labels 0..K-1, and
    ``class_names[k]`` names label k. ``fingerprint`` changes when the recipe or
    the source data change (used by caches and the sweep manifest).
    """

    X: np.ndarray
    y: np.ndarray
    class_names: tuple
    source: str = ""
    fingerprint: str = ""


# --------------------------------------------------------------------------- specs
Check = Callable[[Any], Optional[str]]


@dataclass(frozen=True)
class OptimizerSpec:
    """What an optimizer plugin registers.

    ``factory(**hyperparams) -> Optimizer``. ``check(config)`` returns a reason
    string when the combination cannot run (it is then skipped, not run).
    """

    name: str
    description: str
    factory: Callable[..., Optimizer]
    params: tuple = ()
    check: Optional[Check] = None
    kind: str = "optimizer"


@dataclass(frozen=True)
class LossSpec:
    """What a loss plugin registers.

    ``factory(y_train, n_classes, **hyperparams) -> Loss``: the training labels
    are given so a loss can derive class weights from them.
    """

    name: str
    description: str
    factory: Callable[..., Loss]
    params: tuple = ()
    check: Optional[Check] = None
    kind: str = "loss"


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset plugin registers.

    ``load(**hyperparams) -> Dataset``; raise ``DatasetUnavailable`` with a
    one-line how-to when the data is not on this machine.
    """

    name: str
    description: str
    load: Callable[..., Dataset]
    params: tuple = ()
    check: Optional[Check] = None
    kind: str = "dataset"


Spec = OptimizerSpec | LossSpec | DatasetSpec
