"""The convex reference optimum vs an independent minimiser of our own loss (scipy L-BFGS)."""
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.datasets import load_iris, make_classification
from sklearn.preprocessing import StandardScaler

from harness.learning.runconfig import RunConfig
from harness.learning.split import Split
from harness.learning.reference import convex_optimum
from harness.plugin import LossSpec
from harness.plugin.loader import load_registry
from harness.learning.trainer import train

REG = load_registry(autoload=False)


def _split(X, y):
    X = StandardScaler().fit_transform(X)
    names = tuple(str(c) for c in np.unique(y))
    return Split(X, y, X[:10], y[:10], X[:10], y[:10], names)


def _scipy_minimum(split, loss_name, loss_params):
    """Minimise our loss of a linear model W, b directly (L-BFGS on loss_grad)."""
    X, y = split.X_train, split.y_train
    loss = REG.loss(loss_name).factory(y, split.n_classes, **loss_params)
    d, k = X.shape[1], loss.n_outputs

    def fun(theta):
        W, b = theta[: d * k].reshape(d, k), theta[d * k:]
        logits = X @ W + b
        g = np.empty_like(logits)
        value = loss.loss_grad(logits, y, g)
        return value, np.concatenate([(X.T @ g).ravel(), g.sum(axis=0)])

    res = minimize(fun, np.zeros(d * k + k), jac=True, method="L-BFGS-B",
                   options={"maxiter": 20000, "ftol": 1e-15, "gtol": 1e-10})
    return res.fun


# iris (3 classes) and a noisy binary problem: neither is linearly separable in these features
IRIS = _split(load_iris().data[:, :2], load_iris().target)
_Xb, _yb = make_classification(300, 4, n_informative=3, n_redundant=0, flip_y=0.1,
                               weights=[0.75], random_state=0)
BINARY = _split(_Xb, _yb)


@pytest.mark.parametrize("split", [IRIS, BINARY], ids=["iris", "binary"])
@pytest.mark.parametrize("loss_name,params", [
    ("ce", {}), ("bce", {}), ("wce", {}), ("wce", {"normalisation": "lecture"})])
@pytest.mark.slow
def test_reference_equals_an_independent_minimum_of_our_loss(split, loss_name, params):
    ref = convex_optimum(split, loss_name, params, registry=REG)
    assert ref == pytest.approx(_scipy_minimum(split, loss_name, params), abs=1e-6)


def test_bgd_approaches_the_reference_from_above():
    ref = convex_optimum(BINARY, "ce", {}, registry=REG)
    df = train(RunConfig.make("b", "ce", "bgd", hidden=(), lr=2.0, epochs=200), split=BINARY, registry=REG)
    assert df.train_loss.min() >= ref - 1e-9
    assert df.train_loss.iloc[-1] - ref < 1e-4


def test_wce_reference_weights_samples_by_class():
    # with lecture weights the optimum value is N times the balanced one (same minimiser)
    balanced = convex_optimum(IRIS, "wce", {"normalisation": "balanced"}, registry=REG)
    lecture = convex_optimum(IRIS, "wce", {"normalisation": "lecture"}, registry=REG)
    assert lecture == pytest.approx(3 * balanced, rel=1e-5)


class _Registry:
    """One loss, as a registry would hand it out."""

    def __init__(self, spec):
        self.spec = spec

    def get(self, kind, name):
        assert kind == "losses" and name == self.spec.name
        return self.spec


def _without_solver(y_train, n_classes):
    loss = REG.loss("ce").factory(y_train, n_classes)
    return type("NoSolver", (), {"n_outputs": loss.n_outputs, "per_sample": staticmethod(loss.per_sample)})()


def test_a_loss_without_optimum_logits_has_no_reference():
    spec = LossSpec("no-solver", "ce without a solver", _without_solver)
    assert np.isnan(convex_optimum(IRIS, "no-solver", {}, registry=_Registry(spec)))


def _ce_solving_to(columns):
    """ce whose ``optimum_logits`` returns zero logits with ``columns`` columns (None: as many as classes)."""
    def make(y_train, n_classes):
        loss = REG.loss("ce").factory(y_train, n_classes)
        loss.optimum_logits = lambda X, y: np.zeros((len(y), columns or n_classes))
        return loss
    return make


def test_the_reference_is_the_loss_s_own_solver_scored_by_its_own_loss():
    """The engine names no loss: a plugin's optimum_logits is what it scores (here: the zero logits)."""
    spec = LossSpec("zero-solver", "ce whose 'optimum' is the zero logits", _ce_solving_to(None))
    assert convex_optimum(IRIS, "zero-solver", {}, registry=_Registry(spec)) == pytest.approx(np.log(3), rel=1e-15)
    wrong = LossSpec("bad-shape", "a solver returning the wrong shape", _ce_solving_to(7))
    with pytest.raises(ValueError, match="optimum_logits returned shape"):
        convex_optimum(IRIS, "bad-shape", {}, registry=_Registry(wrong))


def test_the_engine_names_no_loss():
    text = (Path(__file__).parents[1] / "harness" / "learning" / "reference.py").read_text()
    for name in ("ce", "bce", "wce", "weights", "LogisticRegression"):
        assert not re.search(rf"""["'.]{name}\b""", text), name
