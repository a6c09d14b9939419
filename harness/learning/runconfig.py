"""The description of one training run (:class:`RunConfig`) and the one way to build and check it.

``harness run`` and every sweep cell describe a run the same way: the engine
settings :data:`RUN_PARAMS` (each default written once, here), one hidden-layer
grammar (:func:`parse_hidden`), one schedule spelling (:func:`parse_schedule`)
and :func:`resolve_run`, which turns names and given settings into a fully
resolved RunConfig (every plugin default filled in, every value parsed by its
``Param``), so a plugin's ``check`` and factory see one shape whichever command
built the run. :func:`validate_run` is the engine's own check of a RunConfig;
the trainer calls it too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from harness.errors import UsageError, unknown
from harness.learning import schedules
from harness.learning.model import ACTIVATIONS, DTYPES
from harness.learning.split import PREPROCESS_PARAMS
from harness.plugin.specs import Param, resolve_params

__all__ = ["RunConfig", "RUN_PARAMS", "RUN", "SEED", "parse_hidden", "parse_schedule", "split_schedule",
           "parse_setting", "resolve_settings", "resolve_run", "run_problem", "validate_run", "build_run"]

# The engine settings of a run (`run.<name>` in --set keys and the TOML [run] table).
# RunConfig's field defaults are read from here, so each default is written once.
RUN_PARAMS = (
    Param("lr", 0.1, "initial learning rate (a grid in a sweep is tuned on the validation split)", low=1e-12),
    Param("schedule", "constant", "learning-rate schedule (t counts updates): NAME, NAME:DECAY or "
          "NAME:DECAY:STEP_EVERY, e.g. inverse:0.001, step:0.5:1000; NAME one of "
          + ", ".join(schedules.SCHEDULES)),
    Param("decay", 0.0, "k of the inverse schedule, gamma of the step schedule", low=0.0),
    Param("step_every", 0, "updates between drops of the step schedule (0: one epoch)", low=0),
    Param("epochs", 30, "maximum number of epochs", low=1),
    Param("tol", 0.0, "stop when the train loss is <= tol (0: off)", low=0.0),
    Param("lecture_stop", False, "stop when the train loss is <= 1/sqrt(updates) (the lecture's rule)"),
    Param("patience", 0, "stop after this many epochs without train-loss improvement (0: off)", low=0),
    Param("time_budget", 0.0, "stop after this many training seconds (0: off)", low=0.0),
    Param("hidden", (64,), "hidden layer widths: 64x32 (TOML [64, 32]); none (TOML []) is the convex "
          "softmax/logistic model"),
    Param("activation", "relu", "hidden activation", choices=ACTIVATIONS),
    Param("dtype", "float64", "floating-point precision", choices=DTYPES),
)
RUN = {p.name: p for p in RUN_PARAMS}
SEED = Param("seed", 0, "seed of the split, the initial weights and the batching", low=0, high=2**32 - 1)
_HIDDEN_USAGE = "expected layer widths like 64x32 (TOML [64, 32]) or none"


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
    :func:`resolve_run` builds a fully resolved one, :meth:`make` a raw one from dicts.

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
    seed: int = SEED.default
    lr: float = RUN["lr"].default
    schedule: str = RUN["schedule"].default
    decay: float = RUN["decay"].default            # k for "inverse"; gamma for "step"
    step_every: int = RUN["step_every"].default    # updates between drops for "step" (0: one epoch)
    epochs: int = RUN["epochs"].default
    tol: float = RUN["tol"].default
    lecture_stop: bool = RUN["lecture_stop"].default
    patience: int = RUN["patience"].default
    time_budget: float = RUN["time_budget"].default
    hidden: tuple = RUN["hidden"].default
    activation: str = RUN["activation"].default
    dtype: str = RUN["dtype"].default
    optimizer_params: tuple = ()
    loss_params: tuple = ()
    dataset_params: tuple = ()

    @classmethod
    def make(cls, dataset, loss, optimizer, *, optimizer_params=None, loss_params=None,
             dataset_params=None, hidden=RUN["hidden"].default, **kw) -> "RunConfig":
        """A RunConfig from dicts, as given (no defaults filled in; see :func:`resolve_run`)."""
        return cls(dataset=dataset, loss=loss, optimizer=optimizer,
                   optimizer_params=_items(optimizer_params), loss_params=_items(loss_params),
                   dataset_params=_items(dataset_params), hidden=tuple(int(h) for h in hidden), **kw)

    def settings(self) -> dict:
        """The engine settings (the :data:`RUN_PARAMS` fields) of this run."""
        return {p.name: getattr(self, p.name) for p in RUN_PARAMS}

    def to_dict(self) -> dict:
        """Plain dict (params as dicts) for JSON, tables and hashing."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in ("optimizer_params", "loss_params", "dataset_params"):
            d[k] = dict(d[k])
        d["hidden"] = list(self.hidden)
        return d


# --------------------------------------------------------------------------- one grammar per value
def parse_value(key: str, param: Param, value) -> Any:
    """``param.parse`` with the error message naming ``key`` (e.g. ``run.epochs``)."""
    try:
        return param.parse(value)
    except ValueError as exc:
        msg = str(exc)
        if msg.startswith(f"{param.name}: "):
            msg = msg[len(param.name) + 2:]
        raise UsageError(f"{key}: {msg}") from None


def parse_hidden(value, key: str = "run.hidden") -> tuple:
    """One architecture: ``"64x32"``, ``"none"`` or ``""`` (no hidden layer), ``[64, 32]``, ``64``."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "none", "[]", "()"):
            return ()
        parts = text.split("x")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    widths = []
    for part in parts:
        if isinstance(part, (bool, list, tuple)):
            raise UsageError(f"{key}: {_HIDDEN_USAGE}, got {value!r}")
        try:
            width = float(part)
        except (TypeError, ValueError):
            raise UsageError(f"{key}: {_HIDDEN_USAGE}, got {value!r}") from None
        if not width.is_integer() or width < 1:
            raise UsageError(f"{key}: layer widths must be positive integers, got {value!r}")
        widths.append(int(width))
    return tuple(widths)


def split_schedule(value: str) -> tuple:
    """``"step:0.5:1000"`` -> ``("step", 0.5, 1000)``; parts not spelled are None."""
    parts = str(value).split(":")
    decay = float(parts[1]) if len(parts) > 1 else None
    step_every = int(parts[2]) if len(parts) > 2 else None
    return parts[0].strip(), decay, step_every


def parse_schedule(value, key: str = "run.schedule") -> str:
    """Validate one schedule spelling; return it normalised (``inverse:0.001``)."""
    text = str(value).strip()
    parts = text.split(":")
    if parts[0] not in schedules.SCHEDULES:
        raise UsageError(f"{key}: {unknown('schedule', parts[0], schedules.SCHEDULES)}")
    if len(parts) > 3:
        raise UsageError(f"{key}: expected NAME[:DECAY[:STEP_EVERY]], got {text!r}")
    out = [parts[0]]
    if len(parts) > 1:
        out.append(repr(parse_value(key, RUN["decay"], parts[1])))
    if len(parts) > 2:
        out.append(str(parse_value(key, RUN["step_every"], parts[2])))
    return ":".join(out)


def parse_setting(name: str, value, key: str | None = None) -> Any:
    """One engine setting parsed by its grammar (``key`` names it in errors; default ``run.<name>``)."""
    key = key or f"run.{name}"
    if name not in RUN:
        raise UsageError(f"{key}: {unknown('setting', name, RUN)}")
    if name == "hidden":
        return parse_hidden(value, key)
    if name == "schedule":
        return parse_schedule(value, key)
    return parse_value(key, RUN[name], value)


def resolve_settings(given: Mapping[str, Any]) -> dict:
    """All engine settings: defaults overlaid with ``given``, each parsed once.

    An inline schedule spelling (``inverse:0.001``) sets ``decay`` (and
    ``step_every``) itself and wins over separately given ones.
    """
    out = {p.name: p.default for p in RUN_PARAMS}
    out.update({name: parse_setting(name, value) for name, value in given.items()})
    name, decay, step_every = split_schedule(out["schedule"])
    out["schedule"] = name
    if decay is not None:
        out["decay"] = decay
    if step_every is not None:
        out["step_every"] = step_every
    return out


# --------------------------------------------------------------------------- the run
def _plugin_params(kind: str, spec, given: Mapping[str, Any], generic: tuple = ()) -> dict:
    """Defaults overlaid with ``given``, parsed by the spec's params (and the generic ones for datasets)."""
    own_names = {p.name for p in spec.params}
    rest = tuple(p for p in generic if p.name not in own_names)
    valid = {p.name for p in spec.params} | {p.name for p in rest}
    for name in given:
        if name not in valid:
            raise UsageError(f"{kind}.{spec.name}.{name}: {unknown('hyper-parameter', name, sorted(valid))}")
    owner = f"{kind} {spec.name!r}"
    resolved = resolve_params(spec.params, {k: v for k, v in given.items() if k in own_names}, owner)
    resolved.update(resolve_params(rest, {k: v for k, v in given.items() if k not in own_names}, owner))
    return resolved


def resolve_run(dataset: str, loss: str, optimizer: str, *, registry, seed=SEED.default,
                settings: Mapping[str, Any] | None = None, optimizer_params: Mapping[str, Any] | None = None,
                loss_params: Mapping[str, Any] | None = None,
                dataset_params: Mapping[str, Any] | None = None) -> RunConfig:
    """The fully resolved RunConfig of one run: names checked, every value parsed, every default filled.

    Cross-setting checks (a schedule that cannot be computed) are left to
    :func:`run_problem`, so a sweep can skip such a grid point instead of failing.
    """
    opt_spec = registry.get("optimizers", optimizer)
    loss_spec = registry.get("losses", loss)
    ds_spec = registry.get("datasets", dataset)
    return RunConfig(
        dataset=dataset, loss=loss, optimizer=optimizer, seed=parse_value("seed", SEED, seed),
        **resolve_settings(settings or {}),
        optimizer_params=_items(_plugin_params("optimizer", opt_spec, optimizer_params or {})),
        loss_params=_items(_plugin_params("loss", loss_spec, loss_params or {})),
        dataset_params=_items(_plugin_params("dataset", ds_spec, dataset_params or {}, PREPROCESS_PARAMS)),
    )


def run_problem(config: RunConfig) -> str | None:
    """Why the engine cannot run this combination of settings, or None."""
    try:
        schedules.validate(config.schedule, config.lr, config.decay, config.step_every)
    except ValueError as exc:
        return f"schedule {config.schedule} with decay={config.decay:g}: {exc}"
    return None


def validate_run(config: RunConfig) -> None:
    """Raise a one-line UsageError when any engine setting of ``config`` cannot run."""
    resolve_settings(config.settings())
    parse_value("seed", SEED, config.seed)
    problem = run_problem(config)
    if problem:
        raise UsageError(problem)


def build_run(dataset: str, loss: str, optimizer: str, *, registry, **given) -> RunConfig:
    """:func:`resolve_run` followed by :func:`validate_run`: a run that the engine can train."""
    config = resolve_run(dataset, loss, optimizer, registry=registry, **given)
    validate_run(config)
    return config
