"""Load every plugin through one path: the ``harness.plugins`` entry-point group.

Built-ins (``harness_plugins.*``) are declared under that group in our own
pyproject exactly as third-party packages declare theirs. Each call to
:func:`load_registry` builds a fresh ``pluggy.PluginManager`` (pytest's way),
so nothing is global and tests stay isolated.

Rules (docs/plugins.md):

* a plugin that fails to import, whose hook raises, or that registers a bad
  spec is recorded in ``Registry.failures`` and the rest still load;
  ``HARNESS_STRICT_PLUGINS=1`` makes any such failure fatal;
* a hook implementation whose name matches no spec is such a failure too
  (``check_pending``), with a close-match hint;
* two plugins registering the same name is always an error naming both;
* ``HARNESS_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the built-ins.
"""
from __future__ import annotations

import difflib
import os
import traceback
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pluggy

from harness.plugin import hookspecs
from harness.plugin.specs import DatasetSpec, LossSpec, OptimizerSpec
from harness.errors import PluginError, unknown

GROUP = "harness.plugins"
DISTRIBUTION = "harness-gd"
KINDS = {"optimizers": OptimizerSpec, "losses": LossSpec, "datasets": DatasetSpec}
SINGULAR = {"optimizers": "optimizer", "losses": "loss", "datasets": "dataset"}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _last_line(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    text = "".join(lines).strip().splitlines()
    return text[-1] if text else type(exc).__name__


@dataclass
class PluginInfo:
    """One loaded plugin: entry-point name, where it comes from, what it registered."""

    name: str
    module: str
    distribution: str
    version: str
    builtin: bool
    registered: dict = field(default_factory=lambda: {k: [] for k in KINDS})

    def to_dict(self) -> dict:
        return {"name": self.name, "module": self.module, "distribution": self.distribution,
                "version": self.version, "builtin": self.builtin, "registered": self.registered}


@dataclass
class LoadFailure:
    """A plugin that could not be used, and why (the error's last line)."""

    name: str
    distribution: str
    version: str
    error: str

    def __str__(self) -> str:
        return f"plugin {self.name!r} ({self.distribution} {self.version}) failed: {self.error}"

    def to_dict(self) -> dict:
        return {"name": self.name, "distribution": self.distribution, "version": self.version,
                "error": self.error}


@dataclass
class Registry:
    """Everything the plugins registered, by kind and name."""

    optimizers: dict = field(default_factory=dict)
    losses: dict = field(default_factory=dict)
    datasets: dict = field(default_factory=dict)
    plugins: list = field(default_factory=list)
    failures: list = field(default_factory=list)

    def kind(self, kind: str) -> dict:
        if kind not in KINDS:
            raise unknown("kind", kind, KINDS)
        return getattr(self, kind)

    def get(self, kind: str, name: str):
        """The spec registered under ``name``; a UsageError with suggestions otherwise."""
        table = self.kind(kind)
        if name not in table:
            raise unknown(SINGULAR[kind], name, table)
        return table[name]

    def optimizer(self, name: str) -> OptimizerSpec:
        return self.get("optimizers", name)

    def loss(self, name: str) -> LossSpec:
        return self.get("losses", name)

    def dataset(self, name: str) -> DatasetSpec:
        return self.get("datasets", name)


def _entry_points(autoload: bool):
    eps = sorted(entry_points(group=GROUP), key=lambda ep: (ep.dist.name != DISTRIBUTION if ep.dist else True, ep.name))
    for ep in eps:
        dist = ep.dist.name if ep.dist else "?"
        if not autoload and dist != DISTRIBUTION:
            continue
        yield ep, dist, (ep.dist.version if ep.dist else "?")


def _pending_error(pm: pluggy.PluginManager, plugin) -> str | None:
    """The misspelt hook names of ``plugin``, with a suggestion, or None."""
    specs = [name for name in dir(hookspecs) if name.startswith("register_")]
    bad = []
    for caller_name, caller in vars(pm.hook).items():
        if not isinstance(caller, pluggy.HookCaller) or caller.spec is not None:
            continue
        if any(impl.plugin is plugin for impl in caller.get_hookimpls()):
            close = difflib.get_close_matches(caller_name, specs, n=1)
            bad.append(f"hook {caller_name!r} matches no hook spec"
                       + (f" (did you mean {close[0]!r}?)" if close else ""))
    return "; ".join(bad) or None


def load_registry(*, strict: bool | None = None, autoload: bool | None = None) -> Registry:
    """Build a fresh plugin manager, load every plugin and collect what they register."""
    strict = _env_flag("HARNESS_STRICT_PLUGINS") if strict is None else strict
    autoload = (not _env_flag("HARNESS_DISABLE_PLUGIN_AUTOLOAD")) if autoload is None else autoload
    pm = pluggy.PluginManager("harness")
    pm.add_hookspecs(hookspecs)
    reg = Registry()

    def fail(name, dist, version, error):
        failure = LoadFailure(name, dist, version, error)
        if strict:
            raise PluginError(f"{failure} (HARNESS_STRICT_PLUGINS=1)")
        reg.failures.append(failure)

    loaded = []
    for ep, dist, version in _entry_points(autoload):
        try:
            obj = ep.load()
            pm.register(obj, name=ep.name)
        except Exception as exc:  # a broken plugin must not stop the rest
            fail(ep.name, dist, version, _last_line(exc))
            continue
        problem = _pending_error(pm, obj)
        if problem:
            pm.unregister(obj)
            fail(ep.name, dist, version, problem)
            continue
        info = PluginInfo(ep.name, getattr(obj, "__name__", repr(obj)), dist, version,
                          builtin=dist == DISTRIBUTION)
        loaded.append((obj, info))

    owners: dict = {}
    for obj, info in loaded:
        staged = {k: {} for k in KINDS}
        try:
            for kind, spec_type in KINDS.items():
                hook = getattr(pm.hook, f"register_{kind}")
                for impl in hook.get_hookimpls():
                    if impl.plugin is not obj:
                        continue
                    impl.function(register=_collector(kind, spec_type, staged[kind], info.name))
        except PluginError:
            raise
        except Exception as exc:
            fail(info.name, info.distribution, info.version, _last_line(exc))
            continue
        for kind, specs in staged.items():
            table = reg.kind(kind)
            for name, spec in specs.items():
                if name in table:
                    first = owners[(kind, name)]
                    raise PluginError(
                        f"{SINGULAR[kind]} {name!r} is registered twice: by plugin {first.name!r} "
                        f"({first.distribution}) and by plugin {info.name!r} ({info.distribution})")
                table[name] = spec
                owners[(kind, name)] = info
                info.registered[kind].append(name)
        reg.plugins.append(info)
    return reg


def _collector(kind: str, spec_type: type, into: dict, plugin: str):
    def register(spec):
        if not isinstance(spec, spec_type):
            raise TypeError(f"register_{kind} expects {spec_type.__name__}, got {type(spec).__name__}")
        if not isinstance(spec.name, str) or not spec.name or spec.name != spec.name.strip() or " " in spec.name:
            raise ValueError(f"{spec_type.__name__} name must be a non-empty word, got {spec.name!r}")
        if not isinstance(spec.description, str) or "\n" in spec.description.strip():
            raise ValueError(f"{kind[:-1]} {spec.name!r}: description must be one line")
        if spec.name in into:
            raise PluginError(f"{SINGULAR[kind]} {spec.name!r} is registered twice by plugin {plugin!r}")
        into[spec.name] = spec

    return register
