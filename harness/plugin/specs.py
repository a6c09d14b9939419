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

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from harness.errors import HarnessError, UsageError
from harness.plugin.claims import ClaimSpec

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
    "CheckContext",
    "Check",
    "SPEC_TYPES",
    "SINGULAR",
    "resolve_params",
]

SINGULAR = {"optimizers": "optimizer", "losses": "loss", "datasets": "dataset", "claims": "claim"}
"""The one map between a kind's plural (hook and registry tables) and singular (messages, ``--set``) names."""


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
    restricts the values; ``low``/``high`` bound numbers, inclusive unless
    ``low_exclusive``/``high_exclusive`` is set (``Param("beta1", 0.9, low=0.0,
    high=1.0, high_exclusive=True)`` accepts 0 <= beta1 < 1).
    """

    name: str
    default: Any
    help: str = ""
    choices: Optional[tuple] = None
    low: Optional[float] = None
    high: Optional[float] = None
    low_exclusive: bool = False
    high_exclusive: bool = False

    @property
    def type(self) -> type:
        return type(self.default)

    def parse(self, value: Any) -> Any:
        """Coerce ``value`` (possibly a CLI string) to this param's type, or raise UsageError (a ValueError)."""
        kind = self.type
        out: Any
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
        if self.low is not None and (out <= self.low if self.low_exclusive else out < self.low):
            bound = "must be above" if self.low_exclusive else "is below the minimum"
            raise UsageError(f"{self.name}: {out!r} {bound} {self.low}")
        if self.high is not None and (out >= self.high if self.high_exclusive else out > self.high):
            bound = "must be below" if self.high_exclusive else "is above the maximum"
            raise UsageError(f"{self.name}: {out!r} {bound} {self.high}")
        return out

    def to_dict(self) -> dict:
        d = {"name": self.name, "default": self.default, "type": self.type.__name__, "help": self.help}
        if self.choices is not None:
            d["choices"] = list(self.choices)
        if self.low is not None:
            d["low"] = self.low
        if self.high is not None:
            d["high"] = self.high
        if self.low_exclusive:
            d["low_exclusive"] = True
        if self.high_exclusive:
            d["high_exclusive"] = True
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
    batch) with learning rate ``lr`` (the schedule is already applied). Arrays
    are matched by position and keep their shapes (1-D bias vectors included);
    the engine passes the same list objects holding the same arrays, in the
    same order, at every step of a run, so state may be kept per position.
    Under ``dtype="float32"`` params and grads are float32 (``lr`` is a float).
    Whether the network uses batch normalisation is declared by the spec
    (``OptimizerSpec(batch_norm=True)``), not by this object.
    """

    def batches(self, n_samples: int, rng: np.random.Generator) -> Iterable[np.ndarray]: ...

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], lr: float) -> None: ...


@runtime_checkable
class Loss(Protocol):
    """A loss fused with its output activation (softmax or sigmoid).

    ``n_outputs`` is the number of logits the network must produce.
    ``loss_grad(logits, y, grad_out)`` returns the mean loss over the batch and
    writes d(mean loss)/d(logits) into ``grad_out`` (same shape as ``logits``).
    ``per_sample(logits, y)`` returns one loss value per row.
    ``predict_proba(logits)`` returns class probabilities (n, n_classes)
    (a loss without a probabilistic reading returns any non-negative scores
    whose row-wise argmax is the predicted class, normalised to sum to 1).
    ``y`` holds integer labels 0..K-1. All must stay finite for logits of +-1e4
    and must not modify ``logits`` or ``y``.

    Optional fast path: ``loss_grad_one(z, label, grad) -> float`` on one
    sample's 1-D logits ``z`` (``label`` an int), writing into 1-D ``grad``;
    it must equal ``loss_grad(z[None], np.array([label]), grad[None])``.
    """

    n_outputs: int

    def loss_grad(self, logits: np.ndarray, y: np.ndarray, grad_out: np.ndarray) -> float: ...

    def per_sample(self, logits: np.ndarray, y: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, logits: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Dataset:
    """Raw data as a dataset plugin returns it, before split and standardisation.

    ``X`` is (n, d) float64, ``y`` is (n,) int64 with labels 0..K-1, and
    ``class_names[k]`` (a tuple of str) names label k. ``source`` is a one-line
    str saying where the data comes from (shown by ``harness list datasets``).
    ``fingerprint`` is a str that changes when the recipe or the source data
    change (used by caches and the sweep manifest; ``harness.plugin.fingerprint``
    makes one); empty means "derive it from the arrays".
    """

    X: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    source: str = ""
    fingerprint: str = ""


# --------------------------------------------------------------------------- check
@dataclass(frozen=True)
class CheckContext:
    """What a spec's ``check(context)`` sees of the run it may refuse.

    Names of the three plugins; each one's hyper-parameters fully resolved
    (defaults filled in, values parsed) as read-only mappings; and the engine
    settings a refusal may depend on. ``batch_norm`` is the optimizer spec's
    declaration; ``lr`` is the base learning rate before the schedule.
    """

    dataset: str
    loss: str
    optimizer: str
    optimizer_params: Mapping[str, Any]
    loss_params: Mapping[str, Any]
    dataset_params: Mapping[str, Any]
    hidden: tuple[int, ...]
    batch_norm: bool
    lr: float
    schedule: str
    epochs: int
    dtype: str


Check = Callable[[CheckContext], Optional[str]]
"""``check(context) -> reason or None``: a reason makes the run refused (a sweep cell ``skipped``)."""


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class OptimizerSpec:
    """What an optimizer plugin registers.

    ``factory(**hyperparams) -> Optimizer``. ``check(context)`` returns a reason
    string when the combination cannot run (it is then skipped, not run).
    ``batch_norm=True`` asks the engine for a network with batch normalisation
    after each hidden layer (the engine refuses it without a hidden layer).
    ``lr_grid`` is the learning-rate grid a sweep tunes it over unless the
    config gives one (increasing positive rates, best log-spaced: the sweep
    extends it at an edge with the same spacing); without one it gets the
    sweep's default grid and the report says so.
    """

    name: str
    description: str
    factory: Callable[..., Optimizer]
    params: tuple[Param, ...] = ()
    check: Optional[Check] = None
    kind: str = "optimizer"
    batch_norm: bool = False
    lr_grid: tuple = ()

    def __post_init__(self):
        grid = tuple(self.lr_grid or ())
        try:
            values = tuple(float(x) for x in grid)
        except (TypeError, ValueError):
            raise ValueError(f"optimizer {self.name!r}: lr_grid must be numbers, got {self.lr_grid!r}") from None
        if values and (len(values) < 2 or not all(np.isfinite(v) and v > 0 for v in values)
                       or any(b <= a for a, b in zip(values, values[1:]))):
            raise ValueError(f"optimizer {self.name!r}: lr_grid must hold at least 2 positive finite rates "
                             f"in increasing order, got {list(grid)}")
        object.__setattr__(self, "lr_grid", values)


@dataclass(frozen=True)
class LossSpec:
    """What a loss plugin registers.

    ``factory(y_train, n_classes, **hyperparams) -> Loss``: the training labels
    are given so a loss can derive class weights from them.
    """

    name: str
    description: str
    factory: Callable[..., Loss]
    params: tuple[Param, ...] = ()
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
    params: tuple[Param, ...] = ()
    check: Optional[Check] = None
    kind: str = "dataset"


SPEC_TYPES: dict[str, type[Any]] = {"optimizers": OptimizerSpec, "losses": LossSpec, "datasets": DatasetSpec,
                                     "claims": ClaimSpec}
"""The spec type each ``register_<kind>`` hook accepts, by plural kind name."""
