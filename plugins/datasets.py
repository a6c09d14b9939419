"""Built-in datasets: scikit-learn's bundled sets, synthetic generators and face patches.

Every loader returns raw arrays (``harness.plugin.Dataset``); splitting and
standardising are the engine's job (``harness.learning.split``). scikit-learn and
scikit-image are imported inside the loaders so that listing plugins stays
cheap. Synthetic sets use a fixed ``random_state``: the same call always gives
the same data.
"""
from __future__ import annotations

import numpy as np

from harness.plugin import Dataset, DatasetSpec, Param, fingerprint, hookimpl

from harness_plugins import face_patches

RANDOM_STATE = 0
"""Fixed seed of the synthetic generators (the split seed is separate, see harness.learning.split)."""


def _dataset(X, y, class_names, source: str) -> Dataset:
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    names = tuple(str(c) for c in class_names)
    return Dataset(X=X, y=y, class_names=names, source=source, fingerprint=fingerprint(X, y, list(names)))


def _bundled(loader_name: str, source: str, class_names=None):
    """A loader for one of scikit-learn's bundled (offline) datasets."""

    def load() -> Dataset:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader_name)()
        names = class_names if class_names is not None else bunch.target_names
        return _dataset(bunch.data, bunch.target, names, source)

    load.__name__ = f"load_{loader_name}"
    return load


def load_moons(n_samples: int = 1000, noise: float = 0.25) -> Dataset:
    """Two interleaving half circles with Gaussian noise (2 features)."""
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n_samples, noise=noise, random_state=RANDOM_STATE)
    return _dataset(X, y, ("moon_0", "moon_1"),
                    f"scikit-learn make_moons(n_samples={n_samples}, noise={noise}, random_state={RANDOM_STATE})")


def load_classification10(n_samples: int = 2000) -> Dataset:
    """Ten Gaussian-cluster classes in 20 features (10 informative), balanced."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n_samples, n_features=20, n_informative=10, n_redundant=4,
                               n_classes=10, n_clusters_per_class=1, class_sep=1.5, flip_y=0.0,
                               random_state=RANDOM_STATE)
    return _dataset(X, y, tuple(f"class_{k}" for k in range(10)),
                    f"scikit-learn make_classification(n_samples={n_samples}, n_features=20, "
                    f"n_informative=10, n_classes=10, random_state={RANDOM_STATE})")


def load_imbalanced(n_samples: int = 2000) -> Dataset:
    """Binary, 95% majority / 5% minority, 20 features (5 informative)."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n_samples, n_features=20, n_informative=5, n_redundant=2,
                               n_classes=2, n_clusters_per_class=2, weights=[0.95, 0.05], flip_y=0.0,
                               class_sep=1.0, random_state=RANDOM_STATE)
    return _dataset(X, y, ("majority", "minority"),
                    f"scikit-learn make_classification(n_samples={n_samples}, weights=[0.95, 0.05], "
                    f"n_features=20, n_informative=5, random_state={RANDOM_STATE})")


_N_SAMPLES_HELP = "number of samples generated (fixed random_state)"

BUILTIN_SPECS = (
    DatasetSpec("iris", "Fisher's iris flowers: 4 measurements, 3 species",
                _bundled("load_iris", "scikit-learn load_iris (Fisher 1936, UCI ML repository)")),
    DatasetSpec("wine", "wines of 3 cultivars from 13 chemical measurements",
                _bundled("load_wine", "scikit-learn load_wine (UCI ML Wine recognition)")),
    DatasetSpec("digits", "8x8 grey images of handwritten digits 0-9",
                _bundled("load_digits", "scikit-learn load_digits (UCI ML optical recognition of digits)",
                         class_names=tuple(str(d) for d in range(10)))),
    DatasetSpec("breast_cancer", "Wisconsin diagnostic breast cancer: malignant vs benign from 30 cell-nucleus features",
                _bundled("load_breast_cancer", "scikit-learn load_breast_cancer (UCI ML Breast Cancer Wisconsin)")),
    DatasetSpec("moons", "two noisy interleaving half moons in 2-D (not linearly separable)",
                load_moons,
                params=(Param("n_samples", 1000, _N_SAMPLES_HELP, low=10),
                        Param("noise", 0.25, "standard deviation of the Gaussian noise", low=0.0))),
    DatasetSpec("classification10", "synthetic balanced 10-class problem (make_classification, 20 features)",
                load_classification10,
                params=(Param("n_samples", 2000, _N_SAMPLES_HELP, low=100),)),
    DatasetSpec("imbalanced", "synthetic binary problem with a 95/5 class split (make_classification, 20 features)",
                load_imbalanced,
                params=(Param("n_samples", 2000, _N_SAMPLES_HELP, low=100),)),
)


@hookimpl
def register_datasets(register):
    for spec in BUILTIN_SPECS:
        register(spec)
    for spec in face_patches.SPECS:
        register(spec)
