"""Python values -> the settings grammar of ``harness run`` and ``harness sweep``.

The API builds its runs and sweeps through the same parser and validation as
the command line (``harness.sweep.config``); this module only spells Python
values the way the command line writes them: ``(64, 32)`` is ``64x32``, ``()``
is ``none``, ``True`` is ``true`` and a list is a comma-separated grid.
"""
from __future__ import annotations

from typing import Any, Mapping

from harness.errors import UsageError, unknown
from harness.learning.runconfig import RUN

# top-level keys of a sweep that take a plain value or list, not a setting spelling
SWEEP_KEYS = ("name", "out", "datasets", "losses", "optimizers", "seeds", "jobs", "backend", "scheduler",
              "timeout")
TABLES = ("run", "tune", "optimizer", "loss", "dataset")


def _one(value: Any) -> str:
    if hasattr(value, "item") and not isinstance(value, (list, tuple)):
        value = value.item()   # numpy scalars
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _architecture(value: Any) -> str:
    """``(64, 32)`` -> ``64x32``, ``()`` -> ``none``; a string is taken as written."""
    if isinstance(value, (list, tuple)):
        return "x".join(str(int(w)) for w in value) if value else "none"
    return _one(value)


def spell(key: str, value: Any) -> str:
    """The command-line text of ``value`` for setting ``key`` (a list is a grid)."""
    if value is None:
        raise UsageError(f"{key}: None is not a setting; leave the key out for its default")
    if key.split(".")[-1] == "hidden":
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, (list, tuple)) for v in value):
            return ",".join(_architecture(v) for v in value)   # [[64], [64, 32]]: a grid
        return _architecture(value)                            # [64, 32]: one architecture
    if isinstance(value, (list, tuple)):
        return ",".join(_one(v) for v in value)
    return _one(value)


def _flatten(prefix: str, value: Any, out: dict) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, out)
    else:
        out[prefix] = value


def to_sets(settings: Mapping[str, Any], *, sweep: bool) -> list:
    """``KEY=VALUE`` items, exactly as ``--set`` takes them, from keyword settings.

    A dotted key (``"optimizer.batch_size"``) or a table (``tune={"seeds": [0, 1]}``)
    is taken key by key; an engine setting (``epochs``) means ``run.epochs``;
    with ``sweep``, the top-level keys (``datasets``, ``seeds``, ``out``, ...) too.
    Going through ``--set`` keeps one grammar, and the manifest records a command
    that reruns the same sweep.
    """
    flat: dict = {}
    for key, value in settings.items():
        if "." in key or key in TABLES:
            _flatten(key, value, flat)
        elif key in RUN:
            flat[f"run.{key}"] = value
        elif sweep and key in SWEEP_KEYS:
            flat[key] = value
        else:
            raise unknown("setting", key, list(RUN) + (list(SWEEP_KEYS + TABLES) if sweep else []))
    return [f"{key}={spell(key, value)}" for key, value in flat.items()]
