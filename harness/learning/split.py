"""The engine's preprocessing: one honest path from a raw Dataset to a Split.

Every dataset plugin returns raw arrays (``harness.plugin.Dataset``); this module
applies the generic options that every dataset accepts (``PREPROCESS_PARAMS``),
then a seeded stratified train/validation/test split and a standardisation
fitted on the training part only. The split depends only on the dataset, its
parameters and the seed, so every optimizer and loss compared under one seed
sees exactly the same samples (paired comparisons).

Order of operations in :func:`load_split`:

1. load the raw dataset (cached per process: a sweep loads it many times);
2. ``imbalance``: subsample to the requested minority:majority ratio;
3. ``max_samples``: stratified cap on the number of samples;
4. stratified split: ``test_fraction`` of each class to test, then
   ``val_fraction`` of the rest to validation, the remainder to training;
5. standardise with the training mean and standard deviation.

The split itself is cached per process too (the last ``SPLIT_CACHE_SIZE``,
keyed by the dataset's loader, seed and params): every cell of a sweep worker
on the same data gets the same read-only arrays instead of recomputing them.
"""
from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from harness.plugin.specs import Dataset, Param, resolve_params
from harness.plugin.cache import atomic_save_npz, data_home, fingerprint
from harness.errors import HarnessError, UsageError

__all__ = [
    "PREPROCESS_PARAMS",
    "load_split",
    "load_dataset",
    "split_indices",
    "describe",
    "fingerprint",
    "data_home",
    "atomic_save_npz",
    "validate_dataset",
    "imbalance_indices",
    "cap_indices",
    "stratified_split_indices",
    "standardize",
]

PREPROCESS_PARAMS = (
    Param("test_fraction", 0.25, "share of each class held out as the test set (reported, never tuned on)",
          low=0.05, high=0.9),
    Param("val_fraction", 0.2, "share of the non-test part of each class held out for validation "
          "(learning-rate tuning); 0 for none", low=0.0, high=0.9),
    Param("imbalance", 0.0, "0 = off; else the minority:majority ratio r to subsample to: the smallest "
          "class is cut to r x the largest, or, if already rarer, the other classes are cut to "
          "smallest / r", low=0.0, high=1.0),
    Param("max_samples", 0, "0 = no cap; else a stratified cap on the number of samples "
          "(applied after imbalance)", low=0),
)
"""Generic options accepted by every dataset, on top of the dataset's own params."""

_GENERIC = {p.name for p in PREPROCESS_PARAMS}

# Independent random streams for the seeded steps, so changing one option does
# not reshuffle the draws of another.
_STREAM_IMBALANCE, _STREAM_CAP, _STREAM_SPLIT = 1, 2, 3


# --------------------------------------------------------------------------- helpers
@dataclass(frozen=True)
class Split:
    """A dataset after the engine's seeded stratified split and standardisation.

    Training uses ``train`` only; ``val`` is for tuning; ``test`` is reported and
    never used for selection. ``meta`` carries samples, features, classes,
    class counts, imbalance ratio, source and fingerprint.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple
    meta: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def validate_dataset(dataset: Dataset, name: str = "dataset") -> Dataset:
    """Check the Dataset contract; return it with X as float64 and y as int64.

    Raises HarnessError naming the dataset when a plugin breaks the contract.
    """
    X = np.asarray(dataset.X)
    y = np.asarray(dataset.y)
    if X.ndim != 2:
        raise HarnessError(f"dataset {name!r}: X must be 2-D (n, d), got shape {X.shape}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise HarnessError(f"dataset {name!r}: y must be 1-D with {X.shape[0]} labels, got shape {y.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise HarnessError(f"dataset {name!r}: no samples or no features (shape {X.shape})")
    if not np.issubdtype(y.dtype, np.integer):
        raise HarnessError(f"dataset {name!r}: labels must be integers, got {y.dtype}")
    k = len(dataset.class_names)
    if y.min() < 0 or y.max() >= k:
        raise HarnessError(f"dataset {name!r}: labels must lie in 0..{k - 1} (one per class name)")
    X = X.astype(np.float64, copy=False)
    if not np.isfinite(X).all():
        raise HarnessError(f"dataset {name!r}: X contains NaN or infinite values")
    return Dataset(X=X, y=y.astype(np.int64, copy=False), class_names=tuple(dataset.class_names),
                   source=dataset.source, fingerprint=dataset.fingerprint)


def _class_counts(y: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(y, minlength=n_classes)


def _imbalance_ratio(counts: np.ndarray) -> float:
    """Largest class count over smallest (inf when a class is empty)."""
    counts = np.asarray(counts)
    smallest = counts.min()
    return float("inf") if smallest == 0 else float(counts.max() / smallest)


def describe(dataset: Dataset) -> dict:
    """Size, balance and provenance of a raw dataset (shown by ``harness list datasets``)."""
    y = np.asarray(dataset.y)
    counts = _class_counts(y, len(dataset.class_names))
    return {
        "samples": int(y.shape[0]),
        "features": int(np.asarray(dataset.X).shape[1]),
        "classes": len(dataset.class_names),
        "class_counts": {str(name): int(c) for name, c in zip(dataset.class_names, counts)},
        "imbalance_ratio": _imbalance_ratio(counts),
        "source": dataset.source,
        "fingerprint": dataset.fingerprint or fingerprint(np.asarray(dataset.X), y, list(dataset.class_names)),
    }


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


# --------------------------------------------------------------------------- sampling steps
def imbalance_indices(y: np.ndarray, n_classes: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a subsample whose smallest:largest class ratio is ``ratio``.

    The minority class is the smallest one (ties: the highest label, so the
    positive class of a balanced binary set). If it has more than
    ``ratio * largest`` samples it is cut to that many; if it is already rarer
    than that, every other class is cut to ``minority / ratio``. Either way the
    minority:majority ratio equals ``ratio`` up to rounding. ``ratio <= 0`` or
    ``>= 1`` with balanced data keeps everything.
    """
    counts = _class_counts(y, n_classes)
    present = np.flatnonzero(counts)
    if ratio <= 0 or present.size < 2:
        return np.arange(y.shape[0])
    minority = present[np.flatnonzero(counts[present] == counts[present].min())[-1]]
    others = present[present != minority]
    largest_other = counts[others].max()
    target = np.zeros(n_classes, dtype=np.int64)
    target[present] = counts[present]
    if counts[minority] > ratio * largest_other:
        target[minority] = max(1, _round_half_up(ratio * largest_other))
    else:
        cap = max(1, _round_half_up(counts[minority] / ratio))
        target[others] = np.minimum(counts[others], cap)
    return _subsample_to(y, target, rng)


def _subsample_to(y: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    keep = []
    for k, n_keep in enumerate(target):
        members = np.flatnonzero(y == k)
        if n_keep >= members.size:
            keep.append(members)
        elif n_keep > 0:
            keep.append(rng.choice(members, size=int(n_keep), replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.arange(0)


def cap_indices(y: np.ndarray, n_classes: int, max_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a stratified subsample of at most ``max_samples`` samples.

    Class shares are kept (largest-remainder rounding) and every present class
    keeps at least one sample.
    """
    n = y.shape[0]
    if max_samples <= 0 or n <= max_samples:
        return np.arange(n)
    counts = _class_counts(y, n_classes)
    exact = counts * (max_samples / n)
    target = np.floor(exact).astype(np.int64)
    target[(counts > 0) & (target == 0)] = 1
    left = max_samples - target.sum()
    if left > 0:
        order = np.argsort(-(exact - np.floor(exact)), kind="stable")
        for k in order[:left]:
            target[k] += 1
    elif left < 0:  # the minimum of one per class overshot: trim the largest classes
        for _ in range(-left):
            target[np.argmax(target)] -= 1
    return _subsample_to(y, np.minimum(target, counts), rng)


def stratified_split_indices(y: np.ndarray, n_classes: int, test_fraction: float, val_fraction: float,
                             rng: np.random.Generator, class_names=None):
    """(train, val, test) index arrays, split class by class, each shuffled.

    Per class of n samples: ``round(test_fraction * n)`` go to test and
    ``round(val_fraction * rest)`` to validation, clipped so that training gets
    at least one sample and test (and validation when ``val_fraction > 0``) get
    at least one. A class too small for that raises UsageError.
    """
    names = class_names if class_names is not None else [str(k) for k in range(n_classes)]
    need = 3 if val_fraction > 0 else 2
    parts = ([], [], [])
    for k in range(n_classes):
        members = np.flatnonzero(y == k)
        n = members.size
        if n == 0:
            continue
        if n < need:
            raise UsageError(
                f"class {names[k]!r} has only {n} sample(s) after imbalance/max_samples; "
                f"a train/{'val/' if need == 3 else ''}test split needs at least {need} per class")
        members = rng.permutation(members)
        n_test = min(max(1, _round_half_up(test_fraction * n)), n - need + 1)
        rest = n - n_test
        n_val = 0
        if val_fraction > 0:
            n_val = min(max(1, _round_half_up(val_fraction * rest)), rest - 1)
        parts[2].append(members[:n_test])
        parts[1].append(members[n_test:n_test + n_val])
        parts[0].append(members[n_test + n_val:])
    return tuple(rng.permutation(np.concatenate(p)) if p else np.arange(0) for p in parts)


def standardize(X_train: np.ndarray, *others: np.ndarray):
    """Scale every array with the training mean and standard deviation.

    Same semantics as ``sklearn.preprocessing.StandardScaler`` (population
    standard deviation; a feature that is constant on the training part gets
    scale 1, so it becomes 0 there instead of NaN). Returns the scaled training
    array followed by the scaled others, all float64.
    """
    mean = X_train.mean(axis=0)
    var = X_train.var(axis=0)
    n = X_train.shape[0]
    eps = np.finfo(np.float64).eps
    # a variance within rounding noise of zero counts as a constant feature
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.where(constant, 1.0, np.sqrt(var))
    return tuple(np.ascontiguousarray((X - mean) / scale, dtype=np.float64) for X in (X_train, *others))


# --------------------------------------------------------------------------- loading
@functools.lru_cache(maxsize=16)
def _load_raw_cached(load, name: str, params: tuple) -> Dataset:
    dataset = validate_dataset(load(**dict(params)), name)
    if not dataset.fingerprint:
        dataset = Dataset(dataset.X, dataset.y, dataset.class_names, dataset.source,
                          fingerprint(dataset.X, dataset.y, list(dataset.class_names)))
    dataset.X.setflags(write=False)  # shared by every caller in this process
    dataset.y.setflags(write=False)
    return dataset


def _split_params(spec, given: Mapping[str, Any]):
    """Resolve ``given`` into (generic options, the dataset's own params)."""
    own_names = {p.name for p in spec.params}
    valid = sorted(_GENERIC | own_names)
    for key in given:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"dataset {spec.name!r}: unknown parameter {key!r}{hint}; "
                             f"valid: {', '.join(valid)}")
    generic_given = {k: v for k, v in given.items() if k in _GENERIC and k not in own_names}
    own_given = {k: v for k, v in given.items() if k in own_names}
    generic = resolve_params(PREPROCESS_PARAMS, generic_given, f"dataset {spec.name!r}")
    own = resolve_params(spec.params, own_given, f"dataset {spec.name!r}")
    return generic, own


def _spec(name: str, registry):
    if registry is None:
        from harness.plugin.loader import load_registry

        registry = load_registry()
    return registry.get("datasets", name)


def load_dataset(name: str, registry=None, **params) -> Dataset:
    """The raw Dataset ``name`` loaded with its own params (cached per process, read-only arrays)."""
    spec = _spec(name, registry)
    _, own = _split_params(spec, params)
    return _load_raw_cached(spec.load, spec.name, tuple(sorted(own.items())))


def _plan(spec, seed: int, params: Mapping[str, Any]):
    """Everything load_split decides: the spec, raw data, resolved params and index arrays."""
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    generic, own = _split_params(spec, params)
    raw = _load_raw_cached(spec.load, spec.name, tuple(sorted(own.items())))
    k = len(raw.class_names)
    idx = np.arange(raw.y.shape[0])
    if generic["imbalance"] > 0:
        idx = idx[imbalance_indices(raw.y[idx], k, generic["imbalance"],
                                    np.random.default_rng([seed, _STREAM_IMBALANCE]))]
    if generic["max_samples"] > 0:
        idx = idx[cap_indices(raw.y[idx], k, generic["max_samples"],
                              np.random.default_rng([seed, _STREAM_CAP]))]
    train, val, test = stratified_split_indices(
        raw.y[idx], k, generic["test_fraction"], generic["val_fraction"],
        np.random.default_rng([seed, _STREAM_SPLIT]), raw.class_names)
    return spec, raw, generic, own, seed, idx, (idx[train], idx[val], idx[test])


def split_indices(name: str, seed: int = 0, registry=None, **params):
    """(train, val, test) row indices into the raw dataset that :func:`load_split` uses.

    For checks that need row identity (no sample in two parts) and for
    plugins that want to map split rows back to the raw data.
    """
    return _plan(_spec(name, registry), seed, params)[-1]


def load_split(name: str, seed: int = 0, registry=None, **params) -> Split:
    """Load dataset ``name`` and return its seeded, standardised train/val/test split.

    ``params`` mixes the generic options (``PREPROCESS_PARAMS``) and the
    dataset's own hyper-parameters; an unknown name raises UsageError listing
    the valid ones. The same ``seed`` gives the same split for every optimizer
    and loss. Raises ``harness.plugin.DatasetUnavailable`` when the data is not on
    this machine. ``meta`` holds plain JSON-friendly values only.
    """
    spec = _spec(name, registry)
    key = _cache_key(spec, seed, params)
    cached = _SPLITS.get(key) if key is not None else None
    if cached is None:
        cached = _compute_split(spec, seed, params)
        if key is not None:
            _SPLITS[key] = cached
            while len(_SPLITS) > SPLIT_CACHE_SIZE:
                _SPLITS.pop(next(iter(_SPLITS)))   # the least recently used
    else:
        _SPLITS[key] = _SPLITS.pop(key)            # now the most recently used
    return replace(cached, meta=copy.deepcopy(cached.meta))


SPLIT_CACHE_SIZE = 8
"""Splits kept per process: a sweep worker runs many cells on the same (dataset, seed, params)."""
_SPLITS: dict = {}


def _cache_key(spec, seed, params: Mapping[str, Any]):
    """What a split depends on (the dataset's loader, its name, the seed and the params, with their
    types so ``True`` and ``1`` stay apart); None when a value cannot be hashed (not cached)."""
    key = (spec.load, spec.name, type(seed).__name__, seed,
           tuple(sorted((str(k), type(v).__name__, v) for k, v in params.items())))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _compute_split(spec, seed, params) -> Split:
    """The split itself, with read-only arrays (a cached split is shared by every caller in the process)."""
    spec, raw, generic, own, seed, idx, (train, val, test) = _plan(spec, seed, params)
    k = len(raw.class_names)
    X_train, X_val, X_test = standardize(raw.X[train], raw.X[val], raw.X[test])
    kept = _class_counts(raw.y[idx], k)
    train_counts = _class_counts(raw.y[train], k)
    meta = {
        "dataset": spec.name,
        "samples": int(idx.size),
        "features": int(raw.X.shape[1]),
        "classes": k,
        "class_counts": {str(c): int(n) for c, n in zip(raw.class_names, train_counts)},
        "class_counts_all": {str(c): int(n) for c, n in zip(raw.class_names, kept)},
        "imbalance_ratio": _imbalance_ratio(kept),
        "n_train": int(train.size),
        "n_val": int(val.size),
        "n_test": int(test.size),
        "source": raw.source,
        "fingerprint": raw.fingerprint,
        "split_fingerprint": fingerprint(raw.fingerprint, seed, sorted(generic.items()), train, val, test),
        "params": {**own, **generic},
        "seed": seed,
    }
    arrays = dict(X_train=X_train, y_train=raw.y[train].copy(), X_val=X_val, y_val=raw.y[val].copy(),
                  X_test=X_test, y_test=raw.y[test].copy())
    for array in arrays.values():
        array.setflags(write=False)
    return Split(**arrays, class_names=raw.class_names, meta=meta)
