"""The conformance kit must catch broken plugins, not only pass good ones."""
import numpy as np
import pytest

from harness import testing
from harness.plugin import LossSpec, OptimizerSpec, Param


class _Softmax:
    """A correct softmax cross-entropy loss, the base the broken variants change."""

    def __init__(self, y_train, n_classes):
        self.n_outputs = n_classes

    def _logp(self, z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def per_sample(self, z, y):
        return -self._logp(z)[np.arange(len(y)), y]

    def loss_grad(self, z, y, out):
        np.exp(self._logp(z), out=out)
        out[np.arange(len(y)), y] -= 1
        out /= len(y)
        return float(self.per_sample(z, y).mean())

    def predict_proba(self, z):
        return np.exp(self._logp(z))


class _WrongSign(_Softmax):
    def loss_grad(self, z, y, out):
        value = super().loss_grad(z, y, out)
        out *= -1
        return value


class _Naive(_Softmax):
    def _logp(self, z):  # no max-shift: overflows at large logits
        with np.errstate(all="ignore"):
            return np.log(np.exp(z) / np.exp(z).sum(axis=1, keepdims=True))


class _Mutating(_Softmax):
    def loss_grad(self, z, y, out):
        z -= z.max(axis=1, keepdims=True)  # "saves a copy" by shifting the caller's logits in place
        return super().loss_grad(z, y, out)


class _FastPath(_Softmax):
    """A correct one-sample fast path (the shape the engine calls for one-sample updates)."""

    def loss_grad_one(self, z, label, grad):
        return self.loss_grad(z[None, :], np.array([label]), grad[None, :])


class _WrongFastPath(_Softmax):
    def loss_grad_one(self, z, label, grad):
        value = self.loss_grad(z[None, :], np.array([label]), grad[None, :])
        grad *= 2.0  # forgot that the batch gradient is already a mean
        return value


class _Gd:
    def batches(self, n, rng):
        yield rng.permutation(n)

    def step(self, params, grads, lr):
        for p, g in zip(params, grads):
            p -= lr * g


class _GlobalRandom(_Gd):
    def batches(self, n, rng):  # ignores the rng it is given
        yield np.random.permutation(n)[: max(1, n // 2)]


class _Stuck(_Gd):
    def step(self, params, grads, lr):
        pass


class _Unpicklable(_Gd):
    def step(self, params, grads, lr):
        self.schedule = lambda t: lr  # a lambda in the state: pickle cannot store it
        super().step(params, grads, lr)


def _loss(cls):
    return LossSpec("l", "test loss", cls)


def _opt(cls):
    return OptimizerSpec("o", "test optimizer", cls, (Param("unused", 1),))


def test_a_correct_loss_and_optimizer_pass_every_check():
    testing.check_plugin(_loss(lambda y, k: _Softmax(y, k)))
    testing.check_plugin(_opt(lambda unused: _Gd()))


def test_gradient_check_catches_a_wrong_sign():
    with pytest.raises(AssertionError, match="finite differences"):
        testing.check_loss_gradient(_loss(lambda y, k: _WrongSign(y, k)))


def test_extreme_logit_check_catches_an_unstable_softmax():
    with pytest.raises(AssertionError, match="1e4"):
        testing.check_loss_extreme_logits(_loss(lambda y, k: _Naive(y, k)))


def test_determinism_check_catches_global_randomness():
    with pytest.raises(AssertionError, match="same seed"):
        testing.check_optimizer_deterministic(_opt(lambda unused: _GlobalRandom()))


def test_descent_check_catches_an_optimizer_that_does_not_move():
    with pytest.raises(AssertionError, match="convex"):
        testing.check_optimizer_descends(_opt(lambda unused: _Stuck()))


def test_parametrize_with_checks_makes_one_case_per_check():
    mark = testing.parametrize_with_checks([_loss(lambda y, k: _Softmax(y, k)), _opt(lambda unused: _Gd())])
    ids = [p.id for p in mark.args[1]]
    assert ids == [f"l-{c.__name__}" for c in testing.checks_for(_loss(None))] + \
                  [f"o-{c.__name__}" for c in testing.checks_for(_opt(None))]


def test_inputs_check_catches_a_loss_that_changes_the_callers_logits():
    with pytest.raises(AssertionError, match="loss_grad modified the logits"):
        testing.check_loss_leaves_inputs_unchanged(_loss(lambda y, k: _Mutating(y, k)))
    testing.check_loss_leaves_inputs_unchanged(_loss(lambda y, k: _Softmax(y, k)))


def test_fast_path_check_passes_a_correct_one_and_catches_a_wrong_one():
    testing.check_loss_grad_one(_loss(lambda y, k: _FastPath(y, k)))
    with pytest.raises(AssertionError, match="loss_grad_one's gradient differs"):
        testing.check_loss_grad_one(_loss(lambda y, k: _WrongFastPath(y, k)))


def test_unpicklable_optimizer_state_gets_one_clear_message():
    with pytest.raises(AssertionError) as err:
        testing.check_optimizer_pickle(_opt(lambda unused: _Unpicklable()))
    message = str(err.value)
    assert message.startswith("o: the optimizer does not pickle after some steps")
    assert "keep only picklable state" in message and "\n" not in message


def test_row_kernel_check_passes_the_built_ins_and_catches_a_wrong_kernel():
    """The compiled training kernel must agree with per_sample and loss_grad row by row."""
    from harness_plugins.losses import make_bce, make_ce

    ce_type, bce_type = type(make_ce(np.arange(4) % 2, 2)), type(make_bce(np.arange(4) % 2, 2))

    class WrongKernel(ce_type):   # softmax cross-entropy's methods, a sigmoid kernel
        def compiled_row_grad(self, dtype):
            return make_bce(np.arange(4) % 2, 2).compiled_row_grad(dtype)

    class WrongSignature(ce_type):
        def compiled_row_grad(self, dtype):
            return make_ce(np.arange(4) % 2, 2).compiled_predict(dtype)

    spec = lambda cls: LossSpec("l", "test loss", lambda y, k: cls(k))   # noqa: E731
    with pytest.raises(AssertionError, match="per_sample gives"):
        testing.check_loss_compiled_row_grad(spec(WrongKernel))
    with pytest.raises(AssertionError, match="signature"):
        testing.check_loss_compiled_row_grad(spec(WrongSignature))
    testing.check_loss_compiled_row_grad(spec(ce_type))
    testing.check_loss_compiled_row_grad(LossSpec("b", "test loss", lambda y, k: bce_type(k)))


def test_optimum_check_passes_the_built_ins_and_catches_a_wrong_solver():
    """The convex reference a loss offers must be an affine map's logits that no nearby linear model beats."""
    from harness_plugins.losses import make_bce, make_ce, make_wce

    ce_type = type(make_ce(np.arange(4) % 2, 2))

    class Unsolved(ce_type):   # the zero map: a linear model, but far from the minimum
        def optimum_logits(self, X, y):
            return np.zeros((len(y), self.n_outputs))

    class NotLinear(ce_type):  # the true optimum bent by a square: no affine map gives it
        def optimum_logits(self, X, y):
            return super().optimum_logits(X, y) + X[:, :1] ** 2

    spec = lambda cls: LossSpec("l", "test loss", lambda y, k: cls(k))   # noqa: E731
    with pytest.raises(AssertionError, match="not a minimum"):
        testing.check_loss_optimum_logits(spec(Unsolved))
    with pytest.raises(AssertionError, match="not an affine function"):
        testing.check_loss_optimum_logits(spec(NotLinear))
    for make in (make_ce, make_bce, make_wce):
        testing.check_loss_optimum_logits(LossSpec("b", "built-in", make))
