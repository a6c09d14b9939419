"""Sweep configuration: a TOML file plus command-line overrides, validated up front.

Everything a sweep will do is checked here, before any cell runs or any file is
written: plugin names against the registry, plugin hyper-parameters against
their ``contracts.Param`` definitions, generic dataset options against
``harness.learning.split.PREPROCESS_PARAMS`` and engine settings (``run.*``) against
:data:`RUN_PARAMS`. Any problem is a one-line :class:`~harness.errors.UsageError`
naming the key and the valid choices (exit status 2). docs/sweep.md documents
every key.

Grids: any hyper-parameter may be a list of values (TOML) or a comma list
(``--set key=a,b``); the sweep runs every combination. ``run.hidden`` is the
exception that needs a spelling: in TOML ``[64, 32]`` is one architecture and
``[[64], [64, 32], []]`` a grid; on the command line ``64x32`` is one
architecture, commas separate grid values and ``none`` is no hidden layer.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.plugin.specs import Param
from harness.learning.model import ACTIVATIONS
from harness.learning.schedules import SCHEDULES
from harness.errors import UsageError, unknown

__all__ = ["SweepConfig", "RUN_PARAMS", "TUNE_METRICS", "load_config", "parse_set", "preset_path",
           "split_schedule", "schedule_combinations"]

# engine settings of contracts.RunConfig that a sweep may set or grid over (`run.<name>`)
RUN_PARAMS = (
    Param("lr", 0.1, "initial learning rate (a grid here is tuned on the validation split)", low=1e-12),
    Param("schedule", "constant", "learning-rate schedule (t counts updates); NAME or NAME:DECAY or "
          "NAME:DECAY:STEP_EVERY, e.g. inverse:0.001, step:0.5:1000"),
    Param("decay", 0.0, "k of the inverse schedule, gamma of the step schedule", low=0.0),
    Param("step_every", 0, "updates between drops of the step schedule (0: one epoch)", low=0),
    Param("epochs", 30, "maximum number of epochs", low=1),
    Param("tol", 0.0, "stop when the train loss is <= tol (0: off)", low=0.0),
    Param("lecture_stop", False, "stop when the train loss is <= 1/sqrt(updates)"),
    Param("patience", 0, "stop after this many epochs without improvement (0: off)", low=0),
    Param("time_budget", 0.0, "stop after this many training seconds (0: off)", low=0.0),
    Param("hidden", (64,), "hidden layer widths; [] is the convex softmax/logistic model"),
    Param("activation", "relu", "hidden activation", choices=ACTIVATIONS),
    Param("dtype", "float64", "floating-point precision", choices=("float64", "float32")),
)
RUN = {p.name: p for p in RUN_PARAMS}

# tuning metric -> True when larger is better
TUNE_METRICS = {
    "val_loss": False,
    "val_accuracy": True,
    "val_balanced_accuracy": True,
    "val_macro_f1": True,
    "val_minority_recall": True,
}
BACKENDS = ("loky", "dask")
TOP_KEYS = ("name", "out", "datasets", "losses", "optimizers", "seeds", "jobs", "backend",
            "scheduler", "run", "tune", "optimizer", "loss", "dataset")
TUNE_KEYS = ("seeds", "metric", "lr")
PLUGIN_KINDS = {"optimizer": "optimizers", "loss": "losses", "dataset": "datasets"}
ALL = "*"   # `optimizer."*".param`: the setting applies to every plugin of that kind


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep: what to cross, on which seeds, and how to tune and run it.

    Grids are tuples of parsed values. ``plugin_grids[kind][name][param]`` holds
    the plugin hyper-parameter grids (``name`` may be ``"*"``); ``lr_grids``
    holds per-optimizer learning-rate grids that replace ``run["lr"]``.
    """

    name: str = "default"
    out: str = "reports"
    datasets: tuple = ()
    losses: tuple = ()
    optimizers: tuple = ()
    seeds: tuple = (0, 1, 2)
    jobs: int = 1
    backend: str = "loky"
    scheduler: str = ""
    run: dict = field(default_factory=dict)
    tune_seeds: tuple = (0,)
    tune_metric: str = "val_loss"
    lr_grids: dict = field(default_factory=dict)
    plugin_grids: dict = field(default_factory=lambda: {k: {} for k in PLUGIN_KINDS})
    source: str = ""

    @property
    def sweep_dir(self) -> Path:
        return Path(self.out) / self.name

    def run_grid(self, name: str) -> tuple:
        """The grid of engine setting ``name`` (the RunConfig default if not set)."""
        return self.run.get(name, (RUN[name].default,))

    def lr_grid(self, optimizer: str) -> tuple:
        return self.lr_grids.get(optimizer, self.run_grid("lr"))

    def param_grids(self, kind: str, name: str) -> dict:
        """``{param: grid}`` for plugin ``name``: its own settings over the ``"*"`` ones."""
        table = self.plugin_grids.get(kind, {})
        return {**table.get(ALL, {}), **table.get(name, {})}

    def to_dict(self) -> dict:
        """Plain JSON-able form (the manifest records it)."""
        def grid(g):
            return [list(v) if isinstance(v, tuple) else v for v in g]

        return {
            "name": self.name, "out": self.out, "source": self.source,
            "datasets": list(self.datasets), "losses": list(self.losses),
            "optimizers": list(self.optimizers), "seeds": list(self.seeds), "jobs": self.jobs,
            "backend": self.backend, "scheduler": self.scheduler,
            "run": {k: grid(v) for k, v in self.run.items()},
            "tune": {"seeds": list(self.tune_seeds), "metric": self.tune_metric,
                     "lr": {k: list(v) for k, v in self.lr_grids.items()}},
            **{kind: {name: {p: grid(g) for p, g in params.items()} for name, params in table.items()}
               for kind, table in self.plugin_grids.items()},
        }


# --------------------------------------------------------------------------- loading
def preset_path(name: str = "default") -> Path:
    """Path of a preset shipped in ``harness/sweep/presets``."""
    return Path(str(resources.files("harness.sweep") / "presets" / f"{name}.toml"))


def _read_toml(path: str | None) -> tuple[dict, str]:
    if path is None:
        path = str(preset_path("default"))
    p = Path(path)
    if not p.exists():
        if "/" not in path and not path.endswith(".toml") and preset_path(path).exists():
            p = preset_path(path)
        else:
            raise UsageError(f"--config: no such file {path!r}")
    try:
        with open(p, "rb") as fh:
            return tomllib.load(fh), str(p)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--config {p}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"--config {p}: cannot read: {exc.strerror}") from None


def parse_set(item: str) -> tuple[str, list[str]]:
    """``"optimizer.minibatch.batch_size=16,64"`` -> ``("optimizer.minibatch.batch_size", ["16", "64"])``."""
    if "=" not in item:
        raise UsageError(f"--set {item!r}: expected KEY=VALUE[,VALUE...], e.g. "
                         "optimizer.minibatch.batch_size=16,64")
    key, _, value = item.partition("=")
    key = key.strip()
    values = [v.strip() for v in value.split(",")] if value.strip() else []
    return key, values


def _set_path(tree: dict, key: str, values: list) -> None:
    """Put a --set override into the TOML-shaped tree (the TOML is overridden key by key)."""
    parts = key.split(".")
    if parts[0] in PLUGIN_KINDS and len(parts) > 3:   # plugin names may not contain dots; params neither
        parts = [parts[0], ".".join(parts[1:-1]), parts[-1]]
    node = tree
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise UsageError(f"--set {key}: {part!r} is not a table")
        node = nxt
    node[parts[-1]] = _CliGrid(values)


class _CliGrid(list):
    """Values that came from the command line (strings, comma-separated)."""


def load_config(path: str | None = None, *, sets: Sequence[str] = (), overrides: Mapping[str, Any] | None = None,
                registry=None) -> SweepConfig:
    """Read the TOML (the default preset if ``path`` is None), apply overrides, validate.

    ``overrides`` holds the dedicated CLI options (``datasets``, ``losses``,
    ``optimizers``, ``seeds``, ``epochs``, ``jobs``, ``out``, ``name``,
    ``backend``, ``scheduler``) already split into lists where they are lists;
    ``sets`` are ``KEY=VALUES`` strings. ``registry`` defaults to
    ``harness.plugin.loader.load_registry()``.
    """
    tree, source = _read_toml(path)
    if path is not None and "name" not in tree and Path(source).parent != preset_path().parent:
        tree["name"] = Path(source).stem   # a config file without a name names its sweep after itself
    parsed = [parse_set(item) for item in sets]
    if any(key == "run.lr" for key, _ in parsed) and isinstance(tree.get("tune"), dict):
        # a learning-rate grid given on the command line applies to every optimizer
        tree["tune"].pop("lr", None)
    for key, values in parsed:
        _set_path(tree, key, values)
    overrides = dict(overrides or {})
    if overrides.get("backend") == "loky" and not overrides.get("scheduler"):
        tree.pop("scheduler", None)   # the file's dask address does not apply to a local run
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "epochs":
            tree.setdefault("run", {})
            if not isinstance(tree["run"], dict):
                raise UsageError("run: expected a table")
            tree["run"]["epochs"] = value
        else:
            tree[key] = value
    if registry is None:
        from harness.plugin.loader import load_registry

        registry = load_registry()
    return _validate(tree, source, registry)


# --------------------------------------------------------------------------- validation
def _as_list(key: str, value) -> list:
    if isinstance(value, (list, tuple)):
        out = list(value)
    else:
        out = [value]
    if not out:
        raise UsageError(f"{key}: empty grid (give at least one value)")
    return out


def _dedupe(values) -> tuple:
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return tuple(out)


def _parse_param(key: str, param: Param, value) -> Any:
    try:
        return param.parse(value)
    except ValueError as exc:
        msg = str(exc)
        if msg.startswith(f"{param.name}: "):
            msg = msg[len(param.name) + 2:]
        raise UsageError(f"{key}: {msg}") from None


def _parse_hidden(key: str, value) -> tuple:
    """One architecture: [64, 32], (), "64x32", "none", 64."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "none", "[]", "()"):
            return ()
        parts = text.replace(":", "x").split("x")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    widths = []
    for part in parts:
        if isinstance(part, bool):
            raise UsageError(f"{key}: expected layer widths like 64x32 or none, got {value!r}")
        try:
            width = float(part)
        except (TypeError, ValueError):
            raise UsageError(f"{key}: expected layer widths like 64x32 or none, got {value!r}") from None
        if not width.is_integer() or width < 1:
            raise UsageError(f"{key}: layer widths must be positive integers, got {value!r}")
        widths.append(int(width))
    return tuple(widths)


def _hidden_grid(key: str, value) -> tuple:
    if isinstance(value, _CliGrid):
        if not value:
            return ((),)   # `--set run.hidden=` : no hidden layer
        return _dedupe(_parse_hidden(key, v) for v in value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (list, tuple)) for v in value):
        return _dedupe(_parse_hidden(key, v) for v in value)
    if isinstance(value, (list, tuple)) and any(isinstance(v, (list, tuple)) for v in value):
        raise UsageError(f"{key}: mix of widths and lists; use [64, 32] for one architecture "
                         "or [[64], [64, 32]] for a grid")
    return (_parse_hidden(key, value),)


def _grid(key: str, param: Param, value) -> tuple:
    return _dedupe(_parse_param(key, param, v) for v in _as_list(key, value))


def _names(key: str, value, table: Mapping, what: str) -> tuple:
    values = _as_list(key, value.split(",") if isinstance(value, str) else value)
    out = []
    for v in values:
        v = str(v).strip()
        if v not in table:
            err = unknown(what, v, table)
            raise UsageError(f"{key}: {err}")
        out.append(v)
    return _dedupe(out)


def _seeds(key: str, value) -> tuple:
    """``3`` -> (0, 1, 2); ``[0, 5, 7]`` or ``"0,5,7"`` -> (0, 5, 7)."""
    if isinstance(value, str):
        text = value.strip()
        value = [v for v in text.split(",")] if "," in text else text
        if isinstance(value, list) and not all(v.strip() for v in value):
            raise UsageError(f"{key}: expected a count like 3 or a list like 0,5,7, got {text!r}")
    if isinstance(value, _CliGrid) and len(value) == 1:
        value = value[0]
    seed = Param("seed", 0, low=0)
    if isinstance(value, (list, tuple)):
        return _grid(key, seed, value)
    try:
        count = Param("seeds", 1, low=1).parse(value)
    except ValueError:
        raise UsageError(f"{key}: expected a count >= 1 (3 means seeds 0,1,2) or a list of seeds >= 0 "
                         f"like 0,5,7, got {value!r}") from None
    return tuple(range(count))


def _table(key: str, value) -> dict:
    if not isinstance(value, dict):
        raise UsageError(f"{key}: expected a table, got {value!r}")
    return value


def _preprocess_params() -> tuple:
    from harness.learning.split import PREPROCESS_PARAMS

    return tuple(PREPROCESS_PARAMS)


def _validate(tree: dict, source: str, registry) -> SweepConfig:
    for key in tree:
        if key not in TOP_KEYS:
            raise unknown("key", key, TOP_KEYS)
    kw: dict = {"source": source}
    if "name" in tree:
        name = str(_scalar("name", tree["name"])).strip()
        if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
            raise UsageError(f"name: {name!r} is not a usable folder name")
        kw["name"] = name
    if "out" in tree:
        out = str(_scalar("out", tree["out"])).strip()
        if not out:
            raise UsageError("out: empty path")
        kw["out"] = out
    kw["datasets"] = _names("datasets", tree.get("datasets", list(registry.datasets)), registry.datasets, "dataset")
    kw["losses"] = _names("losses", tree.get("losses", list(registry.losses)), registry.losses, "loss")
    kw["optimizers"] = _names("optimizers", tree.get("optimizers", list(registry.optimizers)),
                              registry.optimizers, "optimizer")
    if "seeds" in tree:
        kw["seeds"] = _seeds("seeds", tree["seeds"])
    if "jobs" in tree:
        kw["jobs"] = _parse_param("jobs", Param("jobs", 1, low=1), _scalar("jobs", tree["jobs"]))
    if "backend" in tree:
        kw["backend"] = _parse_param("backend", Param("backend", "loky", choices=BACKENDS),
                                     _scalar("backend", tree["backend"]))
    if "scheduler" in tree:
        kw["scheduler"] = str(_scalar("scheduler", tree["scheduler"])).strip()
    if kw.get("backend") == "dask" and not kw.get("scheduler"):
        raise UsageError("backend dask needs a scheduler address (--scheduler tcp://HOST:8786)")
    if kw.get("scheduler") and kw.get("backend", "loky") != "dask":
        raise UsageError("scheduler: only used with --backend dask")

    run = {}
    for key, value in _table("run", tree.get("run", {})).items():
        if key not in RUN:
            raise UsageError(f"run.{key}: {unknown('setting', key, RUN)}")
        if key == "hidden":
            run[key] = _hidden_grid("run.hidden", value)
        elif key == "schedule":
            run[key] = _dedupe(_parse_schedule("run.schedule", v) for v in _as_list("run.schedule", value))
        else:
            run[key] = _grid(f"run.{key}", RUN[key], value)
    kw["run"] = run
    _check_schedules(run)

    tune = _table("tune", tree.get("tune", {}))
    for key in tune:
        if key not in TUNE_KEYS:
            raise UsageError(f"tune.{key}: {unknown('setting', key, TUNE_KEYS)}")
    if "seeds" in tune:
        # always seeds, never a count: `tune.seeds = 0` tunes on seed 0
        value = tune["seeds"]
        if isinstance(value, str):
            value = value.split(",")
        kw["tune_seeds"] = _grid("tune.seeds", Param("seed", 0, low=0), value)
    if "metric" in tune:
        kw["tune_metric"] = _parse_param("tune.metric", Param("metric", "val_loss", choices=tuple(TUNE_METRICS)),
                                         _scalar("tune.metric", tune["metric"]))
    lr_grids = {}
    for opt, grid in _table("tune.lr", tune.get("lr", {})).items():
        if opt not in registry.optimizers:
            raise UsageError(f"tune.lr: {unknown('optimizer', opt, registry.optimizers)}")
        lr_grids[opt] = _grid(f"tune.lr.{opt}", RUN["lr"], grid)
    kw["lr_grids"] = lr_grids

    generic = _preprocess_params()
    plugin_grids = {}
    for kind, plural in PLUGIN_KINDS.items():
        table = registry.kind(plural)
        plugin_grids[kind] = {}
        for name, settings in _table(kind, tree.get(kind, {})).items():
            if name != ALL and name not in table:
                raise UsageError(f"{kind}: {unknown(kind, name, list(table) + [ALL])}")
            specs = list(table.values()) if name == ALL else [table[name]]
            grids = {}
            for pname, value in _table(f"{kind}.{name}", settings).items():
                key = f"{kind}.{name}.{pname}"
                params = [_find_param(key, spec, pname, generic if kind == "dataset" else ()) for spec in specs]
                params = [p for p in params if p is not None]
                if not params:
                    valid = sorted({p.name for s in specs for p in s.params}
                                   | ({p.name for p in generic} if kind == "dataset" else set()))
                    raise UsageError(f"{key}: {unknown('hyper-parameter', pname, valid)}")
                grid = _grid(key, params[0], value)
                for p in params[1:]:
                    for v in grid:
                        _parse_param(key, p, v)
                grids[pname] = grid
            plugin_grids[kind][name] = grids
    kw["plugin_grids"] = plugin_grids
    return SweepConfig(**kw)


def split_schedule(value: str) -> tuple:
    """``"step:0.5:1000"`` -> ``("step", 0.5, 1000)``; missing parts are None."""
    parts = str(value).split(":")
    name = parts[0].strip()
    decay = float(parts[1]) if len(parts) > 1 else None
    step_every = int(parts[2]) if len(parts) > 2 else None
    return name, decay, step_every


def _parse_schedule(key: str, value) -> str:
    """Validate one schedule spelling; return it normalised (``inverse:0.001``)."""
    text = str(value).strip()
    parts = text.split(":")
    if parts[0] not in SCHEDULES:
        raise UsageError(f"{key}: {unknown('schedule', parts[0], SCHEDULES)}")
    if len(parts) > 3:
        raise UsageError(f"{key}: expected NAME[:DECAY[:STEP_EVERY]], got {text!r}")
    out = [parts[0]]
    if len(parts) > 1:
        out.append(repr(_parse_param(key, RUN["decay"], parts[1])))
    if len(parts) > 2:
        out.append(str(_parse_param(key, RUN["step_every"], parts[2])))
    return ":".join(out)


def schedule_combinations(run: dict) -> list:
    """Every (schedule, decay, step_every) the grid produces (inline values win)."""
    combos = []
    for schedule in run.get("schedule", (RUN["schedule"].default,)):
        name, inline_decay, inline_every = split_schedule(schedule)
        decays = (inline_decay,) if inline_decay is not None else run.get("decay", (RUN["decay"].default,))
        everys = (inline_every,) if inline_every is not None else run.get("step_every",
                                                                           (RUN["step_every"].default,))
        combos.extend((schedule, name, d, e) for d in decays for e in everys)
    return combos


def _check_schedules(run: dict) -> None:
    """A single schedule setting must be computable; in a grid, bad combinations are skipped."""
    from harness.learning.schedules import validate

    combos = schedule_combinations(run)
    problems = []
    for spelled, name, decay, step_every in combos:
        try:
            validate(name, 1.0, decay, step_every)   # lr > 0 is checked on its own
        except ValueError as exc:
            problems.append(f"run.schedule={spelled} with decay={decay:g}: {exc}")
    if problems and (len(combos) == 1 or len(problems) == len(combos)):
        raise UsageError(problems[0])


def _find_param(key: str, spec, pname: str, generic: tuple) -> Param | None:
    for p in tuple(spec.params) + tuple(generic):
        if p.name == pname:
            return p
    return None


def _scalar(key: str, value):
    if isinstance(value, _CliGrid):
        if len(value) != 1:
            raise UsageError(f"{key}: expected one value, got {len(value)}")
        return value[0]
    if isinstance(value, (list, tuple, dict)):
        raise UsageError(f"{key}: expected one value, got {value!r}")
    return value
