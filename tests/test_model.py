"""The MLP: every parameter's gradient vs central differences, batch norm, init, paths."""
import numpy as np
import pytest

from harness.learning.model import MLP
from harness_plugins.losses import make_bce, make_ce, make_wce

X = np.random.default_rng(42).normal(size=(7, 5))   # read-only input shared by the tests


def _loss(name, k):
    y_train = np.r_[np.arange(9) % k, 0]
    return {"ce": make_ce, "bce": make_bce, "wce": make_wce}[name](y_train, k)


def _mean_loss(model, X, y, loss):
    logits = model.forward(X, train=True)
    return loss.loss_grad(logits, y, np.empty_like(logits))


@pytest.mark.parametrize("loss_name,k", [("ce", 3), ("bce", 2), ("bce", 3), ("wce", 3)])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_every_parameter_gradient_matches_central_differences(loss_name, k, activation, batch_norm, rng):
    loss = _loss(loss_name, k)
    y = np.arange(len(X)) % k
    model = MLP(5, loss.n_outputs, (4, 3), activation, batch_norm, seed=1)
    for p in model.params:  # move away from the initial point (gamma=1, beta=0, b=0)
        p += rng.normal(scale=0.3, size=p.shape)
    model.batch_grad(X, y, loss)
    analytic = [g.copy() for g in model.grads]
    h = 1e-6
    for pos, (p, a) in enumerate(zip(model.params, analytic)):
        num = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + h
            up = _mean_loss(model, X, y, loss)
            p[i] = old - h
            down = _mean_loss(model, X, y, loss)
            p[i] = old
            num[i] = (up - down) / (2 * h)
        hidden_bias_before_bn = batch_norm and pos in (1, 5)  # b1, b2: BN subtracts them out
        if hidden_bias_before_bn:
            assert np.abs(a).max() < 1e-12 and np.abs(num).max() < 1e-7
        else:
            rel = np.linalg.norm(a - num) / (np.linalg.norm(a) + np.linalg.norm(num))
            assert rel < 1e-6, (pos, rel)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("loss_name,k", [("ce", 4), ("bce", 2), ("wce", 4)])
def test_one_sample_path_equals_batch_of_one(activation, loss_name, k):
    loss = _loss(loss_name, k)
    model = MLP(5, loss.n_outputs, (6, 4), activation, seed=2)
    x, y = X[3], np.array([2 % k])
    v1 = model.batch_grad(X[3:4], y, loss)
    batch = [g.copy() for g in model.grads]
    v2 = model.sample_grad(x, y, loss)
    assert v1 == pytest.approx(v2, rel=1e-12)
    for a, b in zip(batch, model.grads):
        assert np.allclose(a, b, rtol=1e-12, atol=1e-15)


def test_no_hidden_layer_is_a_linear_model():
    model = MLP(5, 3, (), seed=0)
    assert len(model.params) == 2
    W, b = model.params
    assert np.allclose(model.forward(X), X @ W + b)


def test_initial_weights_depend_only_on_seed_and_architecture():
    plain = MLP(5, 3, (8,), "relu", batch_norm=False, seed=7)
    bn = MLP(5, 3, (8,), "relu", batch_norm=True, seed=7)
    other = MLP(5, 3, (8,), "relu", seed=8)
    assert np.array_equal(plain.W[0], bn.W[0]) and np.array_equal(plain.W[1], bn.W[1])
    assert not np.array_equal(plain.W[0], other.W[0])
    assert np.all(bn.gamma[0] == 1) and np.all(bn.beta[0] == 0)
    # He for relu: std sqrt(2/fan_in); Glorot uniform for tanh: |W| <= sqrt(6/(fan_in+fan_out))
    wide = MLP(400, 3, (300,), "relu", seed=0)
    assert wide.W[0].std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    tanh = MLP(400, 3, (300,), "tanh", seed=0)
    assert np.abs(tanh.W[0]).max() <= np.sqrt(6 / 700)


def test_float32_option_keeps_float32_and_matches_float64():
    m64 = MLP(5, 3, (8,), "tanh", seed=3)
    m32 = MLP(5, 3, (8,), "tanh", seed=3, dtype="float32")
    assert all(p.dtype == np.float32 for p in m32.params + m32.grads)
    out32 = m32.forward(X.astype(np.float32))
    assert out32.dtype == np.float32
    assert np.allclose(out32, m64.forward(X), atol=1e-5)


def test_batch_norm_eval_mode_uses_running_statistics(rng):
    model = MLP(5, 2, (4,), "relu", batch_norm=True, seed=0)
    mean, var = rng.normal(size=4), rng.uniform(0.5, 2.0, size=4)
    model.running_mean[0][:] = mean
    model.running_var[0][:] = var
    model.gamma[0][:] = rng.normal(size=4)
    model.beta[0][:] = rng.normal(size=4)
    W1, b1, g, beta, W2, b2 = model.params
    z = X @ W1 + b1
    a = np.maximum(g * (z - mean) / np.sqrt(var + model.bn_eps) + beta, 0)
    assert np.allclose(model.forward(X, train=False), a @ W2 + b2)
    # a training pass uses the batch statistics and moves the running averages
    train_out = model.forward(X, train=True).copy()
    zhat = (z - z.mean(0)) / np.sqrt(z.var(0) + model.bn_eps)
    assert np.allclose(train_out, np.maximum(g * zhat + beta, 0) @ W2 + b2)
    m = model.bn_momentum
    assert np.allclose(model.running_mean[0], (1 - m) * mean + m * z.mean(0))
    assert np.allclose(model.running_var[0], (1 - m) * var + m * z.var(0, ddof=1))


def test_batch_norm_train_and_eval_agree_on_a_large_batch(rng):
    big = rng.normal(loc=3.0, scale=2.0, size=(4000, 5))
    model = MLP(5, 3, (16,), "tanh", batch_norm=True, seed=0)
    for _ in range(200):  # running averages converge to this batch's statistics
        train_out = model.forward(big, train=True).copy()
    eval_out = model.forward(big, train=False)
    assert np.allclose(train_out, eval_out, atol=1e-3)


def test_batch_norm_needs_a_hidden_layer_and_bad_settings_raise():
    with pytest.raises(ValueError, match="hidden layer"):
        MLP(5, 3, (), batch_norm=True)
    with pytest.raises(ValueError, match="activation"):
        MLP(5, 3, (4,), activation="softsign")
    with pytest.raises(ValueError, match="dtype"):
        MLP(5, 3, (4,), dtype="float16")


def test_parameters_and_gradients_are_views_of_one_flat_buffer_each():
    model = MLP(5, 3, (4, 2), "tanh", seed=0)
    assert [p.shape for p in model.params] == [(5, 4), (4,), (4, 2), (2,), (2, 3), (3,)]
    assert all(np.shares_memory(p, model.flat_params) for p in model.params)
    assert all(np.shares_memory(g, model.flat_grads) for g in model.grads)
    assert model.flat_params.size == sum(p.size for p in model.params)
    for (fan_in, fan_out, w_off, b_off), W, b in zip(model.layout, model.W, model.b):
        assert (fan_in, fan_out) == W.shape
        np.testing.assert_array_equal(model.flat_params[w_off:w_off + W.size].reshape(W.shape), W)
        np.testing.assert_array_equal(model.flat_params[b_off:b_off + b.size], b)
    assert model.compiled_ok and not MLP(5, 3, (4,), batch_norm=True).compiled_ok
