"""Write a plain dict as TOML text, so a sweep given as a dict takes the path a TOML file takes.

Only what a sweep config holds: tables, strings, numbers, booleans and
(nested) lists. ``harness.sweep.config.load_config`` reads files; writing the
dict out once keeps a single reader and a single validation for both.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import PurePath
from typing import Any, Mapping

from harness.errors import UsageError

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: Any) -> str:
    text = str(key)
    return text if _BARE_KEY.match(text) else json.dumps(text)   # a JSON string is a TOML basic string


def _value(path: str, value: Any) -> str:
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        value = value.item()   # numpy scalars
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (str, PurePath)):
        return json.dumps(str(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(path, v) for v in value) + "]"
    if value is None:
        raise UsageError(f"{path}: None is not a setting; leave the key out for its default")
    raise UsageError(f"{path}: cannot write {type(value).__name__} {value!r} as a setting "
                     "(use strings, numbers, booleans, lists and dicts)")


def dumps(table: Mapping[str, Any]) -> str:
    """TOML text for ``table``: its plain keys first, then one ``[section]`` per nested dict."""
    lines: list = []
    _table(table, (), lines)
    return "\n".join(lines) + "\n"


def _table(table: Mapping[str, Any], prefix: tuple, lines: list) -> None:
    nested = []
    for key, value in table.items():
        if isinstance(value, Mapping):
            nested.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value('.'.join(map(str, prefix + (key,))), value)}")
    for key, value in nested:
        header = ".".join(_key(k) for k in prefix + (key,))
        lines.append(f"\n[{header}]")
        _table(value, prefix + (key,), lines)
