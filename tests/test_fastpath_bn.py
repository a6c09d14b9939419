"""The compiled batch-norm kernel gives the results of the numpy path, and the right gradients.

``minibatch-bn`` trains through ``kernels._bn_batch_epoch`` when the fast path
is on. Both paths run from the same seed (``HARNESS_FASTPATH=1`` / ``0``):
per-epoch losses, final parameters and the running means and variances (what
the evaluation normalises with) agree to 1e-10 (relative, float64). They are
not bit for bit: the numpy path sums columns with BLAS gemv, steps with BLAS
axpy (a fused multiply-add) and its losses use numpy's exp/log, where the
kernel loops; the batch-norm arithmetic itself follows the numpy path's order
of operations. Measured: float64 agrees to about 1e-13 relative, and a batch
of one with relu bit for bit. The exception is the bias of each batch-norm layer:
batch norm subtracts it again, so its gradient is zero in exact arithmetic and
both paths hold rounding noise there (|b| ~ 1e-17). Those biases are compared
absolutely, and the test asserts that they stay noise. Float32 gets the 2e-4 of
test_fastpath.py for the same reason.

Independent of both paths: the kernel's gradient of one batch against central
finite differences of a batch-norm network written out here in plain numpy,
and its running statistics against the same hand-written forward.
"""
import itertools

import numpy as np
import pytest

from harness.learning import kernels
from harness.learning.model import MLP
from harness.learning.runconfig import RunConfig
from harness.learning.schedules import make_schedule
from harness.learning.trainer import train_epoch
from harness_plugins.losses import make_ce
from harness_plugins.optimizers import PlainGD

from digits_splits import LOSS_COLUMNS, N_TRAIN, SPLITS, X_DIGITS, Y_DIGITS, on_both_paths

pytestmark = pytest.mark.skipif(kernels.numba is None, reason="numba not installed")


def _tol(dtype):
    return 1e-10 if dtype == "float64" else 2e-4


def _both_paths(monkeypatch, classes, **kw):
    """Train one minibatch-bn config on each path: [(records, parameters, running means, running vars)]."""
    out = []
    config = RunConfig.make("tiny", optimizer="minibatch-bn", **kw)
    for compiled, frame, model in on_both_paths(monkeypatch, config, SPLITS[classes]):
        assert (kernels.plan_for(model, PlainGD("shuffled", 2, True), make_ce(np.arange(4) % 2, 2)) is not None) \
            == compiled
        hidden_bias = np.zeros(model.flat_params.size, bool)
        for b in model.b[:-1]:
            start = (b.__array_interface__["data"][0] - model.flat_params.__array_interface__["data"][0]) \
                // b.itemsize
            hidden_bias[start:start + b.size] = True
        out.append((frame, model.flat_params.copy(), np.concatenate(model.running_mean),
                    np.concatenate(model.running_var), hidden_bias))
    return out


def _assert_same_run(fast, ref, dtype):
    (f, p_f, m_f, v_f, noise), (r, p_r, m_r, v_r, _) = fast, ref
    tol = _tol(dtype)
    tiny = 1e-14 if dtype == "float64" else 1e-6   # relative comparison, absolute only next to zero
    assert f.status.tolist() == r.status.tolist() and f.reason.tolist() == r.reason.tolist()
    assert f.updates.tolist() == r.updates.tolist() and f.samples_seen.tolist() == r.samples_seen.tolist()
    np.testing.assert_allclose(f[LOSS_COLUMNS].to_numpy(), r[LOSS_COLUMNS].to_numpy(), rtol=tol, atol=tiny)
    np.testing.assert_allclose(p_f[~noise], p_r[~noise], rtol=tol, atol=tiny)
    np.testing.assert_allclose(m_f, m_r, rtol=tol, atol=tiny)
    np.testing.assert_allclose(v_f, v_r, rtol=tol, atol=tiny)
    bias_noise = 1e-12 if dtype == "float64" else 1e-4   # zero gradient in exact arithmetic: noise on both paths
    assert noise.any() and np.abs(p_f[noise]).max() < bias_noise and np.abs(p_r[noise]).max() < bias_noise


CASES = list(itertools.product([7, 32, N_TRAIN], [(32,), (16, 8)], ["relu", "tanh"], ["ce", "bce", "wce"],
                               ["float64", "float32"]))
QUICK = {(32, (16, 8), "relu", "ce", "float64"), (7, (32,), "tanh", "wce", "float32"),
         (N_TRAIN, (16, 8), "tanh", "bce", "float64")}


@pytest.mark.parametrize("batch,hidden,activation,loss,dtype", [
    pytest.param(*case, marks=() if case in QUICK else pytest.mark.slow) for case in CASES])
def test_bn_fast_path_equals_reference_path(monkeypatch, batch, hidden, activation, loss, dtype):
    """batch N_TRAIN is the full training set (one shuffled batch per epoch)."""
    classes = 2 if loss == "bce" else 4
    kw = dict(loss=loss, activation=activation, hidden=hidden, dtype=dtype, lr=0.1, epochs=3, seed=3,
              schedule="inverse", decay=0.05, optimizer_params={"batch_size": batch})
    fast, ref = _both_paths(monkeypatch, classes, **kw)
    _assert_same_run(fast, ref, dtype)
    frame = ref[0]
    assert len(frame) == 4 and frame.status.iloc[-1] == "done"
    assert frame.train_loss.iloc[-1] < frame.train_loss.iloc[0]          # it trained: not a vacuous comparison
    assert np.abs(ref[2]).max() > 0 and np.abs(ref[3] - 1).max() > 0     # the running statistics moved


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bn_diverging_run_diverges_at_the_same_update(monkeypatch, dtype):
    kw = dict(loss="ce", activation="relu", hidden=(8, 4), dtype=dtype, lr=1e30, epochs=5, seed=1,
              optimizer_params={"batch_size": 16})
    fast, ref = _both_paths(monkeypatch, 4, **kw)
    assert ref[0].status.iloc[-1] == "diverged"
    assert fast[0].status.tolist() == ref[0].status.tolist() and fast[0].reason.iloc[-1] == ref[0].reason.iloc[-1]
    assert fast[0].updates.tolist() == ref[0].updates.tolist()


def _epochs(use_fast, batch, hidden, dtype, epochs=3):
    """Train a batch-norm MLP epoch by epoch through train_epoch (no optimizer check: batch 1 is allowed)."""
    X, y = X_DIGITS[:200].astype(dtype), Y_DIGITS[:200].astype(np.int64)
    model = MLP(64, 10, hidden, "tanh", batch_norm=True, seed=0, dtype=dtype)
    optimizer = PlainGD("shuffled", batch)
    if not use_fast:
        optimizer.step_is_plain_gd = False   # an instance without the capability: the numpy path
    loss = make_ce(y, 10)
    assert (kernels.plan_for(model, optimizer, loss) is not None) == use_fast
    rng, lr_at, t = np.random.default_rng(0), make_schedule("inverse", 0.05, 1e-3), 0
    evaluations = []
    for _ in range(epochs):
        t += train_epoch(model, optimizer, loss, X, y, rng, lr_at, t)[0]
        evaluations.append(model.forward(X, train=False).copy())
    return model, np.array(evaluations)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("hidden", [(32,), (16, 8)])
def test_batches_of_one_behave_as_on_the_numpy_path(hidden, dtype):
    """A batch of one has variance 0: x-hat = 0, so the BN layers output beta and the first layer gets no gradient."""
    (fast, eval_fast), (ref, eval_ref) = (_epochs(flag, 1, hidden, dtype) for flag in (True, False))
    tol = _tol(dtype)
    np.testing.assert_allclose(fast.flat_params, ref.flat_params, rtol=tol, atol=tol)
    for a, b in zip(fast.running_mean + fast.running_var, ref.running_mean + ref.running_var):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    np.testing.assert_allclose(eval_fast, eval_ref, rtol=tol, atol=tol)
    initial = MLP(64, 10, hidden, "tanh", batch_norm=True, seed=0, dtype=dtype)
    np.testing.assert_array_equal(fast.W[0], initial.W[0])      # exactly zero gradient under x-hat = 0
    assert not np.array_equal(fast.W[-1], initial.W[-1])        # while the output layer trained
    # running variance: 0.9^t * 1 + 0 (batch variance 0), after 3 epochs of 200 updates
    np.testing.assert_allclose(fast.running_var[0], 0.9 ** 600, rtol=1e-3 if dtype == "float32" else 1e-9)


# ---------------------------------------------------------------- independent: a BN network written out here
def _unpack(flat, sizes):
    """(W, b, gamma, beta) per hidden layer and (W, b) of the output, from the model's flat buffer order."""
    layers, pos = [], 0
    for i, (fi, fo) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = flat[pos:pos + fi * fo].reshape(fi, fo)
        pos += fi * fo
        b = flat[pos:pos + fo]
        pos += fo
        if i < len(sizes) - 2:
            layers.append((W, b, flat[pos:pos + fo], flat[pos + fo:pos + 2 * fo]))
            pos += 2 * fo
        else:
            layers.append((W, b))
    return layers


def _plain_bn_loss(flat, sizes, X, y, eps=1e-5):
    """Mean softmax cross-entropy of a tanh BN network with batch statistics; also each layer's (mean, var)."""
    a, stats = X, []
    for W, b, gamma, beta in _unpack(flat, sizes)[:-1]:
        z = a @ W + b
        mean, var = z.mean(axis=0), z.var(axis=0)
        stats.append((mean, var))
        a = np.tanh(gamma * (z - mean) / np.sqrt(var + eps) + beta)
    W, b = _unpack(flat, sizes)[-1]
    logits = a @ W + b
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(y)), y].mean(), stats


def _kernel_gradient(model, X, y, idx):
    """One batch through the compiled kernel with learning rate 0: its gradients and running statistics."""
    loss = make_ce(y, model.sizes[-1])
    plan = kernels.plan_for(model, PlainGD("shuffled", len(idx)), loss)
    assert plan is not None and plan.batch_norm
    before = model.flat_params.copy()
    kernels.run_epoch(plan, [idx], X, y, np.zeros(1))
    np.testing.assert_array_equal(model.flat_params, before)
    return model.flat_grads.copy()


def test_bn_kernel_gradient_matches_finite_differences_of_a_hand_written_network(rng):
    X = rng.normal(size=(20, 6))
    y = rng.integers(0, 3, size=20).astype(np.int64)
    idx = rng.permutation(20)[:7]
    model = MLP(6, 3, (5, 4), "tanh", batch_norm=True, seed=2)
    model.flat_params[:] += rng.normal(scale=0.3, size=model.flat_params.size)  # gamma != 1, beta != 0, b != 0
    flat = model.flat_params.copy()
    grads = _kernel_gradient(model, X, y, idx)
    h = 1e-6
    numeric = np.empty_like(flat)
    for i in range(flat.size):
        up, down = flat.copy(), flat.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = (_plain_bn_loss(up, model.sizes, X[idx], y[idx])[0]
                      - _plain_bn_loss(down, model.sizes, X[idx], y[idx])[0]) / (2 * h)
    np.testing.assert_allclose(grads, numeric, rtol=1e-6, atol=1e-8)
    assert np.abs(numeric).max() > 1e-3
    # running statistics after one batch: (1 - 0.1) * initial + 0.1 * batch statistic (unbiased variance)
    _, stats = _plain_bn_loss(flat, model.sizes, X[idx], y[idx])
    for l, (mean, var) in enumerate(stats):
        np.testing.assert_allclose(model.running_mean[l], 0.1 * mean, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(model.running_var[l], 0.9 + 0.1 * var * 7 / 6, rtol=1e-12)


def test_a_batch_of_one_normalises_with_one_over_sqrt_eps(rng):
    """Variance 0: x-hat = 0 exactly, dL/dz = 0 exactly, the running variance decays toward 0."""
    X = rng.normal(size=(5, 6))
    y = np.arange(5, dtype=np.int64) % 3
    model = MLP(6, 3, (4,), "relu", batch_norm=True, seed=0)
    model.beta[0][:] = [0.5, -0.5, 1.0, 2.0]
    grads = _kernel_gradient(model, X, y, np.array([3]))
    W0, b0, g0, beta0, W1, b1 = np.split(grads, np.cumsum([24, 4, 4, 4, 12]))
    assert not W0.any() and not b0.any() and not g0.any()       # x-hat = 0 and no gradient reaches layer 1
    hidden = np.maximum(model.beta[0], 0.0)                      # the BN layer outputs beta
    p = np.exp(hidden @ model.W[1] + model.b[1])
    p /= p.sum()
    p[y[3]] -= 1
    np.testing.assert_allclose(b1, p, rtol=1e-12)
    np.testing.assert_allclose(W1.reshape(4, 3), np.outer(hidden, p), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(model.running_var[0], np.full(4, 0.9), rtol=1e-15)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_planning_loads_the_bn_kernel_so_no_epoch_pays_for_compilation(dtype):
    model = MLP(6, 3, (5, 4), "tanh", batch_norm=True, seed=0, dtype=dtype)
    y = np.arange(8, dtype=np.int64) % 3
    loss, optimizer = make_ce(y, 3), PlainGD("shuffled", 4, True)
    assert kernels.plan_for(model, optimizer, loss) is not None
    signatures = list(kernels._bn_batch_epoch.signatures)
    assert any(str(sig[0].dtype) == dtype for sig in signatures)
    before = [m.copy() for m in model.running_mean]
    train_epoch(model, optimizer, loss, np.ones((8, 6), dtype) * np.arange(8, dtype=dtype)[:, None], y,
                np.random.default_rng(0), make_schedule("constant", 0.1))
    assert kernels._bn_batch_epoch.signatures == signatures  # the real epoch reused the warmed-up specialisation
    assert all(not np.array_equal(a, b) for a, b in zip(model.running_mean, before))  # written back to the model
