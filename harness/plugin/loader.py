"""Load every plugin through one path: the ``harness.plugins`` entry-point group.

Built-ins (``harness_plugins.*``) are declared under that group in our own
pyproject exactly as third-party packages declare theirs. Each call to
:func:`load_registry` builds a fresh ``pluggy.PluginManager`` (pytest's way),
so nothing is global and tests stay isolated.

Plugins are taken one at a time (built-ins first, then by entry-point name):
import, ``pm.register``, ``pm.check_pending`` (misspelt hook names), then each
hook called through pluggy for that plugin alone (``pm.subset_hook_caller``),
so every fault is charged to the plugin that caused it. Rules
(docs/plugins.md, "How loading behaves"):

* a plugin that fails to import (``SystemExit`` and ``KeyboardInterrupt``
  included), whose hook raises, that registers a bad spec, or that registers
  a name an earlier plugin took is recorded in ``Registry.failures`` with none
  of its specs used, and the rest still load; ``HARNESS_STRICT_PLUGINS=1``
  makes any such failure fatal;
* a function named like a hook but lacking ``@hookimpl`` is ignored with a
  warning (``Registry.warnings``), fatal in strict mode;
* anything a plugin prints while loading goes to stderr, never stdout;
* ``HARNESS_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the built-ins.
"""
from __future__ import annotations

import contextlib
import difflib
import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable, Iterator, Optional

import pluggy

from harness.errors import PluginError, unknown
from harness.plugin import hookspecs
from harness.plugin.faults import full_traceback, last_line, origin
from harness.plugin.specs import SINGULAR, SPEC_TYPES, DatasetSpec, LossSpec, OptimizerSpec

__all__ = ["GROUP", "DISTRIBUTION", "KINDS", "PluginInfo", "LoadFailure", "Registry", "load_registry", "env_flag"]

GROUP = "harness.plugins"
DISTRIBUTION = "harness-gd"
KINDS = SPEC_TYPES
"""Plural kind name -> spec type (``optimizers``, ``losses``, ``datasets``)."""

# What a plugin may raise and still be only "a failed plugin": ordinary errors, plus
# sys.exit() and KeyboardInterrupt raised by plugin code (issue 12: they must not end harness).
PLUGIN_FAULTS = (Exception, SystemExit, KeyboardInterrupt)


def env_flag(name: str) -> bool:
    """True when the environment variable ``name`` is 1/true/yes/on."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


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
    """A plugin that could not be used: why (one line), where it was raised, the full traceback."""

    name: str
    distribution: str
    version: str
    error: str
    raised_in: str = ""
    traceback: str = ""

    def __str__(self) -> str:
        where = f" (raised in {self.raised_in})" if self.raised_in else ""
        return f"plugin {self.name!r} ({self.distribution} {self.version}) failed: {self.error}{where}"

    def to_dict(self, traceback: bool = False) -> dict:
        """Plain JSON fields; the full traceback only when asked (it is long and holds local paths)."""
        d = {"name": self.name, "distribution": self.distribution, "version": self.version,
             "error": self.error, "raised_in": self.raised_in}
        if traceback:
            d["traceback"] = self.traceback
        return d


@dataclass
class Registry:
    """Everything the plugins registered, by kind and name, and what went wrong loading them."""

    optimizers: dict = field(default_factory=dict)
    losses: dict = field(default_factory=dict)
    datasets: dict = field(default_factory=dict)
    claims: dict = field(default_factory=dict)
    plugins: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    def kind(self, kind: str) -> dict:
        if kind not in KINDS:
            raise unknown("kind", kind, KINDS)
        return getattr(self, kind)

    def get(self, kind: str, name: str) -> Any:
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


class _Rejected(Exception):
    """A plugin is unusable for a reason found by the loader itself (not raised by plugin code)."""


def _entry_points(autoload: bool) -> Iterator[tuple[EntryPoint, str, str]]:
    eps = sorted(entry_points(group=GROUP), key=lambda ep: (ep.dist.name != DISTRIBUTION if ep.dist else True, ep.name))
    for ep in eps:
        dist = ep.dist.name if ep.dist else "?"
        if not autoload and dist != DISTRIBUTION:
            continue
        yield ep, dist, (ep.dist.version if ep.dist else "?")


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> str:
    """The plugin's hook names that match no spec, each with a close-match suggestion."""
    bad = []
    for caller in pm.get_hookcallers(plugin) or ():
        if caller.has_spec():
            continue
        close = difflib.get_close_matches(caller.name, hookspecs.HOOK_NAMES, n=1)
        bad.append(f"hook {caller.name!r} matches no hook spec" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return "; ".join(bad)


def _unmarked_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Functions named like a hook spec that lack ``@hookimpl`` (pluggy ignores them)."""
    return [name for name in hookspecs.HOOK_NAMES
            if callable(getattr(plugin, name, None)) and pm.parse_hookimpl_opts(plugin, name) is None]


def _collector(kind: str, into: dict, plugin: str) -> Callable[[Any], None]:
    """The ``register`` callback one plugin's ``register_<kind>`` hook receives."""
    spec_type = KINDS[kind]

    def register(spec: Any) -> None:
        if not isinstance(spec, spec_type):
            raise _Rejected(f"register_{kind} expects {spec_type.__name__}, got {type(spec).__name__}")
        if not isinstance(spec.name, str) or not spec.name or spec.name != spec.name.strip() or " " in spec.name:
            raise _Rejected(f"{spec_type.__name__} name must be a non-empty word, got {spec.name!r}")
        if not isinstance(spec.description, str) or "\n" in spec.description.strip():
            raise _Rejected(f"{SINGULAR[kind]} {spec.name!r}: description must be one line")
        if spec.name in into:
            raise _Rejected(f"{SINGULAR[kind]} {spec.name!r} is registered twice by plugin {plugin!r}")
        into[spec.name] = spec

    return register


def _call_hooks(pm: pluggy.PluginManager, plugin: object, name: str) -> dict[str, dict]:
    """Call every hook of ``plugin`` alone, through pluggy; what it registered, by kind."""
    others = [p for p in pm.get_plugins() if p is not plugin]
    staged: dict[str, dict] = {kind: {} for kind in KINDS}
    for kind in KINDS:
        caller = pm.subset_hook_caller(f"register_{kind}", remove_plugins=others)
        caller(register=_collector(kind, staged[kind], name))
    return staged


def load_registry(*, strict: Optional[bool] = None, autoload: Optional[bool] = None) -> Registry:
    """Build a fresh plugin manager, load every plugin and collect what they register."""
    strict = env_flag("HARNESS_STRICT_PLUGINS") if strict is None else strict
    autoload = (not env_flag("HARNESS_DISABLE_PLUGIN_AUTOLOAD")) if autoload is None else autoload
    pm = pluggy.PluginManager("harness")
    pm.add_hookspecs(hookspecs)
    reg = Registry()
    owners: dict[tuple[str, str], PluginInfo] = {}

    def fail(ep: EntryPoint, dist: str, version: str, exc: BaseException, message: str = "") -> None:
        failure = LoadFailure(ep.name, dist, version, message or last_line(exc), traceback=full_traceback(exc))
        if not message:
            module, owner = origin(exc)
            if module and module != ep.module:
                failure.raised_in = f"module {module!r}" + (f" of {owner}" if owner and owner.split()[0] != dist else "")
        if strict:
            if env_flag("HARNESS_DEBUG"):
                print(failure.traceback, file=sys.stderr)
            raise PluginError(f"{failure} (HARNESS_STRICT_PLUGINS=1)") from exc
        reg.failures.append(failure)

    # A plugin's print() at import or in a hook must not corrupt `harness plugins --json`.
    with contextlib.redirect_stdout(sys.stderr):
        for ep, dist, version in _entry_points(autoload):
            try:
                obj = ep.load()
                pm.register(obj, name=ep.name)
            except PLUGIN_FAULTS as exc:
                fail(ep, dist, version, exc)
                continue
            try:
                pm.check_pending()
            except pluggy.PluginValidationError as exc:
                problem = _unknown_hooks(pm, obj) or last_line(exc)
                pm.unregister(obj)
                fail(ep, dist, version, exc, problem)
                continue
            for hook in _unmarked_hooks(pm, obj):
                warning = (f"plugin {ep.name!r} ({dist} {version}): function {hook!r} lacks @hookimpl "
                           f"and is ignored (decorate it with harness.plugin.hookimpl)")
                if strict:
                    raise PluginError(f"{warning} (HARNESS_STRICT_PLUGINS=1)")
                reg.warnings.append(warning)
            info = PluginInfo(ep.name, getattr(obj, "__name__", repr(obj)), dist, version, builtin=dist == DISTRIBUTION)
            try:
                staged = _call_hooks(pm, obj, ep.name)
                for kind, specs in staged.items():
                    for spec_name in specs:
                        first = owners.get((kind, spec_name))
                        if first is not None:
                            raise _Rejected(
                                f"{SINGULAR[kind]} {spec_name!r} is already registered by plugin {first.name!r} "
                                f"({first.distribution}); plugin {info.name!r} ({info.distribution}) is not used")
            except _Rejected as exc:
                pm.unregister(obj)
                fail(ep, dist, version, exc, str(exc))
                continue
            except PLUGIN_FAULTS as exc:
                pm.unregister(obj)
                fail(ep, dist, version, exc)
                continue
            for kind, specs in staged.items():
                for spec_name, spec in specs.items():
                    reg.kind(kind)[spec_name] = spec
                    owners[(kind, spec_name)] = info
                    info.registered[kind].append(spec_name)
            reg.plugins.append(info)
    return reg
