"""Shared fixtures: a fresh random generator per test, fake plugin distributions on a temporary sys.path entry."""
import textwrap

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A generator of its own for each test, so no test depends on which tests ran before it."""
    return np.random.default_rng(20261128)


@pytest.fixture
def fake_dist(tmp_path, monkeypatch):
    """Install a fake distribution exposing one ``harness.plugins`` entry point.

    ``fake_dist(dist, module, code, ep_name=None, version="1.0")`` writes the module
    and its ``.dist-info`` (METADATA + entry_points.txt) under a temporary folder
    on sys.path, exactly what pip would leave, and returns that folder.
    """
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))

    def make(dist, module, code, ep_name=None, version="1.0"):
        (root / f"{module}.py").write_text(textwrap.dedent(code))
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[harness.plugins]\n{ep_name or module} = {module}\n")
        return root

    return make
