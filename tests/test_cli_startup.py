"""`harness --help`, `list` and `plugins` start fast: the heavy libraries stay off their import paths.

Speed itself is measured by benchmarks/bench_cli.py (no timed tests); these tests
check the cause instead: which modules a fresh interpreter has loaded.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.cli.main import COMMANDS, build_parser, command_in

HEAVY = ("pandas", "scipy", "numba", "matplotlib", "plotly", "sklearn", "dask", "pyarrow")


def loaded_after(code: str) -> set:
    """The top-level names of the heavy modules a fresh interpreter holds after running ``code``."""
    probe = (f"import sys\n{code}\n"
             f"import json; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_library():
    assert loaded_after("import harness.cli.main") == set()


def test_help_loads_no_heavy_library():
    code = ("from harness.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0")
    assert loaded_after(code) == set()


@pytest.mark.parametrize("argv", [["plugins"], ["list", "optimizers"], ["list", "losses"]])
def test_listing_commands_load_no_heavy_library(argv):
    # loading the plugins imports numpy, which the plugin API needs; nothing heavier
    code = ("import contextlib, io\nfrom harness.cli.main import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n    main({argv!r})")
    assert loaded_after(code) == set()


def test_command_in_finds_the_command_after_top_level_options():
    assert command_in(["--version"]) is None
    assert command_in(["--help", "run", "--lr", "0.1"]) == "run"
    assert command_in(["list", "optimizers"]) == "list"


def test_only_the_named_command_is_configured_and_every_command_is_offered():
    sub = next(a for a in build_parser(["plugins"])._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
    configured = {name for name, p in sub.choices.items() if any(a.dest == "json" for a in p._actions)}
    assert configured == {"plugins"}
    full = next(a for a in build_parser()._actions if a.dest == "command")
    assert all(len(p._actions) > 1 for p in full.choices.values())   # no argv: every command configured
