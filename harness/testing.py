"""Conformance kit for plugin authors: run it in your own pytest suite.

Modelled on scikit-learn's ``parametrize_with_checks``::

    from harness.testing import parametrize_with_checks
    from my_plugin import MY_OPTIMIZER, MY_LOSS   # your spec objects

    @parametrize_with_checks([MY_OPTIMIZER, MY_LOSS])
    def test_conformance(spec, check):
        check(spec)

Every check is independent of harness's own model and trainer: losses are
compared with central finite differences, optimizers descend a small softmax
regression written here in plain numpy, datasets go through the engine's split.
A failing check raises ``AssertionError`` with a message saying what to fix.
"""
from __future__ import annotations

import pickle
from typing import Callable

import numpy as np

from harness.learning.reference import optimum_logits
from harness.learning.split import load_split
from harness.plugin import Dataset, DatasetSpec, Loss, LossSpec, Optimizer, OptimizerSpec
from harness.plugin.loader import Registry
from harness.plugin.specs import resolve_params

__all__ = ["checks_for", "check_plugin", "parametrize_with_checks"]


# --------------------------------------------------------------------------- losses
def _loss_case(spec: LossSpec, n_classes: int, n: int = 7, seed: int = 0):
    rng = np.random.default_rng(seed)
    y_train = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, 3 * n_classes)])
    loss = spec.factory(y_train, n_classes, **resolve_params(spec.params, {}, spec.name))
    assert isinstance(loss, Loss), f"{spec.name}: factory must return a harness.plugin.Loss"
    y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n)])
    logits = rng.normal(scale=2.0, size=(len(y), loss.n_outputs))
    return loss, logits, y


def _confident_logits(loss: Loss, y: np.ndarray, n_classes: int, margin: float) -> np.ndarray:
    if loss.n_outputs == n_classes:
        return margin * (2.0 * np.eye(n_classes)[y] - 1.0)
    assert loss.n_outputs == 1 and n_classes == 2, (
        "n_outputs must be n_classes, or 1 for a binary problem")
    return margin * (2.0 * y[:, None] - 1.0)


def check_loss_gradient(spec: LossSpec) -> None:
    """d(mean loss)/d(logits) matches central finite differences (relative error < 1e-6)."""
    for n_classes in (2, 3):
        loss, logits, y = _loss_case(spec, n_classes)
        grad = np.zeros_like(logits)
        loss.loss_grad(logits, y, grad)
        numeric = np.zeros_like(logits)
        h = 1e-6
        for idx in np.ndindex(*logits.shape):
            plus, minus = logits.copy(), logits.copy()
            plus[idx] += h
            minus[idx] -= h
            scratch = np.zeros_like(logits)
            numeric[idx] = (loss.loss_grad(plus, y, scratch) - loss.loss_grad(minus, y, scratch)) / (2 * h)
        scale = max(float(np.linalg.norm(grad)), float(np.linalg.norm(numeric)), 1e-12)
        err = float(np.linalg.norm(grad - numeric)) / scale
        assert err < 1e-6, f"{spec.name}: gradient differs from finite differences (relative error {err:.2e}, {n_classes} classes)"


def check_loss_values(spec: LossSpec) -> None:
    """Losses are non-negative and the mean of ``per_sample`` is what ``loss_grad`` returns."""
    for n_classes in (2, 3):
        loss, logits, y = _loss_case(spec, n_classes, seed=1)
        per = np.asarray(loss.per_sample(logits, y))
        assert per.shape == (len(y),), f"{spec.name}: per_sample must return one value per row"
        assert np.all(per >= 0), f"{spec.name}: negative per-sample loss {per.min()}"
        mean = loss.loss_grad(logits, y, np.zeros_like(logits))
        assert np.isclose(mean, per.mean(), rtol=1e-10, atol=1e-12), (
            f"{spec.name}: loss_grad returned {mean}, mean of per_sample is {per.mean()}")


def check_loss_confident(spec: LossSpec) -> None:
    """Confident correct predictions give a near-zero loss; confident wrong ones a large one."""
    for n_classes in (2, 3):
        loss, _, y = _loss_case(spec, n_classes, seed=2)
        right = _confident_logits(loss, y, n_classes, margin=30.0)
        value = loss.loss_grad(right, y, np.zeros_like(right))
        assert value < 1e-6, f"{spec.name}: loss {value} for confident correct predictions"
        wrong = -right
        assert loss.loss_grad(wrong, y, np.zeros_like(wrong)) > 1.0, (
            f"{spec.name}: confident wrong predictions should cost more than 1")
        pred = loss.predict_proba(right).argmax(axis=1)
        assert np.array_equal(pred, y), f"{spec.name}: predict_proba does not pick the confident class"


def check_loss_extreme_logits(spec: LossSpec) -> None:
    """Loss, gradient and probabilities stay finite for logits of +-1e4."""
    for n_classes in (2, 3):
        loss, logits, y = _loss_case(spec, n_classes, seed=3)
        extreme = np.sign(logits) * 1e4
        grad = np.zeros_like(extreme)
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            try:
                value = loss.loss_grad(extreme, y, grad)
                per = loss.per_sample(extreme, y)
                proba = loss.predict_proba(extreme)
            except FloatingPointError as exc:
                raise AssertionError(f"{spec.name}: floating-point error at logits +-1e4: {exc}") from None
        assert np.isfinite(value) and np.all(np.isfinite(grad)) and np.all(np.isfinite(per)), (
            f"{spec.name}: non-finite loss or gradient at logits +-1e4")
        assert proba.shape == (len(y), n_classes), f"{spec.name}: predict_proba must be (n, n_classes)"
        assert np.all((proba >= 0) & (proba <= 1)) and np.all(np.isfinite(proba)), (
            f"{spec.name}: probabilities outside [0, 1] at logits +-1e4")


def check_loss_leaves_inputs_unchanged(spec: LossSpec) -> None:
    """``loss_grad``, ``per_sample`` and ``predict_proba`` do not modify the caller's logits or labels."""
    for n_classes in (2, 3):
        loss, logits, y = _loss_case(spec, n_classes, seed=4)
        calls = {
            "loss_grad": lambda z, t: loss.loss_grad(z, t, np.zeros_like(z)),
            "per_sample": loss.per_sample,
            "predict_proba": lambda z, t: loss.predict_proba(z),
        }
        for name, call in calls.items():
            z, t = logits.copy(), y.copy()
            call(z, t)
            assert np.array_equal(z, logits), f"{spec.name}: {name} modified the logits it was given (work on a copy)"
            assert np.array_equal(t, y), f"{spec.name}: {name} modified the labels it was given (work on a copy)"


def _close(a, b) -> bool:
    return bool(np.allclose(a, b, rtol=1e-12, atol=1e-12))


def check_loss_grad_one(spec: LossSpec) -> None:
    """The optional fast path ``loss_grad_one(z, label, grad)`` agrees with ``loss_grad`` to 1e-12.

    The engine calls it for one-sample updates (point GD, SGD) when the loss
    has it. It must equal ``loss_grad`` on a one-row batch, and (since a
    ``loss_grad`` may itself delegate one-row batches to it) the row's share
    of a larger batch: ``per_sample`` value and n times the batch gradient row.
    """
    for n_classes in (2, 3):
        loss, logits, y = _loss_case(spec, n_classes, seed=5)
        fast = getattr(loss, "loss_grad_one", None)
        if fast is None:
            return
        n = len(y)
        batch_grad = np.zeros_like(logits)
        loss.loss_grad(logits.copy(), y.copy(), batch_grad)
        per = np.asarray(loss.per_sample(logits.copy(), y.copy()))
        for i in range(n):
            got = np.zeros(logits.shape[1])
            value = fast(logits[i].copy(), int(y[i]), got)
            one_row = np.zeros((1, logits.shape[1]))
            expected = loss.loss_grad(logits[i:i + 1].copy(), y[i:i + 1].copy(), one_row)
            assert _close(value, expected) and _close(value, per[i]), (
                f"{spec.name}: loss_grad_one returned {value}; loss_grad on that row gives {expected}, "
                f"per_sample {per[i]}")
            assert _close(got, one_row[0]) and _close(got, n * batch_grad[i]), (
                f"{spec.name}: loss_grad_one's gradient differs from loss_grad's for the same row "
                f"(max difference {max(np.abs(got - one_row[0]).max(), np.abs(got - n * batch_grad[i]).max()):.2e})")


def _prediction_cases(n_outputs: int, rng) -> np.ndarray:
    """Logits where rounding inside predict_proba decides the class, beside ordinary ones."""
    ordinary = rng.normal(scale=3.0, size=(200, n_outputs))
    near = rng.normal(scale=3.0, size=(200, n_outputs))
    rows = np.arange(len(near))
    if n_outputs > 1:   # a second class just below, at or just above the largest logit
        top = near.max(axis=1)
        near[rows, (near.argmax(axis=1) + 1) % n_outputs] = top + rng.integers(-3, 4, len(near)) * np.spacing(top)
    else:               # a single sigmoid unit within rounding of 0
        near[:, 0] = rng.integers(-3, 4, len(near)) * 1e-17
    tiny = rng.normal(scale=1e-15, size=(100, n_outputs))
    large = rng.normal(scale=50.0, size=(100, n_outputs))
    extreme = np.sign(rng.normal(size=(50, n_outputs))) * 1e4
    odd = np.array([[np.nan] * n_outputs, [np.inf] * n_outputs, [-np.inf] * n_outputs, [0.0] * n_outputs])
    return np.concatenate([ordinary, near, tiny, large, extreme, odd])


def check_loss_compiled_predict(spec: LossSpec) -> None:
    """The optional evaluation kernel ``compiled_predict(dtype)`` picks ``argmax(predict_proba)`` or declines.

    Where the kernel names a class it must be the one the numpy evaluation
    picks (first maximum on ties), on ordinary logits, near-ties, tiny, large
    and non-finite ones; it may answer UNSURE (-1) where rounding decides, but
    must decide nearly all ordinary rows, or the evaluation falls back to
    ``predict_proba`` every epoch.
    """
    from harness.learning import evaluation

    for n_classes in (2, 3):
        loss, _, _ = _loss_case(spec, n_classes, seed=6)
        offer = getattr(loss, "compiled_predict", None)
        if offer is None:
            return
        for dtype in ("float64", "float32"):
            found = offer(dtype)
            if found is None:
                continue
            kernel, params = found
            want_sig = evaluation.PREDICT_SIGNATURES.get(np.dtype(dtype))
            assert getattr(kernel, "_sig", None) == want_sig, (
                f"{spec.name}: compiled_predict({dtype!r}) must return a numba cfunc with the signature {want_sig} "
                f"(docs/learning.md, Evaluation); the engine ignores any other")
            logits = _prediction_cases(loss.n_outputs, np.random.default_rng(n_classes)).astype(dtype)
            with np.errstate(all="ignore"):
                want = np.argmax(loss.predict_proba(logits), axis=1)
            got = evaluation.predict_classes(kernel, params, logits)
            decided = got != evaluation.UNSURE
            assert np.all((got >= evaluation.UNSURE) & (got < n_classes)), (
                f"{spec.name}: compiled_predict({dtype!r}) wrote classes outside -1..{n_classes - 1}")
            wrong = np.flatnonzero(decided & (got != want))
            assert not len(wrong), (
                f"{spec.name}: compiled_predict({dtype!r}) picks class {got[wrong[0]]} for logits "
                f"{logits[wrong[0]].tolist()}, argmax(predict_proba) picks {want[wrong[0]]}; answer -1 where "
                f"rounding can decide")
            assert decided[:200].mean() >= 0.9, (
                f"{spec.name}: compiled_predict({dtype!r}) declines {100 * (1 - decided[:200].mean()):.0f}% of "
                "ordinary rows; the evaluation would fall back to predict_proba")


def _call_row_kernel(kernel, z: np.ndarray, label: int, params: np.ndarray) -> tuple[float, np.ndarray]:
    """Call a row cfunc through its ctypes entry point (no engine code between the kernel and the check)."""
    import ctypes

    z = np.ascontiguousarray(z)
    params = np.ascontiguousarray(params, dtype=np.float64)
    g = np.full_like(z, np.nan)   # a kernel must write every entry, never read g first
    T = ctypes.POINTER(np.ctypeslib.as_ctypes_type(z.dtype))
    value = kernel.ctypes(z.ctypes.data_as(T), len(z), int(label),
                          params.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), g.ctypes.data_as(T))
    return float(value), g


def check_loss_compiled_row_grad(spec: LossSpec) -> None:
    """The optional training kernel ``compiled_row_grad(dtype)`` agrees with ``per_sample`` and ``loss_grad``.

    The compiled epochs call it instead of ``loss_grad``: for every row its
    value must be that row's ``per_sample`` loss and its gradient n times the
    row's share of the batch gradient (1e-12 relative in float64, 1e-4 in
    float32), on ordinary and on large logits.
    """
    from harness.learning import kernels

    for n_classes in (2, 3):
        loss, logits, y = _loss_case(spec, n_classes, seed=7)
        offer = getattr(loss, "compiled_row_grad", None)
        if offer is None:
            return
        logits = np.concatenate([logits, 40.0 * logits[:3]])
        y = np.concatenate([y, y[:3]])
        for dtype, tol in (("float64", 1e-12), ("float32", 1e-4)):
            found = offer(dtype)
            if found is None:
                continue
            kernel, params = found
            want_sig = kernels.ROW_SIGNATURES.get(np.dtype(dtype))
            assert getattr(kernel, "_sig", None) == want_sig, (
                f"{spec.name}: compiled_row_grad({dtype!r}) must return a numba cfunc with the signature "
                f"{want_sig} (docs/learning.md, The compiled fast path); the engine ignores any other")
            per = np.asarray(loss.per_sample(logits.copy(), y.copy()), np.float64)
            batch = np.zeros_like(logits)
            loss.loss_grad(logits.copy(), y.copy(), batch)
            want_grad = len(y) * batch
            z = logits.astype(dtype)
            for i in range(len(y)):
                value, g = _call_row_kernel(kernel, z[i], int(y[i]), params)
                assert np.isclose(value, per[i], rtol=tol, atol=tol), (
                    f"{spec.name}: compiled_row_grad({dtype!r}) gives {value} for logits {logits[i].tolist()} "
                    f"and label {y[i]}; per_sample gives {per[i]}")
                assert np.allclose(g, want_grad[i], rtol=tol, atol=tol), (
                    f"{spec.name}: compiled_row_grad({dtype!r})'s gradient {g.tolist()} differs from loss_grad's "
                    f"row {want_grad[i].tolist()} (logits {logits[i].tolist()}, label {y[i]})")


def check_loss_optimum_logits(spec: LossSpec) -> None:
    """The optional convex reference ``optimum_logits(X, y)`` returns the logits of a linear model that no
    nearby linear model beats.

    On overlapping blobs (not separable: the optimum is attained), for 2 and 3
    classes: the logits have shape (n,) or (n, n_outputs) and are finite; they
    are an affine function of X (least squares on [X, 1] reproduces them); and
    moving that affine map a little in any of 40 random directions, or to the
    zero map, does not lower the mean loss by more than 1e-9 relative.
    """
    for n_classes in (2, 3):
        X, y = _blobs(seed=n_classes, n=90, d=3, k=n_classes)
        X = X + np.random.default_rng(n_classes).normal(scale=1.5, size=X.shape)   # overlap: not separable
        loss = spec.factory(y, n_classes, **resolve_params(spec.params, {}, spec.name))
        if getattr(loss, "optimum_logits", None) is None:
            return
        try:
            logits = optimum_logits(loss, X.copy(), y.copy(), spec.name)
        except ValueError as exc:   # the wrong shape: what the sweep would refuse
            raise AssertionError(str(exc)) from None
        if logits is None:
            continue
        assert np.all(np.isfinite(logits)), f"{spec.name}: optimum_logits returned non-finite logits"
        design = np.column_stack([X, np.ones(len(y))])
        affine, *_ = np.linalg.lstsq(design, logits, rcond=None)
        off = float(np.abs(design @ affine - logits).max()) / max(1.0, float(np.abs(logits).max()))
        assert off < 1e-8, f"{spec.name}: optimum_logits are not an affine function of X (off by {off:.1e})"
        best = float(np.mean(loss.per_sample(logits, y)))
        rng = np.random.default_rng(0)
        candidates = [np.zeros_like(affine)] + [affine + 1e-3 * rng.normal(size=affine.shape) for _ in range(40)]
        for other in candidates:
            value = float(np.mean(loss.per_sample(design @ other, y)))
            assert value >= best - 1e-9 * max(1.0, abs(best)), (
                f"{spec.name}: optimum_logits is not a minimum: a nearby linear model has mean loss {value!r} "
                f"< {best!r} ({n_classes} classes)")


# --------------------------------------------------------------------------- optimizers
def _blobs(seed: int = 0, n: int = 60, d: int = 4, k: int = 3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(k, d))
    y = np.arange(n) % k
    X = centers[y] + rng.normal(size=(n, d))
    return (X - X.mean(0)) / X.std(0), y


def _softmax_loss_grad(params, X, y):
    W, b = params
    z = X @ W + b
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(len(y)), y]).mean()
    p[np.arange(len(y)), y] -= 1.0
    p /= len(y)
    return loss, [X.T @ p, p.sum(axis=0)]


def _descend(opt: Optimizer, params, X, y, rng, epochs: int, lr: float) -> None:
    for _ in range(epochs):
        for idx in opt.batches(len(y), rng):
            idx = np.asarray(idx)
            assert idx.ndim == 1 and idx.size > 0 and np.issubdtype(idx.dtype, np.integer), (
                "batches must yield non-empty 1-D integer index arrays")
            assert idx.min() >= 0 and idx.max() < len(y), "batch index out of range"
            _, grads = _softmax_loss_grad(params, X[idx], y[idx])
            opt.step(params, grads, lr)


def _fresh(spec: OptimizerSpec) -> Optimizer:
    opt = spec.factory(**resolve_params(spec.params, {}, spec.name))
    assert isinstance(opt, Optimizer), f"{spec.name}: factory must return a harness.plugin.Optimizer"
    return opt


def _start(X, k=3):
    return [np.zeros((X.shape[1], k)), np.zeros(k)]


def check_optimizer_descends(spec: OptimizerSpec, lr: float = 0.1, epochs: int = 20) -> None:
    """On a convex softmax regression the loss falls well below its starting value."""
    X, y = _blobs()
    params = _start(X)
    before, _ = _softmax_loss_grad(params, X, y)
    _descend(_fresh(spec), params, X, y, np.random.default_rng(0), epochs, lr)
    after, _ = _softmax_loss_grad(params, X, y)
    assert np.isfinite(after) and after < 0.7 * before, (
        f"{spec.name}: loss went from {before:.4f} to {after:.4f} on a convex problem (lr={lr})")


def check_optimizer_deterministic(spec: OptimizerSpec) -> None:
    """The same seed reproduces the run bit for bit."""
    X, y = _blobs(seed=1)
    runs = []
    for _ in range(2):
        params = _start(X)
        _descend(_fresh(spec), params, X, y, np.random.default_rng(42), 3, 0.05)
        runs.append(params)
    for a, b in zip(*runs):
        assert np.array_equal(a, b), f"{spec.name}: two runs with the same seed differ"


LR_GRID_MIN = 3            # rates a declared grid needs (one below and one above the middle)
LR_GRID_SPACING = 2.0      # the largest step ratio of a declared grid at most this times the smallest


def check_optimizer_lr_grid(spec: OptimizerSpec) -> None:
    """A declared learning-rate grid is sane: >= 3 positive finite rates, increasing, roughly log-spaced.

    The sweep extends a grid past an edge with the ratio of its outermost step,
    so unevenly spaced grids extend unevenly. No grid is fine: the sweep then
    uses its default grid and says so.
    """
    grid = tuple(getattr(spec, "lr_grid", ()) or ())
    if not grid:
        return
    values = np.asarray(grid, dtype=float)
    assert len(values) >= LR_GRID_MIN, (f"{spec.name}: lr_grid {list(grid)} has {len(values)} rate(s); "
                                        f"declare at least {LR_GRID_MIN} so a best rate can be inside it")
    assert np.all(np.isfinite(values)) and np.all(values > 0), f"{spec.name}: lr_grid rates must be positive and finite"
    ratios = values[1:] / values[:-1]
    assert np.all(ratios > 1), f"{spec.name}: lr_grid {list(grid)} must be strictly increasing"
    assert ratios.max() <= LR_GRID_SPACING * ratios.min(), (
        f"{spec.name}: lr_grid {list(grid)} is not roughly log-spaced (step ratios from {ratios.min():.3g} to "
        f"{ratios.max():.3g}); use rates a constant factor apart, e.g. 0.001, 0.003, 0.01, 0.03")


def check_optimizer_pickle(spec: OptimizerSpec) -> None:
    """State survives a pickle round trip: continuing from the copy gives the same result."""
    X, y = _blobs(seed=2)
    opt = _fresh(spec)
    params = _start(X)
    _descend(opt, params, X, y, np.random.default_rng(7), 2, 0.05)
    try:
        clone = pickle.loads(pickle.dumps(opt))
    except Exception as exc:  # any pickling failure becomes one readable assertion
        raise AssertionError(
            f"{spec.name}: the optimizer does not pickle after some steps ({type(exc).__name__}: {exc}); "
            "keep only picklable state (arrays, numbers, lists; no lambdas, generators or open files), "
            "or drop caches in __getstate__") from None
    params_clone = [p.copy() for p in params]
    rng_state = np.random.default_rng(8)
    rng_clone = np.random.default_rng(8)
    _descend(opt, params, X, y, rng_state, 2, 0.05)
    _descend(clone, params_clone, X, y, rng_clone, 2, 0.05)
    for a, b in zip(params, params_clone):
        assert np.array_equal(a, b), f"{spec.name}: the unpickled optimizer continues differently"


# --------------------------------------------------------------------------- datasets
def check_dataset_arrays(spec: DatasetSpec) -> None:
    """The raw data: X (n, d) finite float64, y (n,) int64 with every label 0..K-1 present."""
    data = spec.load(**resolve_params(spec.params, {}, spec.name))
    assert isinstance(data, Dataset), f"{spec.name}: load must return a harness.plugin.Dataset"
    X, y = data.X, data.y
    assert X.ndim == 2 and X.dtype == np.float64, f"{spec.name}: X must be 2-D float64, got {X.dtype} {X.shape}"
    assert np.all(np.isfinite(X)), f"{spec.name}: X has non-finite values"
    assert y.shape == (X.shape[0],) and y.dtype == np.int64, f"{spec.name}: y must be (n,) int64"
    k = len(data.class_names)
    assert k >= 2, f"{spec.name}: needs at least two classes"
    assert set(np.unique(y).tolist()) == set(range(k)), f"{spec.name}: labels must be exactly 0..{k - 1}"


def _row_keys(X: np.ndarray) -> list:
    return [row.tobytes() for row in np.ascontiguousarray(X + 0.0)]  # + 0.0 folds -0.0 into 0.0


def check_dataset_split(spec: DatasetSpec) -> None:
    """The engine's split: disjoint train/val/test covering the data, standardised on train."""
    data = spec.load(**resolve_params(spec.params, {}, spec.name))
    split = load_split(spec.name, seed=0, registry=Registry(datasets={spec.name: spec}))
    parts = {"train": split.X_train, "val": split.X_val, "test": split.X_test}
    labels = {"train": split.y_train, "val": split.y_val, "test": split.y_test}
    total = sum(len(v) for v in parts.values())
    assert total == len(data.y), f"{spec.name}: the split has {total} rows, the data {len(data.y)}"
    for name, X in parts.items():
        assert len(X) > 0 and X.shape[1] == data.X.shape[1], f"{spec.name}: bad {name} shape {X.shape}"
        assert labels[name].shape == (len(X),), f"{spec.name}: {name} labels do not match rows"
    assert tuple(split.class_names) == tuple(data.class_names), f"{spec.name}: class names lost in the split"
    varying = split.X_train.std(axis=0) > 1e-12
    mean, std = split.X_train.mean(axis=0), split.X_train.std(axis=0)
    assert np.allclose(mean[varying], 0, atol=1e-8) and np.allclose(std[varying], 1, atol=1e-6), (
        f"{spec.name}: training part is not standardised with its own statistics")
    # Standardising maps equal raw rows to equal rows, so a row shared by two parts
    # is a leak unless the raw data itself holds that row more than once.
    raw_keys = _row_keys(data.X[:, varying])
    duplicated = len(raw_keys) - len(set(raw_keys))
    where: dict = {}
    for name, X in parts.items():
        for key in set(_row_keys(X[:, varying])):
            where.setdefault(key, set()).add(name)
    shared = sum(1 for places in where.values() if len(places) > 1)
    assert shared <= duplicated, f"{spec.name}: {shared} samples appear in more than one split"


# --------------------------------------------------------------------------- entry points
_CHECKS: dict[type, tuple[Callable[..., None], ...]] = {
    LossSpec: (check_loss_gradient, check_loss_values, check_loss_confident, check_loss_extreme_logits,
               check_loss_leaves_inputs_unchanged, check_loss_grad_one, check_loss_compiled_row_grad,
               check_loss_compiled_predict, check_loss_optimum_logits),
    OptimizerSpec: (check_optimizer_descends, check_optimizer_deterministic, check_optimizer_pickle,
                    check_optimizer_lr_grid),
    DatasetSpec: (check_dataset_arrays, check_dataset_split),
}


def checks_for(spec: OptimizerSpec | LossSpec | DatasetSpec) -> tuple[Callable[..., None], ...]:
    """The checks that apply to ``spec`` (an OptimizerSpec, LossSpec or DatasetSpec)."""
    for kind, checks in _CHECKS.items():
        if isinstance(spec, kind):
            return checks
    raise TypeError(f"not a plugin spec: {spec!r}")


def check_plugin(spec: OptimizerSpec | LossSpec | DatasetSpec) -> None:
    """Run every check for ``spec``; the first failure raises AssertionError."""
    for check in checks_for(spec):
        check(spec)


def parametrize_with_checks(specs):
    """A ``pytest.mark.parametrize`` over (spec, check) pairs, one test per check."""
    import pytest  # here, not at the top: the kit's checks run without pytest installed

    cases = [pytest.param(spec, check, id=f"{spec.name}-{check.__name__}")
             for spec in specs for check in checks_for(spec)]
    return pytest.mark.parametrize("spec, check", cases)
