"""The built-in losses against finite differences, scikit-learn and closed forms."""
import numpy as np
import pytest
from sklearn.metrics import log_loss
from sklearn.utils.class_weight import compute_class_weight

from harness.plugin.lossmath import class_weights
from harness.plugin.loader import load_registry
from harness_plugins.losses import make_bce, make_ce, make_wce



def _loss(name, y_train, k, **params):
    return {"ce": make_ce, "bce": make_bce, "wce": make_wce}[name](y_train, k, **params)


def _numeric_grad(loss, z, y, h=1e-6):
    num = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        old = z[i]
        z[i] = old + h
        up = loss.loss_grad(z, y, np.empty_like(z))
        z[i] = old - h
        down = loss.loss_grad(z, y, np.empty_like(z))
        z[i] = old
        num[i] = (up - down) / (2 * h)
    return num


CASES = [("ce", 2, {}), ("ce", 4, {}), ("bce", 2, {}), ("bce", 4, {}),
         ("wce", 3, {"normalisation": "balanced"}), ("wce", 3, {"normalisation": "lecture"})]


@pytest.mark.parametrize("name,k,params", CASES)
@pytest.mark.parametrize("n", [1, 6])
def test_logit_gradient_matches_central_differences(name, k, params, n, rng):
    y_train = np.r_[np.arange(9) % k, 0, 0]  # imbalanced, every class present
    loss = _loss(name, y_train, k, **params)
    z = rng.normal(scale=2.0, size=(n, loss.n_outputs))
    y = rng.integers(0, k, size=n)
    grad = np.empty_like(z)
    value = loss.loss_grad(z, y, grad)
    num = _numeric_grad(loss, z, y)
    assert np.linalg.norm(grad - num) / (np.linalg.norm(grad) + np.linalg.norm(num)) < 1e-6
    assert value == pytest.approx(loss.per_sample(z, y).mean(), rel=1e-12)


def test_ce_equals_sklearn_log_loss(rng):
    z = rng.normal(size=(50, 4))
    y = np.arange(50) % 4
    loss = make_ce(y, 4)
    proba = loss.predict_proba(z)
    assert np.allclose(proba.sum(axis=1), 1.0)
    value = loss.loss_grad(z, y, np.empty_like(z))
    assert value == pytest.approx(log_loss(y, proba, labels=range(4)), rel=1e-10)


def test_wce_weights_lecture_and_balanced():
    y = np.array([0] * 6 + [1] * 3 + [2] * 1)
    lecture = class_weights(y, 3, "lecture")
    assert np.allclose(lecture, [10 / 6, 10 / 3, 10 / 1])  # C = M / m_i
    balanced = class_weights(y, 3, "balanced")
    assert np.allclose(balanced, compute_class_weight("balanced", classes=np.arange(3), y=y))
    assert np.allclose(make_wce(y, 3, normalisation="lecture").weights, lecture)
    assert np.allclose(make_wce(y, 3).weights, balanced)  # balanced is the default


def test_wce_on_equal_class_counts_equals_ce(rng):
    y_train = np.arange(30) % 3
    z = rng.normal(size=(12, 3))
    y = rng.integers(0, 3, 12)
    g_ce, g_wce, g_lec = (np.empty_like(z) for _ in range(3))
    ce = make_ce(y_train, 3).loss_grad(z, y, g_ce)
    wce = make_wce(y_train, 3).loss_grad(z, y, g_wce)
    lec = make_wce(y_train, 3, normalisation="lecture").loss_grad(z, y, g_lec)
    assert wce == pytest.approx(ce, rel=1e-12) and np.allclose(g_wce, g_ce)
    assert lec == pytest.approx(3 * ce, rel=1e-12)  # lecture weights M/m_i = N here


def test_wce_weights_each_sample_by_its_class(rng):
    y_train = np.array([0, 0, 0, 1])
    z = rng.normal(size=(4, 2))
    y = np.array([0, 1, 1, 0])
    ce, wce = make_ce(y_train, 2), make_wce(y_train, 2, normalisation="lecture")
    assert np.allclose(wce.per_sample(z, y), ce.per_sample(z, y) * np.array([4 / 3, 4, 4, 4 / 3]))


def test_bce_on_z_equals_two_class_ce_on_zero_and_z(rng):
    z = rng.normal(scale=3.0, size=(20, 1))
    y = rng.integers(0, 2, 20)
    bce, ce = make_bce(y, 2), make_ce(y, 2)
    assert bce.n_outputs == 1
    pair = np.hstack([np.zeros_like(z), z])
    g_bce, g_ce = np.empty_like(z), np.empty_like(pair)
    assert bce.loss_grad(z, y, g_bce) == pytest.approx(ce.loss_grad(pair, y, g_ce), rel=1e-12)
    assert np.allclose(bce.per_sample(z, y), ce.per_sample(pair, y))
    assert np.allclose(g_bce[:, 0], g_ce[:, 1])  # d/dz of the same function
    assert np.allclose(bce.predict_proba(z), ce.predict_proba(pair))


def test_bce_multiclass_is_one_vs_rest_sum_with_argmax_prediction(rng):
    z = rng.normal(size=(10, 3))
    y = rng.integers(0, 3, 10)
    bce = make_bce(y, 3)
    assert bce.n_outputs == 3
    p = 1 / (1 + np.exp(-z))
    t = np.eye(3)[y]
    expected = -(t * np.log(p) + (1 - t) * np.log(1 - p)).sum(axis=1)
    assert np.allclose(bce.per_sample(z, y), expected)
    proba = bce.predict_proba(z)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(proba.argmax(axis=1), z.argmax(axis=1))


@pytest.mark.parametrize("name,k,params", CASES)
@pytest.mark.parametrize("n", [1, 3])
def test_finite_for_huge_logits(name, k, params, n, rng):
    y_train = np.arange(12) % k
    loss = _loss(name, y_train, k, **params)
    z = np.where(rng.random((n, loss.n_outputs)) < 0.5, -1e4, 1e4)
    y = rng.integers(0, k, size=n)
    grad = np.empty_like(z)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        value = loss.loss_grad(z, y, grad)
        proba = loss.predict_proba(z)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert np.all(np.isfinite(loss.per_sample(z, y))) and np.all(np.isfinite(proba))


def test_huge_logit_loss_values_are_exact():
    ce = make_ce(np.array([0, 1]), 2)
    z = np.array([[1e4, -1e4]])
    assert ce.loss_grad(z, np.array([1]), np.empty_like(z)) == pytest.approx(2e4)
    assert ce.loss_grad(z, np.array([0]), np.empty_like(z)) == pytest.approx(0.0, abs=1e-300)
    bce = make_bce(np.array([0, 1]), 2)
    zb = np.array([[-1e4]])
    assert bce.per_sample(zb, np.array([1]))[0] == pytest.approx(1e4)


def test_registered_with_documented_defaults():
    reg = load_registry(autoload=False)
    assert {"ce", "bce", "wce"} <= set(reg.losses)
    assert "one-vs-rest" in reg.loss("bce").description
    (norm,) = reg.loss("wce").params
    assert norm.name == "normalisation" and norm.default == "balanced"
    assert set(norm.choices) == {"balanced", "lecture"}
