"""Face-vs-background: the lecture's 1:9 imbalanced face detection set, built offline.

``face-vs-background`` (embedded, always available): the 100 face crops that
scikit-image ships (``skimage.data.lfw_subset()``: 25x25 grey crops from LFW,
first 100 faces, last 100 non-faces) against 900 background patches: the 100
non-face crops plus 800 windows cut on a fixed grid from eight natural images
shipped inside scikit-image and scikit-learn that show no human face. Each
window is converted to grey in [0, 1] and resized to 25x25, like the LFW
crops. 100 faces : 900 backgrounds is the lecture's 100K : 900K ratio.

``face-vs-background-lfw`` (large, optional): faces from scikit-learn's
``fetch_lfw_people`` (only if already in scikit-learn's data home; it never
downloads) against nine times as many background patches from a denser grid.

Both are built once and cached as a compressed .npz under
``harness.plugin.data_home()``, stamped with a fingerprint of the recipe (recipe
version, images, grid, library versions): a changed recipe rebuilds the file.
"""
from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from harness.errors import UsageError
from harness.plugin import Dataset, DatasetSpec, DatasetUnavailable, Param, atomic_save_npz, data_home, fingerprint

RECIPE_VERSION = 1
"""Bump when the recipe changes in a way the fingerprint cannot see."""

PATCH = 25
"""Side of every patch, the size of scikit-image's LFW crops."""

CLASS_NAMES = ("background", "face")  # label 0, label 1 (the rare, positive class)
BACKGROUND_PER_FACE = 9

# Natural images that ship with the libraries (no download) and show no human
# face. Left out on purpose: astronaut and camera (people), coins (heads on the
# coins), moon and page (no licence stated in their docstrings), hubble (mostly
# black sky: near-constant patches).
IMAGES = (
    ("skimage", "brick"),      # CC0
    ("skimage", "grass"),      # CC0
    ("skimage", "gravel"),     # CC0
    ("skimage", "coffee"),     # CC0
    ("skimage", "chelsea"),    # CC0, a cat
    ("skimage", "rocket"),     # public domain (SpaceX)
    ("sklearn", "china.jpg"),  # CC BY 2.0, a temple
    ("sklearn", "flower.jpg"),  # CC BY 2.0
)

# (window side, stride) in source pixels; each window is resized to PATCH x PATCH.
SMALL_GRID = ((32, 32), (64, 64), (128, 128))
LARGE_GRID = ((24, 6), (32, 8), (48, 12), (64, 16), (96, 24), (128, 32), (192, 48))

SMALL_BACKGROUNDS_PER_IMAGE = 100
LFW_SLICE = ((70, 195), (62, 187))  # a centred 125x125 square of the 250x250 LFW photos
LFW_RESIZE = PATCH / 125
LFW_FILES = ("pairsDevTrain.txt", "pairsDevTest.txt", "pairs.txt")
LFW_HOW_TO = ('on a machine with internet run `python -c "from sklearn.datasets import fetch_lfw_people; '
              'fetch_lfw_people()"` and copy its scikit_learn_data/lfw_home here '
              '(or point SCIKIT_LEARN_DATA at a folder that holds lfw_home)')


# --------------------------------------------------------------------------- images and patches
def load_grey_image(library: str, name: str) -> np.ndarray:
    """One shipped image as a 2-D float64 array in [0, 1] (no network)."""
    from skimage.color import rgb2gray, rgba2rgb
    from skimage.util import img_as_float

    if library == "skimage":
        import skimage.data

        image = getattr(skimage.data, name)()
    elif library == "sklearn":
        from sklearn.datasets import load_sample_image

        image = load_sample_image(name)
    else:
        raise ValueError(f"unknown image library {library!r}")
    image = img_as_float(image)
    if image.ndim == 3 and image.shape[2] == 4:
        image = rgba2rgb(image)
    if image.ndim == 3:
        image = rgb2gray(image)
    return np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)


def grid_windows(shape: tuple, grid: tuple) -> list:
    """All (side, row, col) windows of ``grid`` that fit in an image of ``shape``, in scan order."""
    height, width = shape[:2]
    windows = []
    for side, stride in grid:
        for row in range(0, height - side + 1, stride):
            for col in range(0, width - side + 1, stride):
                windows.append((side, row, col))
    return windows


def cut_patch(image: np.ndarray, window: tuple) -> np.ndarray:
    """The window resized (anti-aliased) to PATCH x PATCH."""
    from skimage.transform import resize

    side, row, col = window
    crop = image[row:row + side, col:col + side]
    if side == PATCH:
        return crop.astype(np.float64, copy=True)
    return resize(crop, (PATCH, PATCH), order=1, mode="reflect", anti_aliasing=True)


def spread_order(n: int, first: int) -> np.ndarray:
    """0..n-1 with ``first`` evenly spaced indices first, then the rest in order.

    Picking from the front of this order covers an image's whole grid; the
    tail supplies replacements when a pick turns out to be a duplicate.
    """
    first = min(first, n)
    head = np.unique(np.floor(np.linspace(0, n - 1, first) + 0.5).astype(np.int64)) if first else np.arange(0)
    rest = np.setdiff1d(np.arange(n), head, assume_unique=True)
    return np.concatenate([head, rest])


def allocate(total: int, capacities) -> list:
    """Split ``total`` as evenly as possible over bins, none above its capacity."""
    capacities = list(capacities)
    shares = [0] * len(capacities)
    left = total
    open_bins = [i for i, c in enumerate(capacities) if c > 0]
    while left > 0 and open_bins:
        each, extra = divmod(left, len(open_bins))
        for rank, i in enumerate(open_bins):
            give = min(each + (1 if rank < extra else 0), capacities[i] - shares[i])
            shares[i] += give
            left -= give
        open_bins = [i for i in open_bins if shares[i] < capacities[i]]
    if left > 0:
        raise ValueError(f"only {sum(capacities)} windows available, {total} needed")
    return shares


def background_patches(total: int, grid: tuple, seen: set) -> np.ndarray:
    """``total`` distinct background patches spread evenly over IMAGES.

    ``seen`` holds the bytes of patches already taken (e.g. LFW crops); exact
    duplicates are skipped and replaced by the next window of the same image.
    """
    images = [load_grey_image(lib, name) for lib, name in IMAGES]
    windows = [grid_windows(img.shape, grid) for img in images]
    quotas = allocate(total, [len(w) for w in windows])
    out = []
    for image, image_windows, quota in zip(images, windows, quotas):
        taken = 0
        for i in spread_order(len(image_windows), quota):
            if taken == quota:
                break
            patch = cut_patch(image, image_windows[i])
            key = patch.tobytes()
            if key in seen:
                continue
            seen.add(key)
            out.append(patch)
            taken += 1
        if taken < quota:
            raise RuntimeError(f"not enough distinct windows in an image for {quota} patches")
    return np.stack(out) if out else np.zeros((0, PATCH, PATCH))


def _distinct(patches: np.ndarray, seen: set) -> np.ndarray:
    """The patches whose exact bytes were not seen before (first occurrence kept)."""
    keep = []
    for patch in patches:
        key = np.ascontiguousarray(patch, dtype=np.float64).tobytes()
        if key not in seen:
            seen.add(key)
            keep.append(np.asarray(patch, dtype=np.float64))
    return np.stack(keep) if keep else np.zeros((0, PATCH, PATCH))


def _library_versions() -> dict:
    """Versions of the libraries whose output shapes the patches (read without importing them)."""
    out: dict[str, str | None] = {}
    for dist in ("numpy", "scikit-image", "scikit-learn", "pillow"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def _assemble(faces: np.ndarray, backgrounds: np.ndarray, source: str) -> Dataset:
    X = np.concatenate([faces.reshape(len(faces), -1), backgrounds.reshape(len(backgrounds), -1)])
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.concatenate([np.ones(len(faces), np.int64), np.zeros(len(backgrounds), np.int64)])
    return Dataset(X=X, y=y, class_names=CLASS_NAMES, source=source,
                   fingerprint=fingerprint(X, y, list(CLASS_NAMES)))


# --------------------------------------------------------------------------- cache
def cache_path(stem: str) -> Path:
    return data_home() / f"{stem}.npz"


def cached_dataset(stem: str, recipe: dict, build) -> Dataset:
    """The dataset cached at ``<data home>/<stem>.npz`` if its recipe matches, else ``build()``.

    The file stores the recipe fingerprint; a mismatch (or an unreadable
    file) rebuilds it. Writing is atomic; a read-only data home only skips
    the cache.
    """
    recipe_fp = fingerprint(recipe)
    try:
        path = cache_path(stem)
    except OSError:  # the data home cannot be created: build without a cache
        return build()
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                if str(f["recipe_fingerprint"]) == recipe_fp:
                    return Dataset(X=f["X"].astype(np.float64), y=f["y"].astype(np.int64),
                                   class_names=tuple(str(c) for c in f["class_names"]),
                                   source=str(f["source"]), fingerprint=str(f["fingerprint"]))
        except Exception:  # noqa: BLE001 - truncated zip, missing key, bad pickle...: rebuild it
            pass
    dataset = build()
    try:
        atomic_save_npz(path, X=dataset.X, y=dataset.y, class_names=np.array(dataset.class_names),
                        source=np.array(dataset.source), fingerprint=np.array(dataset.fingerprint),
                        recipe_fingerprint=np.array(recipe_fp))
    except OSError:
        pass  # cannot cache here; the data is still correct
    return dataset


# --------------------------------------------------------------------------- the embedded set
def small_recipe() -> dict:
    return {"name": "face-vs-background", "version": RECIPE_VERSION, "patch": PATCH, "images": IMAGES,
            "grid": SMALL_GRID, "per_image": SMALL_BACKGROUNDS_PER_IMAGE, "faces": "skimage lfw_subset[:100]",
            "non_faces": "skimage lfw_subset[100:]", "versions": _library_versions()}


def build_face_vs_background() -> Dataset:
    """Build the embedded set from scratch (about a second)."""
    import skimage.data

    crops = np.asarray(skimage.data.lfw_subset(), dtype=np.float64)
    seen: set = set()
    faces = _distinct(crops[:100], seen)
    non_faces = _distinct(crops[100:], seen)
    cut = background_patches(SMALL_BACKGROUNDS_PER_IMAGE * len(IMAGES), SMALL_GRID, seen)
    names = ", ".join(name for _, name in IMAGES)
    source = (f"{len(faces)} LFW face crops and {len(non_faces)} LFW non-face crops from "
              f"skimage.data.lfw_subset(); {len(cut)} {PATCH}x{PATCH} grey patches cut from {names} "
              f"(scikit-image / scikit-learn sample images)")
    return _assemble(faces, np.concatenate([non_faces, cut]), source)


def load_face_vs_background() -> Dataset:
    """100 faces vs 900 backgrounds, 625 features (25x25 grey pixels in [0, 1])."""
    return cached_dataset("face-vs-background", small_recipe(), build_face_vs_background)


# --------------------------------------------------------------------------- the LFW variant
def sklearn_data_home() -> Path:
    """scikit-learn's data home, found as scikit-learn finds it but without creating it."""
    return Path(os.environ.get("SCIKIT_LEARN_DATA", os.path.join("~", "scikit_learn_data"))).expanduser()


def lfw_home() -> Path:
    """The LFW folder, or DatasetUnavailable with a one-line how-to when it is not complete."""
    home = sklearn_data_home() / "lfw_home"
    missing = [name for name in LFW_FILES if not (home / name).is_file()]
    if not (home / "lfw_funneled").is_dir() and not (home / "lfw-funneled.tgz").is_file():
        missing.append("lfw_funneled")
    if missing:
        raise DatasetUnavailable(f"face-vs-background-lfw needs the LFW faces in {home} "
                                 f"({', '.join(missing)} missing); {LFW_HOW_TO}")
    return home


def _lfw_file_count(home: Path) -> int:
    folder = home / "lfw_funneled"
    if not folder.is_dir():
        return -1  # still an archive: sklearn unpacks it on first use
    return sum(len(files) for _, _, files in os.walk(folder))


def lfw_recipe(faces: int, home: Path) -> dict:
    return {"name": "face-vs-background-lfw", "version": RECIPE_VERSION, "patch": PATCH, "images": IMAGES,
            "grid": LARGE_GRID, "faces": faces, "lfw_slice": LFW_SLICE, "lfw_resize": LFW_RESIZE,
            "lfw_home": str(home), "lfw_files": _lfw_file_count(home), "versions": _library_versions()}


def _lfw_faces(home: Path) -> np.ndarray:
    from sklearn.datasets import fetch_lfw_people

    (r0, r1), (c0, c1) = LFW_SLICE
    try:
        people = fetch_lfw_people(data_home=str(home.parent), funneled=True, resize=LFW_RESIZE,
                                  slice_=(slice(r0, r1), slice(c0, c1)), color=False,
                                  download_if_missing=False)
    except OSError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetUnavailable(f"face-vs-background-lfw could not read LFW in {home} ({first}); "
                                 f"{LFW_HOW_TO}") from None
    return np.asarray(people.images, dtype=np.float64)


def build_face_vs_background_lfw(faces: int, home: Path) -> Dataset:
    """``faces`` LFW faces (scikit-learn's shuffled order) and nine backgrounds per face."""
    import skimage.data

    seen: set = set()
    pool = _distinct(_lfw_faces(home), seen)
    if faces > len(pool):
        raise UsageError(f"face-vs-background-lfw: faces={faces} but only {len(pool)} distinct LFW faces exist")
    # the faces beyond the first `faces` stay in `seen`, so no face is ever reused as a background
    face_patches = pool[:faces]
    non_faces = _distinct(np.asarray(skimage.data.lfw_subset(), dtype=np.float64)[100:], seen)
    n_cut = BACKGROUND_PER_FACE * faces - len(non_faces)
    capacity = sum(len(grid_windows(load_grey_image(lib, n).shape, LARGE_GRID)) for lib, n in IMAGES)
    if n_cut > capacity:
        most = (capacity + len(non_faces)) // BACKGROUND_PER_FACE
        raise UsageError(f"face-vs-background-lfw: faces={faces} needs {n_cut} background windows, "
                         f"the images give {capacity}; use faces <= {most}")
    cut = background_patches(max(n_cut, 0), LARGE_GRID, seen)
    backgrounds = np.concatenate([non_faces, cut])[:BACKGROUND_PER_FACE * faces]
    names = ", ".join(name for _, name in IMAGES)
    source = (f"{faces} faces from scikit-learn fetch_lfw_people (LFW, {home}), centred 125x125 crop "
              f"resized to {PATCH}x{PATCH}; {len(backgrounds)} backgrounds: LFW non-face crops from "
              f"skimage.data.lfw_subset() and patches cut from {names}")
    return _assemble(face_patches, backgrounds, source)


def load_face_vs_background_lfw(faces: int = 1000) -> Dataset:
    """``faces`` LFW faces vs 9 x ``faces`` backgrounds; DatasetUnavailable without LFW."""
    home = lfw_home()
    recipe = lfw_recipe(faces, home)
    return cached_dataset(f"face-vs-background-lfw-{faces}", recipe,
                          lambda: build_face_vs_background_lfw(faces, home))


SPECS = (
    DatasetSpec("face-vs-background",
                "100 LFW face crops vs 900 background patches (25x25 grey, 1:9 as in the lecture), offline",
                load_face_vs_background),
    DatasetSpec("face-vs-background-lfw",
                "LFW faces from scikit-learn's data home vs 9x as many backgrounds (25x25 grey); needs LFW",
                load_face_vs_background_lfw,
                params=(Param("faces", 1000, "number of LFW faces (backgrounds: 9 per face)", low=10),)),
)
