"""Built-in datasets: the raw arrays every loader returns, their metadata and the listing."""
import json
import subprocess
import sys

import numpy as np
import pytest

from harness import cli
from harness.plugin.specs import Dataset
from harness.learning.split import describe
from harness.plugin.cache import fingerprint
from harness.plugin.loader import load_registry

REGISTRY = load_registry(autoload=False, strict=True)

# name -> (samples, features, classes)
EXPECTED = {
    "iris": (150, 4, 3),
    "wine": (178, 13, 3),
    "digits": (1797, 64, 10),
    "breast_cancer": (569, 30, 2),
    "moons": (1000, 2, 2),
    "classification10": (2000, 20, 10),
    "imbalanced": (2000, 20, 2),
    "face-vs-background": (1000, 625, 2),
}


@pytest.fixture(scope="module", autouse=True)
def _face_cache_in_tmp(tmp_path_factory):
    """Build the face set once for this module, away from the repo's datasets/ folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HARNESS_DATA_HOME", str(tmp_path_factory.mktemp("data_home")))
    yield
    mp.undo()


def test_every_builtin_is_registered():
    assert set(EXPECTED) | {"face-vs-background-lfw"} == set(REGISTRY.datasets)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_shapes_dtypes_and_labels(name):
    data = REGISTRY.dataset(name).load()
    n, d, k = EXPECTED[name]
    assert isinstance(data, Dataset)
    assert data.X.shape == (n, d) and data.X.dtype == np.float64
    assert data.y.shape == (n,) and data.y.dtype == np.int64
    assert len(data.class_names) == k
    assert np.array_equal(np.unique(data.y), np.arange(k))
    assert np.isfinite(data.X).all()
    assert data.source and len(data.fingerprint) == 16


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_is_deterministic(name):
    first, second = REGISTRY.dataset(name).load(), REGISTRY.dataset(name).load()
    assert np.array_equal(first.X, second.X) and np.array_equal(first.y, second.y)
    assert first.fingerprint == second.fingerprint


@pytest.mark.parametrize("name, loader", [("iris", "load_iris"), ("wine", "load_wine"),
                                          ("digits", "load_digits"), ("breast_cancer", "load_breast_cancer")])
def test_bundled_sets_are_scikit_learns_data(name, loader):
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, loader)()
    data = REGISTRY.dataset(name).load()
    assert np.array_equal(data.X, bunch.data) and np.array_equal(data.y, bunch.target)


def test_imbalanced_is_95_to_5():
    counts = np.bincount(REGISTRY.dataset("imbalanced").load().y)
    assert counts.tolist() == [1900, 100]


def test_synthetic_sets_follow_their_params():
    moons = REGISTRY.dataset("moons").load(n_samples=200, noise=0.0)
    assert moons.X.shape == (200, 2)
    # without noise every point lies on one of the two unit half circles
    centres = np.where(moons.y[:, None] == 0, [[0.0, 0.0]], [[1.0, 0.5]])
    assert np.allclose(np.linalg.norm(moons.X - centres, axis=1), 1.0)
    assert REGISTRY.dataset("classification10").load(n_samples=500).X.shape == (500, 20)


def test_describe_reports_size_balance_and_source():
    info = describe(REGISTRY.dataset("imbalanced").load())
    assert info["samples"] == 2000 and info["features"] == 20 and info["classes"] == 2
    assert info["class_counts"] == {"majority": 1900, "minority": 100}
    assert info["imbalance_ratio"] == pytest.approx(19.0)
    assert "make_classification" in info["source"] and info["fingerprint"]
    assert set(info) == {"samples", "features", "classes", "class_counts", "imbalance_ratio", "source",
                         "fingerprint"}


def test_fingerprint_tracks_content():
    X = np.arange(12.0).reshape(4, 3)
    y = np.array([0, 1, 0, 1])
    assert fingerprint(X, y) == fingerprint(X.copy(), y.copy())
    X2 = X.copy()
    X2[0, 0] += 1e-12
    assert fingerprint(X2, y) != fingerprint(X, y)
    assert fingerprint(X.astype(np.float32), y) != fingerprint(X, y)
    assert fingerprint(X, y, ["a", "b"]) != fingerprint(X, y, ["a", "c"])


def test_listing_datasets_imports_no_heavy_library():
    code = ("import sys, harness_plugins.datasets, harness_plugins.face_patches, harness.learning.split; "
            "print(sorted(m for m in ('sklearn', 'skimage', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_list_datasets_prints_sizes_and_the_lfw_how_to(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path))
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert cli.main(["list", "datasets"]) == 0
    out = capsys.readouterr().out
    assert "face-vs-background: " in out
    assert "1000 samples, 625 features, 2 classes (background=900, face=100); imbalance 9.0:1" in out
    assert "150 samples, 4 features, 3 classes (setosa=50, versicolor=50, virginica=50)" in out
    unavailable = [line for line in out.splitlines() if "unavailable:" in line]
    assert len(unavailable) == 1 and "fetch_lfw_people" in unavailable[0]


def test_list_datasets_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path))
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert cli.main(["list", "datasets", "--json"]) == 0
    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)["datasets"]}
    assert entries["digits"]["info"]["samples"] == 1797
    assert entries["face-vs-background-lfw"]["available"] is False
    assert [p["name"] for p in entries["moons"]["params"]] == ["n_samples", "noise"]
