"""The installed distribution exposes only `harness` and `harness_plugins` as import names."""
import subprocess
import sys
import tomllib

import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_ships_no_generic_top_level_packages():
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    tops = {name.split(".")[0] for name in setup["packages"]}
    assert tops == {"harness", "harness_plugins"}
    assert setup["package-dir"]["harness_plugins"] == "plugins"


@pytest.mark.slow
def test_generic_names_are_not_importable_outside_the_checkout(tmp_path):
    code = ("import importlib.util as u, harness_plugins.optimizers;"
            "print([n for n in ('plugins', 'datasets', 'reports') if u.find_spec(n)])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_building_the_package_prints_no_setuptools_warnings(tmp_path):
    # what `pip install -e .` runs under the hood; -v shows the backend's output pip would otherwise hide
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(ROOT)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    for marker in ("SetuptoolsDeprecationWarning", "is absent from the `packages` configuration",
                   "Package would be ignored"):
        assert marker not in text, marker
