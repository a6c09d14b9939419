"""The command line: version, plugin listing, JSON output and one-line errors."""
import json
import os
import subprocess
import sys

import pytest

from harness import __version__


def run_cli(*args, env=None):
    merged = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          env=merged, timeout=300)


@pytest.mark.slow
def test_version():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"harness {__version__}"


@pytest.mark.slow
def test_help_explains_every_command():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("plugins", "list", "run", "sweep", "report"):
        assert command in out.stdout


@pytest.mark.parametrize("args, expected", [
    (("lst",), "did you mean 'list'?"),
    (("list", "optimiser"), "did you mean 'optimizers'?"),
    (("plugins", "--jsn"), "unrecognized arguments: --jsn"),
])
@pytest.mark.slow
def test_bad_usage_is_one_line_exit_2(args, expected):
    out = run_cli(*args)
    assert out.returncode == 2
    assert expected in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


@pytest.mark.slow
def test_plugins_json_shows_the_builtins():
    out = run_cli("plugins", "--json")
    assert out.returncode == 0
    doc = json.loads(out.stdout)
    builtins = {p["name"]: p for p in doc["plugins"] if p["builtin"]}
    assert set(builtins) == {"optimizers", "losses", "datasets", "claims"}
    assert all(p["distribution"] == "harness-gd" and p["version"] == __version__ for p in builtins.values())
    assert {"bgd", "point", "sgd", "minibatch", "minibatch-bn"} <= set(builtins["optimizers"]["registered"]["optimizers"])
    assert {"ce", "bce", "wce"} <= set(builtins["losses"]["registered"]["losses"])
    assert len(builtins["claims"]["registered"]["claims"]) == 11   # the lecture's claims, as plugins


@pytest.mark.slow
def test_list_optimizers_json_has_hyperparameters_and_defaults():
    out = run_cli("list", "optimizers", "--json")
    assert out.returncode == 0
    entries = {e["name"]: e for e in json.loads(out.stdout)["optimizers"]}
    assert {"bgd", "point", "sgd", "minibatch", "minibatch-bn"} <= set(entries)
    batch = {p["name"]: p for p in entries["minibatch"]["params"]}["batch_size"]
    assert batch["type"] == "int" and isinstance(batch["default"], int)
    assert all(e["description"] for e in entries.values())


@pytest.mark.slow
def test_list_datasets_shows_size_and_balance():
    out = run_cli("list", "datasets", "--json")
    assert out.returncode == 0
    entries = {e["name"]: e for e in json.loads(out.stdout)["datasets"]}
    digits = entries["digits"]["info"]
    assert (digits["samples"], digits["features"], digits["classes"]) == (1797, 64, 10)
    assert sum(digits["class_counts"].values()) == 1797


@pytest.mark.slow
def test_broken_third_party_plugin_is_listed_and_the_rest_still_work(fake_dist):
    root = fake_dist("harness-broken", "harness_broken_plugin", "import no_such_module_xyz",
                     ep_name="broken", version="0.3")
    env = {"PYTHONPATH": str(root)}
    out = run_cli("plugins", "--json", env=env)
    assert out.returncode == 1   # a failed plugin makes `plugins` exit non-zero
    doc = json.loads(out.stdout)
    assert doc["failures"] == [{"name": "broken", "distribution": "harness-broken", "version": "0.3",
                                "error": "ModuleNotFoundError: No module named 'no_such_module_xyz'",
                                "raised_in": ""}]
    assert any(p["name"] == "optimizers" for p in doc["plugins"])
    listed = run_cli("list", "losses", env=env)
    assert listed.returncode == 0 and "ce:" in listed.stdout
    assert "broken" in listed.stderr  # a warning, not a failure
    strict = run_cli("list", "losses", env=dict(env, HARNESS_STRICT_PLUGINS="1"))
    assert strict.returncode == 1 and "Traceback" not in strict.stderr
    assert "no_such_module_xyz" in strict.stderr and len(strict.stderr.strip().splitlines()) == 1
