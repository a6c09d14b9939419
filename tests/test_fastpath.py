"""The compiled fast path gives the results of the general numpy path, and is used only by capability.

Every built-in optimizer x loss x activation x architecture x dtype x schedule
trains through both paths (``HARNESS_FASTPATH=1`` / ``0``) from the same seed;
per-epoch losses and final parameters must agree to 1e-10 in float64. Float32
gets 2e-4: both paths round every operation to 6e-8 but sum in different
orders (BLAS blocks vs loops, exp/log of float32 vs numpy's), and a few
epochs of training amplify those last-bit differences.
"""
import importlib.util
import itertools

import numpy as np
import pytest

from harness.learning import kernels
from harness.learning.model import MLP
from harness.learning.runconfig import RunConfig
from harness.learning.schedules import make_schedule
from harness.learning.trainer import train, train_epoch
from harness.plugin.loader import load_registry
from harness_plugins.losses import make_bce, make_ce, make_wce
from harness_plugins.optimizers import PlainGD

from digits_splits import LOSS_COLUMNS, SPLITS, X_DIGITS, Y_DIGITS, on_both_paths

pytestmark = pytest.mark.skipif(kernels.numba is None, reason="numba not installed")

def _both_paths(monkeypatch, classes=4, **kw):
    """Train one config on each path; returns [(records, final parameters)] for fast, then reference."""
    return [(frame, model.flat_params.copy())
            for _, frame, model in on_both_paths(monkeypatch, RunConfig.make("tiny", **kw), SPLITS[classes])]


@pytest.mark.parametrize("optimizer,loss,activation,hidden,dtype,schedule", list(itertools.product(
    ["point", "sgd", "minibatch", "bgd"], ["ce", "bce", "bce-ovr", "wce"], ["relu", "tanh", "sigmoid"],
    [(), (8, 4)], ["float64", "float32"], ["constant", "inverse"])))
@pytest.mark.slow
def test_fast_path_equals_reference_path(monkeypatch, optimizer, loss, activation, hidden, dtype, schedule):
    classes = 2 if loss == "bce" else 4  # bce: one sigmoid unit on 2 classes; bce-ovr: one per class
    kw = dict(loss=loss.replace("-ovr", ""), optimizer=optimizer, activation=activation, hidden=hidden, dtype=dtype,
              schedule=schedule, decay=0.05 if schedule == "inverse" else 0.0, lr=0.1, epochs=3, seed=3,
              optimizer_params={"batch_size": 16} if optimizer == "minibatch" else None)
    (fast, p_fast), (ref, p_ref) = _both_paths(monkeypatch, classes, **kw)
    tol = 1e-10 if dtype == "float64" else 2e-4
    assert fast.status.tolist() == ref.status.tolist() and len(fast) == 4
    assert fast.updates.tolist() == ref.updates.tolist()
    assert fast.learning_rate.tolist() == ref.learning_rate.tolist()
    np.testing.assert_allclose(fast[LOSS_COLUMNS].to_numpy(), ref[LOSS_COLUMNS].to_numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(p_fast, p_ref, rtol=tol, atol=tol)
    assert ref.train_loss.iloc[-1] < ref.train_loss.iloc[0]  # it trained: the comparison is not vacuous


@pytest.mark.parametrize("optimizer", ["sgd", "minibatch", "bgd"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_diverging_run_diverges_at_the_same_update(monkeypatch, optimizer, dtype):
    kw = dict(loss="ce", optimizer=optimizer, activation="relu", hidden=(8, 4), dtype=dtype, lr=1e30,
              epochs=5, seed=1)
    (fast, _), (ref, _) = _both_paths(monkeypatch, **kw)
    assert ref.status.iloc[-1] == "diverged"
    assert fast.status.tolist() == ref.status.tolist()
    assert fast.reason.iloc[-1] == ref.reason.iloc[-1]
    assert fast.updates.tolist() == ref.updates.tolist()



@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("weight", [np.inf, np.nan, "huge"])
def test_skipping_relu_zeros_never_hides_a_non_finite_or_huge_weight(dtype, weight):
    """The per-sample kernel skips rows whose input is an exact relu zero (0 * w adds +-0) only while its
    bounds prove those rows' weights finite; an inf or NaN weight on a dead unit's row must still turn
    the logits (0 * inf = NaN) and the epoch's status exactly as the numpy path does."""
    X, y = X_DIGITS[:40].astype(dtype), Y_DIGITS[:40].astype(np.int64)
    results = []
    for use_fast in (True, False):
        loss = make_ce(y, 10)
        model = MLP(64, 10, (6,), "relu", seed=0, dtype=dtype)
        W0, b0, W1 = model.params[0], model.params[1], model.params[2]
        W0[:, 0] = 0
        b0[0] = -1       # unit 0 is dead: its relu output is exactly 0 for every sample
        W1[0, :] = np.finfo(dtype).max / 4 if weight == "huge" else weight
        optimizer = PlainGD("shuffled", 1)
        if not use_fast:
            optimizer.step_is_plain_gd = False
        assert (kernels.plan_for(model, optimizer, loss) is not None) == use_fast
        got = train_epoch(model, optimizer, loss, X, y, np.random.default_rng(0), make_schedule("constant", 0.1))
        results.append((got[0], got[3], model.flat_params.copy()))
    (done_fast, bad_fast, p_fast), (done_ref, bad_ref, p_ref) = results
    assert (done_fast, bad_fast) == (done_ref, bad_ref)
    assert (bad_ref is None) == (weight == "huge")
    np.testing.assert_allclose(p_fast, p_ref, rtol=1e-10 if dtype == "float64" else 2e-4, atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 7, 64])
@pytest.mark.parametrize("optimizer,hidden", [("bgd", (8, 4)), ("bgd", ()), ("minibatch", (8,))])
def test_a_batch_run_in_chunks_gives_the_reference_results(monkeypatch, chunk, optimizer, hidden):
    """``_batch_epoch`` runs a batch ``CHUNK_ROWS`` rows at a time, adding up the chunks' gradients; with
    chunks smaller than the batches (90 training rows; batches of 16) it must still train as the numpy
    path does, to rounding."""
    monkeypatch.setattr(kernels, "CHUNK_ROWS", chunk)
    kw = dict(loss="ce", optimizer=optimizer, activation="relu", hidden=hidden, lr=0.1, epochs=3, seed=3,
              optimizer_params={"batch_size": 16} if optimizer == "minibatch" else None)
    (fast, p_fast), (ref, p_ref) = _both_paths(monkeypatch, 4, **kw)
    assert fast.updates.tolist() == ref.updates.tolist()
    np.testing.assert_allclose(fast[LOSS_COLUMNS].to_numpy(), ref[LOSS_COLUMNS].to_numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(p_fast, p_ref, rtol=1e-10, atol=1e-10)
    assert ref.train_loss.iloc[-1] < ref.train_loss.iloc[0]


def test_a_batch_within_one_chunk_is_the_arithmetic_of_one_pass(monkeypatch):
    """A batch no longer than a chunk is computed exactly as without chunking: the same products and sums,
    so the weights agree bit for bit whether the chunk is the batch's size or far larger."""
    X, y = X_DIGITS[:200], Y_DIGITS[:200].astype(np.int64)
    params = []
    for chunk in (200, 10**6):
        monkeypatch.setattr(kernels, "CHUNK_ROWS", chunk)
        model = MLP(64, 10, (16, 8), "relu", seed=0)
        optimizer = PlainGD("full")
        assert kernels.plan_for(model, optimizer, make_ce(y, 10)) is not None
        for epoch in range(3):
            train_epoch(model, optimizer, make_ce(y, 10), X, y, np.random.default_rng(0),
                        make_schedule("constant", 0.1), epoch)
        params.append(model.flat_params.copy())
    np.testing.assert_array_equal(params[0], params[1])
    assert not np.array_equal(params[0], MLP(64, 10, (16, 8), "relu", seed=0).flat_params)


@pytest.mark.slow
def test_epochs_agree_on_a_larger_problem_update_by_update():
    """Digits, 128 hidden units, three epochs of each batching: parameters agree to 1e-10."""
    X, y = X_DIGITS, Y_DIGITS.astype(np.int64)
    for batch in (1, 32, len(y)):
        params = []
        for use_fast in (True, False):
            loss = make_ce(y, 10)
            model = MLP(64, 10, (128,), "relu", seed=0)
            optimizer = PlainGD("full") if batch == len(y) else PlainGD("shuffled", batch)
            if not use_fast:
                optimizer.step_is_plain_gd = False  # an instance without the capability: general path
            assert (kernels.plan_for(model, optimizer, loss) is not None) == use_fast
            rng, lr_at, t = np.random.default_rng(0), make_schedule("inverse", 0.05, 1e-3), 0
            for _ in range(3):
                t += train_epoch(model, optimizer, loss, X, y, rng, lr_at, t)[0]
            params.append(model.flat_params.copy())
        np.testing.assert_allclose(params[0], params[1], rtol=1e-10, atol=1e-10)
        assert np.abs(params[0]).max() > 0


def test_only_models_optimizers_and_losses_that_offer_it_take_the_fast_path(monkeypatch):
    ce = make_ce(np.arange(10) % 3, 3)
    plain = PlainGD("shuffled", 8)
    assert kernels.plan_for(MLP(5, 3, (4,), seed=0), plain, ce) is not None
    bn_plan = kernels.plan_for(MLP(5, 3, (4,), batch_norm=True, seed=0), PlainGD("shuffled", 8, True), ce)
    assert bn_plan is not None and bn_plan.batch_norm  # batch norm has its own kernel (_bn_batch_epoch)

    class StatefulGD(PlainGD):
        step_is_plain_gd = False

    assert kernels.plan_for(MLP(5, 3, (4,), seed=0), StatefulGD("shuffled", 8), ce) is None

    class NoKernel:  # a loss that only implements the Loss protocol
        n_outputs = 3

    assert kernels.plan_for(MLP(5, 3, (4,), seed=0), plain, NoKernel()) is None

    class WrongSignature(type(ce)):
        def compiled_row_grad(self, dtype):
            return make_bce(np.arange(4) % 2, 2).compiled_row_grad("float32")  # float32 kernel for float64

    assert kernels.plan_for(MLP(5, 3, (4,), seed=0), plain, WrongSignature(3)) is None
    monkeypatch.setenv(kernels.ENV_SWITCH, "0")
    assert kernels.plan_for(MLP(5, 3, (4,), seed=1), plain, ce) is None


def test_out_of_range_batch_indices_raise_instead_of_reaching_the_kernel():
    class Overshoot(PlainGD):
        def batches(self, n_samples, rng):
            yield np.array([0, n_samples])

    X, y = X_DIGITS[:10], Y_DIGITS[:10] % 3
    model = MLP(64, 3, (4,), seed=0)
    before = model.flat_params.copy()
    with pytest.raises(IndexError, match="out of range"):
        train_epoch(model, Overshoot("shuffled", 2), make_ce(y, 3), X, y, np.random.default_rng(0),
                    make_schedule("constant", 0.1))
    np.testing.assert_array_equal(model.flat_params, before)


@pytest.mark.skipif(importlib.util.find_spec("harness_momentum") is None, reason="harness-momentum not installed")
def test_a_plugin_without_a_fast_path_trains_through_the_general_path(monkeypatch):
    reg = load_registry()
    momentum = reg.get("optimizers", "momentum").factory()
    focal = reg.get("losses", "focal").factory(SPLITS[4].y_train, 4, gamma=2.0)
    model = MLP(64, 4, (8,), seed=0)
    assert kernels.plan_for(model, momentum, make_ce(SPLITS[4].y_train, 4)) is None
    assert kernels.plan_for(model, PlainGD("shuffled", 8), focal) is None
    runs = []
    for flag in ("1", "0"):
        monkeypatch.setenv(kernels.ENV_SWITCH, flag)
        for opt, loss in (("momentum", "ce"), ("minibatch", "focal")):
            runs.append(train(RunConfig.make("tiny", loss, opt, epochs=3, hidden=(8,), lr=0.05),
                              split=SPLITS[4], registry=reg))
    for with_fast, without in zip(runs[:2], runs[2:]):
        assert with_fast.status.iloc[-1] == "done"
        assert with_fast.train_loss.iloc[-1] < with_fast.train_loss.iloc[0]
        np.testing.assert_array_equal(with_fast[LOSS_COLUMNS].to_numpy(), without[LOSS_COLUMNS].to_numpy())


@pytest.mark.parametrize("name,k", [("ce", 4), ("wce", 4), ("bce", 2), ("bce", 4)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_row_kernels_equal_the_losses_numpy_code_including_huge_logits(name, k, dtype, rng):
    import ctypes

    y_train = np.r_[np.arange(12) % k, 0, 0, 0]  # unequal counts: wce weights differ from 1
    loss = {"ce": make_ce, "wce": make_wce, "bce": make_bce}[name](y_train, k)
    kernel, params = loss.compiled_row_grad(dtype)
    ct = ctypes.c_double if dtype == "float64" else ctypes.c_float
    ptr = lambda a, c=ct: a.ctypes.data_as(ctypes.POINTER(c))  # noqa: E731
    logits = rng.normal(scale=3.0, size=(8, loss.n_outputs)).astype(dtype)
    logits[0, 0], logits[1, -1] = 1e4, -1e4
    tol = 1e-12 if dtype == "float64" else 1e-5
    for row, label in zip(logits, rng.integers(0, k, size=len(logits))):
        g = np.empty_like(row)
        value = kernel.ctypes(ptr(row), row.size, int(label), ptr(params, ctypes.c_double), ptr(g))
        expected_g = np.empty((1, row.size), dtype)
        expected = loss.loss_grad(row[None, :].copy(), np.array([label]), expected_g)
        assert np.isfinite(value) and value == pytest.approx(expected, rel=tol, abs=tol)
        np.testing.assert_allclose(g, expected_g[0], rtol=tol, atol=tol)


def test_planning_loads_both_kernels_so_no_epoch_pays_for_compilation():
    model = MLP(6, 3, (5,), "sigmoid", seed=0, dtype="float32")
    assert kernels.plan_for(model, PlainGD("shuffled", 4), make_ce(np.arange(9) % 3, 3)) is not None
    for kernel in (kernels._sample_epoch, kernels._batch_epoch):
        signatures = kernel.signatures
        assert any(str(sig[0].dtype) == "float32" for sig in signatures)
        X, y = np.ones((8, 6), np.float32), np.arange(8) % 3
        train_epoch(model, PlainGD("shuffled", 1 if kernel is kernels._sample_epoch else 4),
                    make_ce(y, 3), X, y, np.random.default_rng(0), make_schedule("constant", 0.1))
        assert kernel.signatures == signatures  # the real epoch reused the warmed-up specialisation


def test_a_cached_read_only_split_trains_on_the_kernels_compiled_before_the_clock():
    # the split cache hands out read-only arrays; numba types arrays by writability, so passing them to a
    # kernel would compile a second signature inside the first epoch. A run takes writable copies instead.
    from harness.learning.split import load_split
    from harness.learning.trainer import run_parts

    split = load_split("iris", seed=0, registry=load_registry())
    assert not split.X_train.flags.writeable
    parts = run_parts(split, "float64")
    assert all(X.flags.writeable and y.flags.writeable for X, y in parts.values())
    np.testing.assert_array_equal(parts["train"][0], split.X_train)
    for optimizer in ("minibatch", "minibatch-bn", "sgd"):
        train(RunConfig("iris", "ce", optimizer, lr=0.1, epochs=1, hidden=(4,)))
    kernels_used = (kernels._batch_epoch, kernels._sample_epoch, kernels._bn_batch_epoch)
    signatures = [sig for k in kernels_used for sig in k.signatures]
    assert signatures and not any("readonly" in str(sig) for sig in signatures)
