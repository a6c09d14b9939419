"""The installed distribution exposes only `harness` and `harness_plugins` as import names."""
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_ships_no_generic_top_level_packages():
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    tops = {name.split(".")[0] for name in setup["packages"]}
    assert tops == {"harness", "harness_plugins"}
    assert setup["package-dir"]["harness_plugins"] == "plugins"


def test_generic_names_are_not_importable_outside_the_checkout(tmp_path):
    code = ("import importlib.util as u, harness_plugins.optimizers;"
            "print([n for n in ('plugins', 'datasets', 'reports') if u.find_spec(n)])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
