"""The engine's preprocessing (harness.learning.split): split, standardisation, imbalance, cap, errors."""
import json

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from harness.plugin.specs import Dataset, DatasetSpec
from harness.learning.split import (PREPROCESS_PARAMS, cap_indices, imbalance_indices, load_dataset, load_split, split_indices, standardize)
from harness.errors import HarnessError, UsageError
from harness.plugin.loader import Registry, load_registry

REGISTRY = load_registry(autoload=False, strict=True)
SMALL = ["iris", "wine", "digits", "breast_cancer", "moons", "classification10", "imbalanced"]


def _parts(split):
    return {"train": (split.X_train, split.y_train), "val": (split.X_val, split.y_val),
            "test": (split.X_test, split.y_test)}


def test_generic_params_are_declared():
    assert [p.name for p in PREPROCESS_PARAMS] == ["test_fraction", "val_fraction", "imbalance", "max_samples"]
    defaults = {p.name: p.default for p in PREPROCESS_PARAMS}
    assert defaults == {"test_fraction": 0.25, "val_fraction": 0.2, "imbalance": 0.0, "max_samples": 0}


@pytest.mark.parametrize("name", SMALL)
def test_split_is_a_disjoint_stratified_cover(name):
    raw = load_dataset(name, registry=REGISTRY)
    train, val, test = split_indices(name, seed=3, registry=REGISTRY)
    everything = np.concatenate([train, val, test])
    assert np.array_equal(np.sort(everything), np.arange(len(raw.y)))  # disjoint and complete
    split = load_split(name, seed=3, registry=REGISTRY)
    for part, idx in zip(("train", "val", "test"), (train, val, test)):
        X, y = _parts(split)[part]
        assert X.dtype == np.float64 and y.dtype == np.int64 and X.shape == (len(idx), raw.X.shape[1])
        assert np.array_equal(y, raw.y[idx])
    # each class keeps its share in every part (to within one sample of the exact share)
    counts = np.bincount(raw.y)
    test_counts = np.bincount(split.y_test, minlength=len(counts))
    assert np.all(np.abs(test_counts - 0.25 * counts) <= 1)
    rest = counts - test_counts
    val_counts = np.bincount(split.y_val, minlength=len(counts))
    assert np.all(np.abs(val_counts - 0.2 * rest) <= 1)
    assert np.all(np.bincount(split.y_train, minlength=len(counts)) > 0)


@pytest.mark.parametrize("name", SMALL)
def test_standardisation_uses_training_statistics_only(name):
    raw = load_dataset(name, registry=REGISTRY)
    train, val, test = split_indices(name, seed=1, registry=REGISTRY)
    split = load_split(name, seed=1, registry=REGISTRY)
    scaler = StandardScaler().fit(raw.X[train])
    assert np.allclose(split.X_train, scaler.transform(raw.X[train]), atol=1e-12)
    assert np.allclose(split.X_val, scaler.transform(raw.X[val]), atol=1e-12)
    assert np.allclose(split.X_test, scaler.transform(raw.X[test]), atol=1e-12)
    assert np.isfinite(split.X_train).all() and np.isfinite(split.X_test).all()


def test_statistics_of_the_test_part_do_not_leak():
    # shifting only the test rows of the raw data must leave the training part unchanged
    X = np.random.default_rng(0).normal(size=(80, 3))
    y = np.repeat([0, 1], 40)
    train, val, test = _toy_registry_split(X, y, seed=0)[1]
    X_shifted = X.copy()
    X_shifted[test] += 100.0
    (split_a, _), (split_b, _) = _toy_registry_split(X, y, seed=0), _toy_registry_split(X_shifted, y, seed=0)
    assert np.array_equal(split_a.X_train, split_b.X_train)
    assert np.array_equal(split_a.X_val, split_b.X_val)
    assert not np.allclose(split_a.X_test, split_b.X_test)


def _toy_registry_split(X, y, seed=0, **params):
    data = Dataset(X=X, y=y, class_names=("a", "b"), source="toy")
    spec = DatasetSpec("toy", "toy data", lambda: data)
    reg = Registry(datasets={"toy": spec})
    return load_split("toy", seed=seed, registry=reg, **params), split_indices("toy", seed=seed, registry=reg,
                                                                             **params)


def test_constant_feature_becomes_zero_not_nan():
    X = np.column_stack([np.full(60, 7.0), np.arange(60.0)])
    y = np.tile([0, 1], 30)
    split, _ = _toy_registry_split(X, y)
    assert np.isfinite(split.X_train).all()
    assert np.array_equal(split.X_train[:, 0], np.zeros(len(split.X_train)))
    assert np.array_equal(split.X_test[:, 0], np.zeros(len(split.X_test)))
    scaled, = standardize(X)
    assert np.allclose(scaled, StandardScaler().fit_transform(X))


def test_same_seed_same_split_new_seed_new_split():
    a = load_split("wine", seed=7, registry=REGISTRY)
    b = load_split("wine", seed=7, registry=load_registry(autoload=False))  # a fresh registry too
    for (Xa, ya), (Xb, yb) in zip(_parts(a).values(), _parts(b).values()):
        assert np.array_equal(Xa, Xb) and np.array_equal(ya, yb)
    assert a.meta["split_fingerprint"] == b.meta["split_fingerprint"]
    c = load_split("wine", seed=8, registry=REGISTRY)
    assert not np.array_equal(a.y_train, c.y_train) or not np.array_equal(a.X_train, c.X_train)
    assert a.meta["split_fingerprint"] != c.meta["split_fingerprint"]


def test_meta_describes_the_split_and_is_json():
    split = load_split("breast_cancer", seed=0, registry=REGISTRY)
    meta = split.meta
    assert meta["samples"] == 569 and meta["features"] == 30 and meta["classes"] == 2
    assert meta["class_counts"] == {"malignant": int((split.y_train == 0).sum()),
                                    "benign": int((split.y_train == 1).sum())}
    assert meta["imbalance_ratio"] == pytest.approx(357 / 212)
    assert meta["n_train"] + meta["n_val"] + meta["n_test"] == 569
    assert meta["fingerprint"] == load_dataset("breast_cancer", registry=REGISTRY).fingerprint
    assert "load_breast_cancer" in meta["source"]
    assert split.class_names == ("malignant", "benign")
    json.dumps(meta)


def test_fractions_and_empty_validation():
    split = load_split("digits", seed=0, registry=REGISTRY, test_fraction=0.5, val_fraction=0.0)
    assert split.X_val.shape == (0, 64) and split.y_val.shape == (0,)
    assert abs(len(split.y_test) - 1797 / 2) <= 10
    assert len(split.y_train) + len(split.y_test) == 1797


@pytest.mark.parametrize("ratio", [0.5, 0.2, 0.05])
def test_imbalance_on_a_balanced_set_cuts_the_minority(ratio):
    split = load_split("moons", seed=0, registry=REGISTRY, imbalance=ratio)
    counts = split.meta["class_counts_all"]
    assert counts["moon_0"] == 500 and counts["moon_1"] == round(ratio * 500)
    assert split.meta["imbalance_ratio"] == pytest.approx(1 / ratio)
    assert split.meta["samples"] == 500 + round(ratio * 500)


def test_imbalance_on_a_rarer_minority_cuts_the_majority():
    # 1900:100 asked for 1:2 -> keep the 100 minority samples and 200 majority samples
    split = load_split("imbalanced", seed=0, registry=REGISTRY, imbalance=0.5)
    assert split.meta["class_counts_all"] == {"majority": 200, "minority": 100}


def test_imbalance_multiclass_cuts_the_smallest_class():
    counts = np.bincount(load_dataset("digits", registry=REGISTRY).y)
    split = load_split("digits", seed=0, registry=REGISTRY, imbalance=0.1)
    after = split.meta["class_counts_all"]
    smallest = int(np.argmin(counts))
    assert after[str(smallest)] == round(0.1 * counts.max())
    assert all(after[str(k)] == counts[k] for k in range(10) if k != smallest)


def test_imbalance_subsample_is_seeded():
    y = np.repeat([0, 1], [300, 300])
    a = imbalance_indices(y, 2, 0.1, np.random.default_rng(0))
    b = imbalance_indices(y, 2, 0.1, np.random.default_rng(0))
    assert np.array_equal(a, b) and np.bincount(y[a]).tolist() == [300, 30]


def test_max_samples_is_a_stratified_cap():
    split = load_split("imbalanced", seed=0, registry=REGISTRY, max_samples=400)
    assert split.meta["samples"] == 400
    assert split.meta["class_counts_all"] == {"majority": 380, "minority": 20}
    idx = cap_indices(np.repeat([0, 1, 2], [10, 20, 70]), 3, 10, np.random.default_rng(0))
    assert len(idx) == 10 and len(np.unique(idx)) == 10


def test_unknown_parameter_is_a_usage_error_naming_the_valid_ones():
    with pytest.raises(UsageError) as err:
        load_split("moons", registry=REGISTRY, noize=0.1)
    message = str(err.value)
    assert "noize" in message and "noise" in message and "test_fraction" in message and "n_samples" in message


@pytest.mark.parametrize("params", [{"test_fraction": 2}, {"imbalance": -1}, {"max_samples": "many"},
                                    {"n_samples": 1.5}])
def test_bad_values_are_usage_errors(params):
    with pytest.raises(UsageError):
        load_split("moons", registry=REGISTRY, **params)


def test_unknown_dataset_and_bad_seed_are_usage_errors():
    with pytest.raises(UsageError, match="did you mean 'iris'"):
        load_split("irsi", registry=REGISTRY)
    with pytest.raises(UsageError, match="seed"):
        load_split("iris", seed=-1, registry=REGISTRY)


def test_too_few_samples_in_a_class_is_a_clear_error():
    with pytest.raises(UsageError, match="class 'virginica' has only 1 sample"):
        load_split("iris", registry=REGISTRY, imbalance=0.01)


def test_a_loader_breaking_the_contract_is_reported():
    bad = Dataset(X=np.zeros((4, 2)), y=np.array([0, 1, 2, 1]), class_names=("a", "b"))
    reg = Registry(datasets={"bad": DatasetSpec("bad", "bad labels", lambda: bad)})
    with pytest.raises(HarnessError, match="labels must lie in 0..1"):
        load_split("bad", registry=reg)


def test_raw_data_is_shared_read_only():
    raw = load_dataset("iris", registry=REGISTRY)
    assert raw is load_dataset("iris", registry=REGISTRY)
    with pytest.raises(ValueError):
        raw.X[0, 0] = 1.0
    split = load_split("iris", registry=REGISTRY)
    with pytest.raises(ValueError):   # cached per process and shared: read-only
        split.X_train[0, 0] = 123.0
    assert load_split("iris", registry=REGISTRY).X_train is split.X_train
