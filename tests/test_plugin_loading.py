"""Load-time faults of issue 12, each reproduced with a real plugin behind a fake entry point.

The promise: no plugin ends the process or corrupts stdout; a fault is charged
to the plugin (and the distribution) that caused it; `harness plugins` says so
with exit status 1; strict mode makes it fatal.
"""
import json
import subprocess
import sys

import pytest

from harness.cli.main import main
from harness.errors import PluginError
from harness.plugin.loader import load_registry

GOOD = """
from harness.plugin import OptimizerSpec, hookimpl

class Plain:
    def batches(self, n, rng):
        yield rng.permutation(n)
    def step(self, params, grads, lr):
        for p, g in zip(params, grads):
            p -= lr * g

@hookimpl
def register_optimizers(register):
    register(OptimizerSpec("good-opt", "a test optimizer", Plain))
"""


def _failure(reg, name):
    return next(f for f in reg.failures if f.name == name)


@pytest.mark.parametrize("statement, error", [
    ("import sys; sys.exit(5)", "SystemExit: 5"),
    ("raise KeyboardInterrupt", "KeyboardInterrupt"),
])
@pytest.mark.slow
def test_exit_or_interrupt_at_import_is_a_failed_plugin_not_the_end(fake_dist, statement, error):
    fake_dist("harness-good", "harness_good_plugin", GOOD)
    fake_dist("harness-quitter", "harness_quitter_plugin", statement)
    reg = load_registry(strict=False, autoload=True)
    assert _failure(reg, "harness_quitter_plugin").error == error
    assert "good-opt" in reg.optimizers and "sgd" in reg.optimizers


@pytest.mark.slow
def test_exit_inside_a_hook_is_a_failed_plugin(fake_dist):
    fake_dist("harness-quitter", "harness_quitter_plugin", """
        import sys
        from harness.plugin import hookimpl

        @hookimpl
        def register_losses(register):
            sys.exit(3)
    """)
    reg = load_registry(strict=False, autoload=True)
    assert _failure(reg, "harness_quitter_plugin").error == "SystemExit: 3"
    assert all(p.name != "harness_quitter_plugin" for p in reg.plugins)


def test_print_at_import_goes_to_stderr_and_plugins_json_still_parses(fake_dist, capsys):
    fake_dist("harness-chatty", "harness_chatty_plugin", "print('hello from import')\n" + GOOD)
    assert main(["plugins", "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert any(p["name"] == "harness_chatty_plugin" for p in doc["plugins"])
    assert "hello from import" in err and "hello" not in out


def test_a_hook_function_without_the_marker_is_warned_about_not_failed(fake_dist, capsys):
    fake_dist("harness-unmarked", "harness_unmarked_plugin", GOOD + """
def register_losses(register):
    raise AssertionError("never called: pluggy ignores unmarked functions")
""")
    reg = load_registry(strict=False, autoload=True)
    assert not reg.failures and "good-opt" in reg.optimizers
    (warning,) = reg.warnings
    assert "harness_unmarked_plugin" in warning and "'register_losses' lacks @hookimpl" in warning
    assert main(["plugins"]) == 0
    assert "register_losses" in capsys.readouterr().err
    with pytest.raises(PluginError, match="lacks @hookimpl"):
        load_registry(strict=True, autoload=True)


@pytest.mark.slow
def test_plugins_exits_1_when_a_plugin_failed_and_lists_it(fake_dist, capsys):
    fake_dist("harness-broken", "harness_broken_plugin", "raise RuntimeError('boom at import')", ep_name="broken")
    assert main(["plugins"]) == 1
    out, err = capsys.readouterr()
    assert "FAILED broken  (harness-broken 1.0): RuntimeError: boom at import" in out
    assert "--traceback" in err and "Traceback (most recent call last)" not in err
    assert main(["plugins", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [f["name"] for f in doc["failures"]] == ["broken"] and "traceback" not in doc["failures"][0]


@pytest.mark.slow
def test_traceback_flag_and_harness_debug_show_the_full_traceback(fake_dist, capsys, monkeypatch):
    fake_dist("harness-broken", "harness_broken_plugin", """
        def helper():
            raise RuntimeError('boom at import')
        helper()
    """, ep_name="broken")
    assert main(["plugins", "--traceback"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in helper" in err
    monkeypatch.setenv("HARNESS_DEBUG", "1")
    assert main(["plugins", "--json"]) == 1
    (failure,) = json.loads(capsys.readouterr().out)["failures"]
    assert "in helper" in failure["traceback"]


@pytest.mark.slow
def test_debug_traceback_in_strict_mode_goes_to_stderr(fake_dist, capsys, monkeypatch):
    fake_dist("harness-broken", "harness_broken_plugin", "raise RuntimeError('boom at import')", ep_name="broken")
    monkeypatch.setenv("HARNESS_DEBUG", "1")
    with pytest.raises(PluginError, match="boom at import"):
        load_registry(strict=True, autoload=True)
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_an_error_inside_an_imported_package_names_the_plugin_and_the_right_distribution(fake_dist):
    root = fake_dist("harness-victim", "harness_victim_plugin", "import shaky_dep\n" + GOOD)
    dep = root / "shaky_dep"
    dep.mkdir()
    (dep / "__init__.py").write_text("from shaky_dep import core\n")
    (dep / "core.py").write_text("import numpy\nraise ImportError('shaky_dep needs libfoo 2')\n")
    info = root / "shaky_dep-3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shaky-dep\nVersion: 3.1\n")
    (info / "top_level.txt").write_text("shaky_dep\n")
    reg = load_registry(strict=False, autoload=True)
    failure = _failure(reg, "harness_victim_plugin")
    assert failure.error == "ImportError: shaky_dep needs libfoo 2"
    assert failure.raised_in == "module 'shaky_dep.core' of shaky-dep 3.1"
    assert str(failure).startswith("plugin 'harness_victim_plugin' (harness-victim 1.0) failed: ImportError")
    assert str(failure).endswith("(raised in module 'shaky_dep.core' of shaky-dep 3.1)")


def test_an_error_in_the_plugins_own_helper_module_is_not_blamed_elsewhere(fake_dist):
    root = fake_dist("harness-own", "harness_own_plugin", "import harness_own_helpers\n" + GOOD)
    (root / "harness_own_helpers.py").write_text("raise ValueError('bad helper')\n")
    reg = load_registry(strict=False, autoload=True)
    failure = _failure(reg, "harness_own_plugin")
    assert failure.error == "ValueError: bad helper" and failure.raised_in == "module 'harness_own_helpers'"


@pytest.mark.slow
def test_a_printing_plugin_keeps_plugins_json_valid_in_a_real_process(tmp_path):
    """The same promise end to end, with print() at import in a subprocess: stdout is pure JSON."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "harness_loud_plugin.py").write_text("print('LOUD'); import sys; sys.stdout.write('x')\n" + GOOD)
    info = site / "harness_loud-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-loud\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[harness.plugins]\nloud = harness_loud_plugin\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-m", "harness", "plugins", "--json"], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    assert any(p["name"] == "loud" for p in json.loads(proc.stdout)["plugins"])
    assert "LOUD" in proc.stderr
