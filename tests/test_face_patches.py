"""face-vs-background: counts, distinct patches, offline build, cache, and the LFW variant."""
import socket

import numpy as np
import pytest

from harness.plugin.specs import DatasetUnavailable
from harness.learning.split import split_indices
from harness.errors import UsageError
from harness.plugin.loader import load_registry
from harness_plugins import face_patches

REGISTRY = load_registry(autoload=False, strict=True)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the dataset tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def face_home(tmp_path_factory):
    """A data home holding the built face set (built once, without network)."""
    home = tmp_path_factory.mktemp("face_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("HARNESS_DATA_HOME", str(home))
    mp.setattr(socket.socket, "connect", lambda *a, **k: (_ for _ in ()).throw(AssertionError("network")))
    face_patches.load_face_vs_background()
    mp.undo()
    return home


@pytest.fixture
def data_home(face_home, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_HOME", str(face_home))
    return face_home


@pytest.mark.slow
def test_one_hundred_faces_nine_hundred_backgrounds(data_home):
    import skimage.data

    data = face_patches.load_face_vs_background()
    assert data.class_names == ("background", "face")
    assert np.bincount(data.y).tolist() == [900, 100]
    assert data.X.shape == (1000, 625) and data.X.min() >= 0.0 and data.X.max() <= 1.0
    crops = skimage.data.lfw_subset().reshape(200, -1)
    # the faces are exactly scikit-image's 100 face crops; its 100 non-faces are backgrounds
    assert np.array_equal(np.sort(data.X[data.y == 1], axis=0), np.sort(crops[:100], axis=0))
    backgrounds = {row.tobytes() for row in data.X[data.y == 0]}
    assert all(row.tobytes() in backgrounds for row in crops[100:])


def test_no_duplicate_patches(data_home):
    data = face_patches.load_face_vs_background()
    assert len({row.tobytes() for row in data.X}) == len(data.X)


def test_backgrounds_come_from_every_listed_image(data_home):
    data = face_patches.load_face_vs_background()
    cut = data.X[data.y == 0]
    assert len(cut) == 100 + face_patches.SMALL_BACKGROUNDS_PER_IMAGE * len(face_patches.IMAGES)
    names = {name for _, name in face_patches.IMAGES}
    assert not names & {"astronaut", "camera", "coins"}  # people or heads on them
    for _, name in face_patches.IMAGES:
        assert name in data.source


def test_no_test_sample_in_train(data_home):
    from harness.learning.split import load_split

    split = load_split("face-vs-background", seed=0, registry=REGISTRY)
    train, val, test = split_indices("face-vs-background", seed=0, registry=REGISTRY)
    assert not set(train) & set(test) and not set(train) & set(val) and not set(val) & set(test)
    raw = face_patches.load_face_vs_background()
    train_rows = {row.tobytes() for row in raw.X[train]}
    assert not any(row.tobytes() in train_rows for row in raw.X[test])
    assert np.bincount(split.y_test).tolist() == [225, 25]  # the 1:9 ratio holds in the test part


def test_cache_is_reused(data_home, monkeypatch):
    first = face_patches.load_face_vs_background()

    def must_not_build():
        raise AssertionError("rebuilt although the recipe did not change")

    monkeypatch.setattr(face_patches, "build_face_vs_background", must_not_build)
    again = face_patches.load_face_vs_background()
    assert again.fingerprint == first.fingerprint and np.array_equal(again.X, first.X)


@pytest.mark.slow
def test_cache_is_rebuilt_when_the_recipe_changes(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("HARNESS_DATA_HOME", str(tmp_path))
    builds = []
    real_build = face_patches.build_face_vs_background

    def counting_build():
        builds.append(1)
        return real_build()

    monkeypatch.setattr(face_patches, "build_face_vs_background", counting_build)
    first = face_patches.load_face_vs_background()
    face_patches.load_face_vs_background()
    assert len(builds) == 1
    assert (tmp_path / "face-vs-background.npz").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["face-vs-background.npz"]  # no temp file left
    monkeypatch.setattr(face_patches, "RECIPE_VERSION", face_patches.RECIPE_VERSION + 1)
    rebuilt = face_patches.load_face_vs_background()
    assert len(builds) == 2 and rebuilt.fingerprint == first.fingerprint  # same recipe output
    face_patches.load_face_vs_background()
    assert len(builds) == 2


@pytest.mark.slow
def test_a_corrupt_cache_file_is_rebuilt(tmp_path, monkeypatch, data_home):
    source = data_home / "face-vs-background.npz"
    monkeypatch.setenv("HARNESS_DATA_HOME", str(tmp_path))
    (tmp_path / "face-vs-background.npz").write_bytes(source.read_bytes()[:1000])
    data = face_patches.load_face_vs_background()
    assert np.bincount(data.y).tolist() == [900, 100]
    with np.load(tmp_path / "face-vs-background.npz") as f:
        assert f["X"].shape == (1000, 625)


def test_an_unusable_data_home_still_gives_the_data(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("HARNESS_DATA_HOME", str(blocker / "home"))
    tiny = face_patches._assemble(np.zeros((1, 25, 25)), np.ones((9, 25, 25)), "tiny")
    monkeypatch.setattr(face_patches, "build_face_vs_background", lambda: tiny)
    assert face_patches.load_face_vs_background() is tiny


def test_data_home_prefers_the_environment(tmp_path, monkeypatch):
    from harness.plugin.cache import data_home

    monkeypatch.setenv("HARNESS_DATA_HOME", str(tmp_path / "x"))
    assert data_home() == tmp_path / "x" and (tmp_path / "x").is_dir()


def test_data_home_falls_back_to_the_checkout_then_the_user_cache(tmp_path, monkeypatch):
    from pathlib import Path

    import harness
    from harness.plugin.cache import data_home

    monkeypatch.delenv("HARNESS_DATA_HOME", raising=False)
    checkout = Path(harness.__file__).resolve().parents[1] / "datasets"
    if checkout.is_dir():
        assert data_home() == checkout
    fake_package = tmp_path / "site" / "harness" / "__init__.py"  # an install without datasets/
    monkeypatch.setattr(harness, "__file__", str(fake_package))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert data_home() == tmp_path / "user" / ".cache" / "harness" / "datasets"


def test_spread_order_and_allocate():
    order = face_patches.spread_order(10, 3)
    assert sorted(order.tolist()) == list(range(10)) and order[:3].tolist() == [0, 5, 9]
    assert face_patches.allocate(10, [2, 100, 100]) == [2, 4, 4]
    with pytest.raises(ValueError):
        face_patches.allocate(10, [2, 3])


# --------------------------------------------------------------------------- the LFW variant
def test_lfw_variant_without_data_gives_a_one_line_how_to(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path))
    with pytest.raises(DatasetUnavailable) as err:
        REGISTRY.dataset("face-vs-background-lfw").load()
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "lfw_home") in message and "fetch_lfw_people" in message
    assert list(tmp_path.iterdir()) == []  # nothing created, nothing downloaded


def _fake_lfw(root, people=4, per_person=5):
    """A miniature LFW tree in scikit-learn's layout, with random 250x250 JPEGs."""
    from PIL import Image

    home = root / "lfw_home"
    (home / "lfw_funneled").mkdir(parents=True)
    for name in face_patches.LFW_FILES:
        (home / name).write_text("")
    rng = np.random.default_rng(0)
    for p in range(people):
        person = home / "lfw_funneled" / f"Person_{p}"
        person.mkdir()
        for i in range(per_person):
            pixels = rng.integers(0, 256, size=(250, 250, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(person / f"Person_{p}_{i + 1:04d}.jpg")
    return home


def test_lfw_variant_with_data_keeps_the_one_to_nine_ratio(tmp_path, monkeypatch, no_network):
    _fake_lfw(tmp_path / "sk")
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "sk"))
    monkeypatch.setenv("HARNESS_DATA_HOME", str(tmp_path / "home"))
    data = REGISTRY.dataset("face-vs-background-lfw").load(faces=12)
    assert np.bincount(data.y).tolist() == [108, 12]
    assert data.X.shape == (120, 625) and 0.0 <= data.X.min() and data.X.max() <= 1.0
    assert len({row.tobytes() for row in data.X}) == 120
    assert (tmp_path / "home" / "face-vs-background-lfw-12.npz").is_file()
    monkeypatch.setattr(face_patches, "build_face_vs_background_lfw",
                        lambda *a: (_ for _ in ()).throw(AssertionError("rebuilt")))
    assert REGISTRY.dataset("face-vs-background-lfw").load(faces=12).fingerprint == data.fingerprint


def test_lfw_variant_asking_for_more_faces_than_exist(tmp_path, monkeypatch):
    _fake_lfw(tmp_path / "sk", people=2, per_person=5)
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "sk"))
    monkeypatch.setenv("HARNESS_DATA_HOME", str(tmp_path / "home"))
    with pytest.raises(UsageError, match="only 10 distinct LFW faces"):
        REGISTRY.dataset("face-vs-background-lfw").load(faces=11)
