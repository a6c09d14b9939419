"""Run and sweep settings: a TOML file plus command-line overrides, validated up front.

One grammar serves ``harness sweep`` and ``harness run``: the same keys
(``run.<setting>``, ``optimizer[.<name>].<param>``, ``loss[.<name>].<param>``,
``dataset[.<name>].<param>``), the same value spellings and the same
validation. A sweep adds grids (a list in TOML, a comma list on the command
line) and the top-level keys; ``run`` takes one value per key
(:func:`load_run_settings`). Everything is checked here, before any cell runs
or any file is written: plugin names against the registry, plugin
hyper-parameters against their ``Param`` definitions, generic dataset options
against ``harness.learning.split.PREPROCESS_PARAMS`` (including whether the
split keeps enough samples of every class) and engine settings against
``harness.learning.runconfig.RUN_PARAMS``. Any problem is a one-line
:class:`~harness.errors.UsageError` naming the key (exit status 2).
docs/sweep.md documents every key.

``run.hidden`` needs a spelling for its grids: in TOML ``[64, 32]`` is one
architecture and ``[[64], [64, 32], []]`` a grid; on the command line ``64x32``
is one architecture, commas separate grid values and ``none`` is no hidden layer.
"""
from __future__ import annotations

import itertools
import textwrap
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.errors import HarnessError, UsageError, unknown
from harness.learning.runconfig import (RUN, RUN_PARAMS, SEED, parse_hidden, parse_schedule, parse_value,
                                       split_schedule)
from harness.learning.schedules import validate as validate_schedule
from harness.learning.split import PREPROCESS_PARAMS, load_dataset, split_indices
from harness.plugin.claims import TUNING_OBJECTIVES
from harness.plugin.specs import Param

__all__ = ["SweepConfig", "TUNE_METRICS", "DEFAULT_LR_GRID", "TABLE_OBJECTIVE", "MAX_SEEDS", "MIN_PER_CLASS", "load_config", "load_run_settings",
           "parse_set", "preset_path", "settings_help"]

# tuning objective -> True when larger is better (defined with ClaimSpec.tuned_for, which names one)
TUNE_METRICS = TUNING_OBJECTIVES
TABLE_OBJECTIVE = "val_loss_best"  # the report's tables compare runs tuned for it; always among the objectives
# the grid of an optimizer that declares none and gets none from the config: 1e-3 .. 1, 7 log-spaced rates
DEFAULT_LR_GRID = tuple(float(f"{10 ** (-3 + k / 2):.12g}") for k in range(7))
MAX_EXTENSIONS = Param("max_extensions", 3, "grid steps added past each edge at most", low=0)
BACKEND = Param("backend", "loky", "where cells run", choices=("loky", "dask"))
TOP_KEYS = ("name", "out", "datasets", "losses", "optimizers", "seeds", "jobs", "backend",
            "scheduler", "timeout", "run", "tune", "optimizer", "loss", "dataset")
TUNE_KEYS = ("seeds", "metric", "lr", "per_seed", "max_extensions")
PLUGIN_KINDS = {"optimizer": "optimizers", "loss": "losses", "dataset": "datasets"}
ALL = "*"   # `optimizer."*".param` (or `optimizer.param`): every selected plugin of that kind that has it
MAX_SEEDS = 10_000
MIN_PER_CLASS = 2   # samples of every class each split part must keep
TIMEOUT = Param("timeout", 1800.0, "wall-clock seconds a cell may take before it is stopped (0: no limit)",
                low=0.0)
JOBS = Param("jobs", 1, "parallel worker processes", low=1)


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep: what to cross, on which seeds, and how to tune and run it.

    Grids are tuples of parsed values. ``plugin_grids[kind][name][param]`` holds
    the plugin hyper-parameter grids (``name`` may be ``"*"``); ``lr_grids``
    holds per-optimizer learning-rate grids that replace ``run["lr"]``.
    ``notes`` are lines a user should read before the sweep runs (e.g. what
    ``run.lr`` on the command line did to the file's ``[tune.lr]``).
    ``plugin_lr_grids`` holds the grids the selected optimizers declare
    (``OptimizerSpec.lr_grid``). ``tune_metrics`` are the tuning objectives,
    ``per_seed`` whether each seed picks its own rate (else ``tune_seeds``
    pick one for all), ``max_extensions`` the edge extensions allowed per side.
    """

    name: str = "default"
    out: str = "reports"
    datasets: tuple = ()
    losses: tuple = ()
    optimizers: tuple = ()
    seeds: tuple = (0, 1, 2)
    jobs: int = JOBS.default
    backend: str = "loky"
    scheduler: str = ""
    timeout: float = TIMEOUT.default
    run: dict = field(default_factory=dict)
    tune_seeds: tuple = (0,)
    tune_metrics: tuple = (TABLE_OBJECTIVE,)
    per_seed: bool = True
    max_extensions: int = MAX_EXTENSIONS.default
    lr_grids: dict = field(default_factory=dict)
    plugin_lr_grids: dict = field(default_factory=dict)
    plugin_grids: dict = field(default_factory=lambda: {k: {} for k in PLUGIN_KINDS})
    source: str = ""
    notes: tuple = ()

    @property
    def sweep_dir(self) -> Path:
        return Path(self.out) / self.name

    def run_grid(self, name: str) -> tuple:
        """The grid of engine setting ``name`` (the RunConfig default if not set)."""
        return self.run.get(name, (RUN[name].default,))

    @property
    def tune_metric(self) -> str:
        """The first tuning objective (the tables' one comes first)."""
        return self.tune_metrics[0]

    @property
    def tuning_seeds(self) -> tuple:
        """The seeds whose tuning runs choose the rates: every seed when tuning per seed."""
        return self.seeds if self.per_seed else self.tune_seeds

    @property
    def held_out_tuning(self) -> bool:
        """True when no tuning seed is an evaluation seed: no final run reuses a tuning run, so the
        tuning runs of one group and seed may train stacked (their seconds are not compared)."""
        return not set(self.tuning_seeds) & set(self.seeds)

    def lr_source(self, optimizer: str) -> str:
        """Where ``optimizer``'s grid comes from: ``config`` (tune.lr), ``run.lr``, ``plugin`` or ``default``."""
        if optimizer in self.lr_grids:
            return "config"
        if "lr" in self.run:
            return "run.lr"
        return "plugin" if self.plugin_lr_grids.get(optimizer) else "default"

    def lr_grid(self, optimizer: str) -> tuple:
        """The learning rates ``optimizer`` is tuned over, by the precedence in docs/sweep.md."""
        source = self.lr_source(optimizer)
        if source == "config":
            return self.lr_grids[optimizer]
        if source == "run.lr":
            return self.run["lr"]
        return tuple(self.plugin_lr_grids[optimizer]) if source == "plugin" else DEFAULT_LR_GRID

    def param_grids(self, kind: str, name: str) -> dict:
        """``{param: grid}`` for plugin ``name``: its own settings over the ``"*"`` ones."""
        table = self.plugin_grids.get(kind, {})
        return {**table.get(ALL, {}), **table.get(name, {})}

    def schedule_axis(self) -> list:
        """Every (spelling, schedule, decay, step_every) the grid produces (inline values win)."""
        combos = []
        for schedule in self.run_grid("schedule"):
            name, inline_decay, inline_every = split_schedule(schedule)
            decays = (inline_decay,) if inline_decay is not None else self.run_grid("decay")
            everys = (inline_every,) if inline_every is not None else self.run_grid("step_every")
            combos.extend((schedule, name, d, e) for d in decays for e in everys)
        return combos

    def to_dict(self) -> dict:
        """Plain JSON-able form (the manifest records it)."""
        def grid(g):
            return [list(v) if isinstance(v, tuple) else v for v in g]

        return {
            "name": self.name, "out": self.out, "source": self.source,
            "datasets": list(self.datasets), "losses": list(self.losses),
            "optimizers": list(self.optimizers), "seeds": list(self.seeds), "jobs": self.jobs,
            "backend": self.backend, "scheduler": self.scheduler, "timeout": self.timeout,
            "run": {k: grid(v) for k, v in self.run.items()},
            "tune": {"seeds": list(self.tune_seeds), "metric": list(self.tune_metrics),
                     "per_seed": self.per_seed, "max_extensions": self.max_extensions,
                     "lr": {k: list(v) for k, v in self.lr_grids.items()}},
            **{kind: {name: {p: grid(g) for p, g in params.items()} for name, params in table.items()}
               for kind, table in self.plugin_grids.items()},
        }


def settings_help() -> str:
    """The keys both commands accept, for ``--help`` (generated, so run and sweep list the same)."""
    lines = ["keys (--set KEY=VALUE; docs/sweep.md lists them all):"]
    for p in RUN_PARAMS:
        text = f"{p.help} (default {_show_default(p.default)})"
        lines += textwrap.wrap(text, 100, initial_indent=f"  run.{p.name:<24} ", subsequent_indent=" " * 31)
    lines += [
        "  optimizer.<name>.<param>     e.g. optimizer.minibatch.batch_size=16",
        "  optimizer.<param>            every selected optimizer that has the param,",
        "                               e.g. optimizer.batch_size=16",
        "  loss[.<name>].<param>        e.g. loss.wce.normalisation=lecture",
        "  dataset[.<name>].<param>     e.g. dataset.breast_cancer.imbalance=0.1, dataset.max_samples=500",
        "  (`harness list optimizers|losses|datasets` shows every plugin's params)",
    ]
    return "\n".join(lines)


def _show_default(value) -> str:
    if isinstance(value, tuple):
        return "x".join(map(str, value)) or "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


# --------------------------------------------------------------------------- reading
def preset_path(name: str = "default") -> Path:
    """Path of a preset shipped in ``harness/sweep/presets``."""
    return Path(str(resources.files("harness.sweep") / "presets" / f"{name}.toml"))


def _utf8(key: str, text: str) -> str:
    """``text`` if it can be written as UTF-8 (argv may carry undecodable bytes as surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{key}: {text!r} holds bytes that are not UTF-8; use a UTF-8 name") from None
    return text


def _read_toml(path: str | None) -> tuple[dict, str]:
    if path is None:
        path = str(preset_path("default"))
    _utf8("--config", path)
    p = Path(path)
    if not p.exists():
        if "/" not in path and not path.endswith(".toml") and preset_path(path).exists():
            p = preset_path(path)
        else:
            raise UsageError(f"--config: no such file {path!r}")
    try:
        with open(p, "rb") as fh:
            return tomllib.load(fh), str(p)
    except UnicodeDecodeError as exc:
        raise UsageError(f"--config {p}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
                         f"at offset {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--config {p}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"--config {p}: cannot read: {exc.strerror}") from None


def parse_set(item: str) -> tuple[str, list[str]]:
    """``"optimizer.minibatch.batch_size=16,64"`` -> ``("optimizer.minibatch.batch_size", ["16", "64"])``."""
    if "=" not in item:
        raise UsageError(f"--set {item!r}: expected KEY=VALUE[,VALUE...], e.g. "
                         "optimizer.minibatch.batch_size=16,64")
    _utf8("--set", item)
    key, _, value = item.partition("=")
    key = key.strip()
    values = [v.strip() for v in value.split(",")] if value.strip() else []
    return key, values


class _CliGrid(list):
    """Values that came from the command line (strings, comma-separated)."""


class _Tree:
    """The TOML-shaped settings, overridden key by key; remembers every value a later one replaced."""

    def __init__(self, tree: dict):
        self.tree = tree
        self.replaced: list = []   # (path, value) pairs, each validated like the value that won

    def set(self, key: str, values: list) -> None:
        parts = key.split(".")
        if parts[0] in PLUGIN_KINDS:
            if len(parts) == 2:        # optimizer.batch_size: every selected optimizer with that param
                parts = [parts[0], ALL, parts[1]]
            elif len(parts) > 3:       # a plugin name with dots; params have none
                parts = [parts[0], ".".join(parts[1:-1]), parts[-1]]
        if parts[0] in PLUGIN_KINDS and parts[1] == ALL and isinstance(self.tree.get(parts[0]), dict):
            # the command line wins over the file: `optimizer.batch_size` replaces the file's
            # `[optimizer.minibatch] batch_size` too (a later --set for one plugin still wins over it)
            for name, table in self.tree[parts[0]].items():
                if name != ALL and isinstance(table, dict) and parts[2] in table \
                        and not isinstance(table[parts[2]], _CliGrid):
                    self.replaced.append(((parts[0], name, parts[2]), table.pop(parts[2])))
        node = self.tree
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise UsageError(f"--set {key}: {part!r} is not a table")
            node = nxt
        if parts[-1] in node and not isinstance(node[parts[-1]], dict):
            self.replaced.append((tuple(parts), node[parts[-1]]))
        node[parts[-1]] = _CliGrid(values)

    def check_replaced(self, source: str, registry) -> None:
        """Validate each replaced value on its own, with the final plugin selection (none is dropped silently)."""
        for path, value in self.replaced:
            if path == ("backend",):
                parse_value("backend", BACKEND, _scalar("backend", value))
                continue
            if path == ("scheduler",):
                continue
            tree = {k: self.tree[k] for k in ("datasets", "losses", "optimizers") if k in self.tree}
            node = tree
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
            _validate(tree, source, registry)


def _apply(tree: _Tree, sets: Sequence[str], overrides: Mapping[str, Any]) -> None:
    """``--set`` items, then the dedicated options (spellings of the same keys), later ones winning."""
    for key, values in (parse_set(item) for item in sets):
        tree.set(key, values)
    for key, value in overrides.items():
        if value is None:
            continue
        if key in RUN:
            key = f"run.{key}"
        if key.startswith("run."):
            tree.set(key, parse_set(f"{key}={value}")[1])
        else:
            if isinstance(value, str):
                _utf8(f"--{key}", value)
            if key in tree.tree and not isinstance(tree.tree[key], dict):
                tree.replaced.append(((key,), tree.tree[key]))
            tree.tree[key] = value


def _cli_lr(sets: Sequence[str], overrides: Mapping[str, Any]) -> list | None:
    """The learning rates given on the command line (``--set run.lr=`` or ``--lr``), if any."""
    given = None
    for key, values in (parse_set(item) for item in sets):
        if key == "run.lr":
            given = values
    for key in ("lr", "run.lr"):
        if overrides.get(key) is not None:
            given = parse_set(f"run.lr={overrides[key]}")[1]
    return given


def load_config(path: str | None = None, *, sets: Sequence[str] = (), overrides: Mapping[str, Any] | None = None,
                registry) -> SweepConfig:
    """Read the TOML (the default preset if ``path`` is None), apply overrides, validate.

    ``sets`` are ``KEY=VALUES`` strings; ``overrides`` holds the dedicated CLI
    options, each a spelling of a key: the top-level ``datasets``, ``losses``,
    ``optimizers``, ``seeds``, ``jobs``, ``out``, ``name``, ``backend``,
    ``scheduler``, ``timeout`` and every engine setting (``epochs``, ``lr``, ...,
    meaning ``run.<name>``). Overrides are applied after ``sets``; every value
    given, overridden or not, is validated.

    ``run.lr`` given on the command line decides the learning rates of every
    optimizer: one value means no tuning, several values are the grid every
    optimizer is tuned over; either way the file's ``[tune.lr]`` is ignored and
    :attr:`SweepConfig.notes` says so.
    """
    raw, source = _read_toml(path)
    if path is not None and "name" not in raw and Path(source).parent != preset_path().parent:
        raw["name"] = Path(source).stem   # a config file without a name names its sweep after itself
    overrides = dict(overrides or {})
    notes = []
    lr = _cli_lr(sets, overrides)
    if lr is not None:
        dropped = isinstance(raw.get("tune"), dict) and raw["tune"].pop("lr", None) is not None
        what = ("learning rates are not tuned" if len(lr) == 1
                else "every optimizer tunes its learning rate over this grid")
        ignored = "[tune.lr] and the optimizers' declared grids" if dropped else "the optimizers' declared grids"
        notes.append(f"run.lr={','.join(lr)} given: {what}; {ignored} ignored")
    if overrides.get("backend") == "loky" and not overrides.get("scheduler"):
        raw.pop("scheduler", None)   # the file's dask address does not apply to a local run
    tree = _Tree(raw)
    _apply(tree, sets, overrides)
    config = _validate(tree.tree, source, registry)
    tree.check_replaced(source, registry)
    return replace(config, notes=tuple(notes))


RUN_KINDS = ("run",) + tuple(PLUGIN_KINDS)


def load_run_settings(dataset: str, loss: str, optimizer: str, *, seed: Any = SEED.default,
                      sets: Sequence[str] = (), overrides: Mapping[str, Any] | None = None,
                      registry) -> SweepConfig:
    """The settings of ``harness run``: the sweep's keys and validation, one value per key.

    Returns a SweepConfig with exactly one cell (``harness.sweep.plan.single_run``
    turns it into the RunConfig). A grid, or a setting for another plugin than
    the one this run uses, is a one-line UsageError.
    """
    for plural, name in (("datasets", dataset), ("losses", loss), ("optimizers", optimizer)):
        registry.get(plural, name)   # "unknown optimizer 'sdg' (did you mean 'sgd'?)" before anything else
    tree = _Tree({"datasets": [dataset], "losses": [loss], "optimizers": [optimizer]})
    for item in sets:
        key = parse_set(item)[0]
        if key.split(".")[0] not in RUN_KINDS:
            raise UsageError(f"--set {key}: `harness run` takes run.*, optimizer.*, loss.* and dataset.* keys "
                             f"(got {key.split('.')[0]!r})")
    _apply(tree, sets, dict(overrides or {}))
    seeds = parse_set(f"seed={seed}")[1]
    if len(seeds) != 1:
        raise _grid_error("seed")
    tree.tree["seeds"] = [parse_value("seed", SEED, seeds[0])]
    chosen = {"optimizer": optimizer, "loss": loss, "dataset": dataset}
    for kind in PLUGIN_KINDS:
        for name in _table(kind, tree.tree.get(kind, {})):
            if name not in (ALL, chosen[kind]):
                raise UsageError(f"{kind}.{name}: this run uses {kind} {chosen[kind]!r}; "
                                 f"write {kind}.PARAM=VALUE or {kind}.{chosen[kind]}.PARAM=VALUE")
    config = _validate(tree.tree, "", registry)
    tree.check_replaced("", registry)
    if "lr" not in config.run:   # one run trains at run.lr, never over the optimizer's declared grid
        config = replace(config, run={**config.run, "lr": (RUN["lr"].default,)})
    for kind, table in config.plugin_grids.items():
        for name, params in table.items():
            for pname, grid in params.items():
                if len(grid) != 1:
                    raise _grid_error(f"{kind}.{name}.{pname}")
    for name, grid in config.run.items():
        if len(grid) != 1:
            raise _grid_error(f"run.{name}")
    if len(config.schedule_axis()) != 1:
        raise _grid_error("run.schedule")
    return config


def _grid_error(key: str) -> UsageError:
    return UsageError(f"{key}: `harness run` trains one configuration; give one value "
                      "(`harness sweep` takes grids)")


# --------------------------------------------------------------------------- validation
def _as_list(key: str, value) -> list:
    out = list(value) if isinstance(value, (list, tuple)) else [value]
    if not out:
        raise UsageError(f"{key}: empty grid (give at least one value)")
    return out


def _dedupe(values) -> tuple:
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return tuple(out)


def _hidden_grid(key: str, value) -> tuple:
    if isinstance(value, _CliGrid):
        if not value:
            return ((),)   # `--set run.hidden=` : no hidden layer
        return _dedupe(parse_hidden(v, key) for v in value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (list, tuple)) for v in value):
        return _dedupe(parse_hidden(v, key) for v in value)
    if isinstance(value, (list, tuple)) and any(isinstance(v, (list, tuple)) for v in value):
        raise UsageError(f"{key}: mix of widths and lists; use [64, 32] for one architecture "
                         "or [[64], [64, 32]] for a grid")
    return (parse_hidden(value, key),)


def _grid(key: str, param: Param, value) -> tuple:
    return _dedupe(parse_value(key, param, v) for v in _as_list(key, value))


def _names(key: str, value, table: Mapping, what: str) -> tuple:
    values = _as_list(key, value.split(",") if isinstance(value, str) else value)
    out = []
    for v in values:
        v = str(v).strip()
        if v not in table:
            raise UsageError(f"{key}: {unknown(what, v, table)}")
        out.append(v)
    return _dedupe(out)


def _seed_list(key: str, values: list) -> tuple:
    if len(values) > MAX_SEEDS:
        raise UsageError(f"{key}: at most {MAX_SEEDS} seeds, got a list of {len(values)}")
    out = []
    for v in values:
        if isinstance(v, str) and not v.strip():
            raise UsageError(f"{key}: empty seed in the list (expected seeds >= 0 like 0,5,7)")
        try:
            out.append(SEED.parse(v))
        except ValueError:
            raise UsageError(f"{key}: must be integers >= 0 (and < 2**32), got {v!r}") from None
    return _dedupe(out)


def _seeds(key: str, value) -> tuple:
    """``3`` -> (0, 1, 2); ``[0, 5, 7]`` or ``"0,5,7"`` -> (0, 5, 7). At most MAX_SEEDS, checked first."""
    if isinstance(value, str):
        value = value.split(",") if "," in value else value.strip()
    if isinstance(value, _CliGrid) and len(value) == 1:
        value = value[0]
    if isinstance(value, (list, tuple)):
        return _seed_list(key, _as_list(key, value))
    try:
        count = Param("seeds", 1, low=1).parse(value)
    except ValueError:
        raise UsageError(f"{key}: expected a count >= 1 (3 means seeds 0,1,2) or a list of seeds >= 0 "
                         f"like 0,5,7, got {value!r}") from None
    if count > MAX_SEEDS:
        raise UsageError(f"{key}: at most {MAX_SEEDS} seeds, got a count of {count}")
    return tuple(range(count))


def _table(key: str, value) -> dict:
    if not isinstance(value, dict):
        raise UsageError(f"{key}: expected a table, got {value!r}")
    return value


def _scalar(key: str, value):
    if isinstance(value, _CliGrid):
        if len(value) != 1:
            raise UsageError(f"{key}: expected one value, got {len(value)}")
        return value[0]
    if isinstance(value, (list, tuple, dict)):
        raise UsageError(f"{key}: expected one value, got {value!r}")
    return value


def _folder_name(key: str, value) -> str:
    text = _utf8(key, str(_scalar(key, value)).strip())
    if not text:
        raise UsageError(f"{key}: empty")
    return text


def _validate(tree: dict, source: str, registry) -> SweepConfig:
    for key in tree:
        if key not in TOP_KEYS:
            raise unknown("key", key, TOP_KEYS)
    kw: dict = {"source": source}
    if "name" in tree:
        name = _folder_name("name", tree["name"])
        if name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
            raise UsageError(f"name: {name!r} is not a usable folder name")
        kw["name"] = name
    if "out" in tree:
        kw["out"] = _folder_name("out", tree["out"])
    kw["datasets"] = _names("datasets", tree.get("datasets", list(registry.datasets)), registry.datasets, "dataset")
    kw["losses"] = _names("losses", tree.get("losses", list(registry.losses)), registry.losses, "loss")
    kw["optimizers"] = _names("optimizers", tree.get("optimizers", list(registry.optimizers)),
                              registry.optimizers, "optimizer")
    if "seeds" in tree:
        kw["seeds"] = _seeds("seeds", tree["seeds"])
    if "jobs" in tree:
        kw["jobs"] = parse_value("jobs", JOBS, _scalar("jobs", tree["jobs"]))
    if "timeout" in tree:
        kw["timeout"] = float(parse_value("timeout", TIMEOUT, _scalar("timeout", tree["timeout"])))
    if "backend" in tree:
        kw["backend"] = parse_value("backend", BACKEND, _scalar("backend", tree["backend"]))
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
            run[key] = _dedupe(parse_schedule(v) for v in _as_list("run.schedule", value))
        else:
            run[key] = _grid(f"run.{key}", RUN[key], value)
    kw["run"] = run

    tune = _table("tune", tree.get("tune", {}))
    for key in tune:
        if key not in TUNE_KEYS:
            raise UsageError(f"tune.{key}: {unknown('setting', key, TUNE_KEYS)}")
    if "seeds" in tune:
        # always seeds, never a count: `tune.seeds = 0` tunes on seed 0
        value = tune["seeds"]
        kw["tune_seeds"] = _seed_list("tune.seeds", value.split(",") if isinstance(value, str)
                                      else _as_list("tune.seeds", value))
    kw["tune_metrics"] = _objectives(tune.get("metric"), registry, kw)
    if "per_seed" in tune:
        kw["per_seed"] = parse_value("tune.per_seed", Param("per_seed", True),
                                      _scalar("tune.per_seed", tune["per_seed"]))
    elif "seeds" in tune:
        kw["per_seed"] = False   # naming the tuning seeds asks for tuning once on them
    if kw.get("per_seed", True):
        kw.pop("tune_seeds", None)   # per seed, every seed tunes itself: named tuning seeds have no use
    if "max_extensions" in tune:
        kw["max_extensions"] = parse_value("tune.max_extensions", MAX_EXTENSIONS,
                                            _scalar("tune.max_extensions", tune["max_extensions"]))
    lr_grids = {}
    for opt, grid in _table("tune.lr", tune.get("lr", {})).items():
        if opt not in registry.optimizers:
            raise UsageError(f"tune.lr: {unknown('optimizer', opt, registry.optimizers)}")
        lr_grids[opt] = _grid(f"tune.lr.{opt}", RUN["lr"], grid)
    kw["lr_grids"] = lr_grids
    kw["plugin_lr_grids"] = {name: tuple(registry.optimizers[name].lr_grid) for name in kw["optimizers"]
                             if getattr(registry.optimizers[name], "lr_grid", ())}

    kw["plugin_grids"] = {kind: _plugin_grids(kind, tree.get(kind, {}), registry, kw[plural])
                          for kind, plural in PLUGIN_KINDS.items()}
    config = SweepConfig(**kw)
    _check_schedules(config)
    _check_splits(config, registry)
    return config


def _objectives(value, registry, kw: dict) -> tuple:
    """``tune.metric``: one objective or a list; by default those the sweep's claims ask for, plus the tables'.

    A claim counts when the plugins it compares are all selected (claims on other factors always count).
    """
    if value is None:
        wanted = [spec.tuned_for for spec in getattr(registry, "claims", {}).values()
                  if _claim_in_sweep(spec, kw)]
    else:
        param = Param("metric", TABLE_OBJECTIVE, choices=tuple(TUNE_METRICS))
        wanted = [parse_value("tune.metric", param, v) for v in _as_list("tune.metric", value)]
    return _dedupe([TABLE_OBJECTIVE, *wanted] if value is None else wanted)


def _claim_in_sweep(spec, kw: dict) -> bool:
    selected = {"optimizer": kw["optimizers"], "loss": kw["losses"], "dataset": kw["datasets"]}.get(spec.factor)
    return selected is None or all(side in selected for side in spec.sides)


def _plugin_grids(kind: str, table: Any, registry, selected: tuple) -> dict:
    """``{name: {param: grid}}`` of one plugin kind; ``"*"`` params must exist in a selected plugin."""
    specs_by_name = registry.kind(PLUGIN_KINDS[kind])
    generic = tuple(PREPROCESS_PARAMS) if kind == "dataset" else ()
    out = {}
    for name, settings in _table(kind, table).items():
        if name != ALL and name not in specs_by_name:
            raise UsageError(f"{kind}: {unknown(kind, name, list(specs_by_name) + [ALL])}")
        specs = [specs_by_name[n] for n in selected] if name == ALL else [specs_by_name[name]]
        grids = {}
        for pname, value in _table(f"{kind}.{name}", settings).items():
            key = f"{kind}.{pname}" if name == ALL else f"{kind}.{name}.{pname}"
            params = [p for spec in specs for p in tuple(spec.params) + generic if p.name == pname]
            if not params:
                valid = sorted({p.name for s in specs for p in s.params} | {p.name for p in generic})
                where = f" (selected {PLUGIN_KINDS[kind]}: {', '.join(s.name for s in specs)})" if name == ALL else ""
                raise UsageError(f"{key}: {unknown('hyper-parameter', pname, valid)}{where}")
            grid = _grid(key, params[0], value)
            for p in params[1:]:
                for v in grid:
                    parse_value(key, p, v)
            grids[pname] = grid
        out[name] = grids
    return out


def _check_schedules(config: SweepConfig) -> None:
    """A single schedule setting must be computable; in a grid, bad combinations are skipped."""
    combos = config.schedule_axis()
    problems = []
    for spelled, name, decay, step_every in combos:
        try:
            validate_schedule(name, 1.0, decay, step_every)   # lr > 0 is checked on its own
        except ValueError as exc:
            problems.append(f"run.schedule={spelled} with decay={decay:g}: {exc}")
    if problems and (len(combos) == 1 or len(problems) == len(combos)):
        raise UsageError(problems[0])


def _check_splits(config: SweepConfig, registry) -> None:
    """Refuse generic dataset options that leave a split part with under MIN_PER_CLASS samples of a class.

    Only datasets given such options are checked (the raw data is loaded, which
    is cheap and cached); class counts, not the seed, decide the part sizes.
    """
    generic = {p.name for p in PREPROCESS_PARAMS}
    for name in config.datasets:
        spec = registry.datasets[name]
        own = {p.name for p in spec.params}
        grids = config.param_grids("dataset", name)
        if not generic & set(grids):
            continue
        known = {k: v for k, v in grids.items() if k in generic | own}
        names = sorted(known)
        for values in itertools.product(*(known[n] for n in names)):
            point = dict(zip(names, values))
            try:
                raw = load_dataset(name, registry, **point)
                parts = split_indices(name, 0, registry, **point)
            except UsageError as exc:
                raise UsageError(f"dataset {name} with {_point(point)}: {exc}") from None
            except HarnessError:   # DatasetUnavailable or a broken plugin: the sweep reports it before writing
                continue
            val_fraction = point.get("val_fraction", PREPROCESS_PARAMS[1].default)
            y = raw.y
            for part, idx in zip(("train", "val", "test"), parts):
                if part == "val" and val_fraction == 0:
                    continue
                counts = {int(k): int((y[idx] == k).sum()) for k in set(y.tolist())}
                short = {k: c for k, c in counts.items() if c < MIN_PER_CLASS}
                if short:
                    label, count = min(short.items(), key=lambda kv: kv[1])
                    raise UsageError(
                        f"dataset {name} with {_point(point)}: the {part} part keeps {count} sample(s) of "
                        f"class {raw.class_names[label]!r}; every part needs at least {MIN_PER_CLASS} of each class "
                        "(raise max_samples or imbalance)")


def _point(point: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in point.items() if k in {p.name for p in PREPROCESS_PARAMS})
