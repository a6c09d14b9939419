"""The compiled evaluation gives the numpy evaluation's rows, and is used only by capability.

Per epoch, ``trainer._Evaluator`` either calls the plugins' own methods on the
stacked parts (``_numpy_row``, the reference) or the compiled evaluation
(``harness.learning.evaluation``). Both are computed here on the same model
state, for every built-in loss, plain and batch-norm models, each activation,
both dtypes and states from trained-looking to diverged (huge, infinite and NaN
logits, and logits tied within rounding). Every stored column must be equal bit
for bit (losses, scores, confusion counts), ``bn_batch_shift`` to 1e-12 (its
batch sums run in another order). Whole runs trained once per evaluation path
store equal records.
"""
import json
import math
import zlib

import numpy as np
import pytest

from harness import testing
from harness.learning import evaluation, kernels, metrics
from harness.learning.model import MLP
from harness.learning.runconfig import RunConfig
from harness.learning.trainer import EvaluationRows, _BatchShift, _Evaluator, train
from harness.plugin import LossSpec
from harness.results.schema import RECORD_COLUMNS, SPLITS
from harness_momentum import FocalLoss
from harness_plugins.losses import make_bce, make_ce, make_wce

from digits_splits import REG, SPLITS as DIGITS

pytestmark = pytest.mark.skipif(kernels.numba is None, reason="numba not installed")

LOSSES = {"ce": make_ce, "wce": make_wce, "bce": make_bce}
STATES = ["trained", "huge", "tied", "nan"]


def _parts(rng, n_classes, sizes=(40, 13, 17), d=5, dtype="float64"):
    return {p: (rng.normal(size=(n, d)).astype(dtype), rng.integers(0, n_classes, n).astype(np.int64))
            for p, n in zip(SPLITS, sizes)}


def _set_state(model, rng, state):
    """Weights (and running statistics) of a trained model, a diverging one, or one whose logits tie."""
    for W, b in zip(model.W, model.b):
        W += rng.normal(scale=1.0, size=W.shape)
        b += rng.normal(scale=0.1, size=b.shape)
    for mean, var in zip(model.running_mean, model.running_var):
        mean[:] = rng.normal(size=mean.size)
        var[:] = rng.uniform(0.5, 2.0, size=var.size)
    if state == "huge":        # logits of 1e3..1e6 and some infinite ones
        model.W[-1] *= 10.0 ** rng.integers(3, 7, size=model.W[-1].shape)
        model.b[-1][0] = np.inf
    elif state == "tied":      # every row's logits equal in every class (or a single unit at +1e-17): rounding decides
        model.W[-1][...] = model.W[-1][:, :1]
        model.b[-1][...] = model.b[-1][0]
        if model.W[-1].shape[1] == 1:
            model.W[-1][...] = 0.0
            model.b[-1][...] = 1e-17
    elif state == "nan":
        model.W[0][0, 0] = np.nan


def _assert_rows_equal(got, want, shift_rtol=1e-12, case=None):
    assert got.keys() == want.keys(), case
    for key, value in want.items():
        if key == "test_confusion":
            assert got[key] == value, (case, key)
        elif key == "bn_batch_shift" and not math.isnan(value):
            assert got[key] == pytest.approx(value, rel=shift_rtol, abs=0), (case, key)
        else:
            assert got[key] == value or (math.isnan(got[key]) and math.isnan(value)), (case, key, got[key], value)


def _both(evaluate: _Evaluator) -> tuple[dict, dict]:
    """(compiled row, numpy row) of the same state, each with its test_confusion as the evaluator stores it."""
    assert evaluate.compiled is not None
    compiled, confusion = evaluate.compiled()
    reference, want_confusion = evaluate._numpy_row()
    compiled["test_confusion"] = json.dumps(confusion.tolist())
    reference["test_confusion"] = json.dumps(want_confusion.tolist())
    return compiled, reference


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("hidden,batch_norm", [((), False), ((7,), False), ((6, 4), False), ((6, 4), True)])
@pytest.mark.parametrize("loss_name,n_classes", [("ce", 3), ("wce", 3), ("bce", 2), ("bce", 4)])
def test_compiled_evaluation_equals_the_numpy_evaluation(loss_name, n_classes, hidden, batch_norm, activation):
    for dtype in ("float64", "float32"):
        for state in STATES:
            case = (loss_name, n_classes, hidden, batch_norm, activation, dtype, state)
            rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
            parts = _parts(rng, n_classes, dtype=dtype)
            loss = LOSSES[loss_name](parts["train"][1], n_classes)
            model = MLP(5, loss.n_outputs, hidden, activation, batch_norm=batch_norm, seed=1, dtype=dtype)
            _set_state(model, rng, state)
            shift = _BatchShift(model, parts["train"][0], 8, seed=3) if batch_norm else None
            minority = metrics.minority_class(parts["train"][1], n_classes)
            calls = []
            real = loss.predict_proba
            loss.predict_proba = lambda z: calls.append(1) or real(z)
            compiled, reference = _both(_Evaluator(model, loss, parts, n_classes, minority, shift))
            _assert_rows_equal(compiled, reference, case=case)
            if state == "trained":
                assert compiled["train_loss"] > 0 and 0 < compiled["train_accuracy"] < 1, case
                if dtype == "float64":   # (float32's wider gap declines some rows of large one-vs-rest logits)
                    assert len(calls) == 1, case     # the numpy row's own call: the kernel decided every row
            if state in ("tied", "nan"):
                assert len(calls) == 2, case   # the kernel declined rows: this evaluation took predict_proba's classes
            if batch_norm and state != "nan":
                assert compiled["bn_batch_shift"] > 0, case


@pytest.mark.parametrize("loss_name,n_classes", [("ce", 10), ("wce", 10), ("bce", 10), ("bce", 2)])
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("empty", [None, "val", "test"])
def test_digits_sized_evaluation_equals_the_numpy_evaluation(loss_name, n_classes, batch_norm, empty):
    """A realistic size (1000 rows, 64 features, 32 hidden units), an empty part too."""
    rng = np.random.default_rng(n_classes + batch_norm)
    sizes = [600, 200, 200]
    if empty:
        sizes[SPLITS.index(empty)] = 0
    parts = _parts(rng, n_classes, sizes=sizes, d=64)
    loss = LOSSES[loss_name](parts["train"][1], n_classes)
    model = MLP(64, loss.n_outputs, (32,), "relu", batch_norm=batch_norm, seed=2)
    _set_state(model, rng, "trained")
    shift = _BatchShift(model, parts["train"][0], 32, seed=4) if batch_norm else None
    compiled, reference = _both(_Evaluator(model, loss, parts, n_classes, 1, shift))
    _assert_rows_equal(compiled, reference)
    if empty:
        assert all(math.isnan(compiled[f"{empty}_{key}"]) for key in ("loss", "accuracy", "macro_f1"))


@pytest.mark.parametrize("size", [7, 32, None])
def test_batch_shift_from_the_evaluation_product_equals_its_own_product(size):
    rng = np.random.default_rng(size or 0)
    parts = _parts(rng, 3, sizes=(97, 20, 20), d=6)
    model = MLP(6, 3, (5, 4), "tanh", batch_norm=True, seed=0)
    _set_state(model, rng, "trained")
    model.W[0][:, 1] = 0.0     # a unit constant over the training set counts 0 on both paths
    shift = _BatchShift(model, parts["train"][0], size, seed=9)
    evaluate = _Evaluator(model, make_ce(parts["train"][1], 3), parts, 3, 0, shift)
    got, _ = evaluate.compiled()
    assert got["bn_batch_shift"] == pytest.approx(shift(), rel=1e-12, abs=1e-15)
    # a shift measured on other rows than the stacked training part cannot come from the product
    other = _BatchShift(model, parts["train"][0].copy(), size, seed=9)
    assert _Evaluator(model, make_ce(parts["train"][1], 3), parts, 3, 0, other).compiled is None


@pytest.mark.parametrize("seed", range(6))
def test_scores_from_counts_equal_scores_by_part(seed):
    rng = np.random.default_rng(seed)
    K = int(rng.integers(2, 13))
    counts = rng.integers(0, 5, size=(3, K, K)) * (rng.random((3, K, K)) < 0.6)
    counts[1, 0, :] = 0          # a class absent from one part
    counts[2, :, 1 % K] = 0      # a class never predicted
    parts = _parts(rng, K, sizes=(10, 10, 10))
    model = MLP(5, K, (), seed=0)
    minority = int(rng.integers(0, K))
    evaluate = _Evaluator(model, make_ce(parts["train"][1], K), parts, K, minority).compiled
    row = evaluate._row(np.zeros(30), counts, float("nan"))
    for part, want in zip(SPLITS, metrics.scores_by_part(counts, minority)):
        for key, value in want.items():
            got = row[f"{part}_{key}"]
            assert got == value or (math.isnan(got) and math.isnan(value)), (part, key, got, value)


# --------------------------------------------------------------------------- the loss's own per_sample
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softmax_per_sample_equals_the_log_softmax_formula_bit_for_bit(dtype, rng):
    """``per_sample`` of ce and wce (both evaluations call it) is ``-log_softmax(z)[i, y_i]`` (times the weight)."""
    from harness.plugin.lossmath import log_softmax

    for trial in range(60):
        k, n = int(rng.integers(2, 24)), int(rng.integers(1, 200))
        logits = (rng.normal(size=(n, k)) * rng.choice([1e-20, 1e-3, 1.0, 30.0, 1e3, 1e5])).astype(dtype)
        if trial % 3 == 0:   # non-finite entries and signed zeros
            logits[rng.integers(0, n, 4), rng.integers(0, k, 4)] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0], 4)
        y = rng.integers(0, k, n)
        for loss in (make_ce(y, k), make_wce(np.r_[np.arange(k), y], k)):
            with np.errstate(all="ignore"):
                want = -log_softmax(logits)[np.arange(n), y]
                if loss.weights is not None:
                    want *= loss.weights[y]
                got = loss.per_sample(logits, y)
            assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True), (trial, k)


# --------------------------------------------------------------------------- the prediction kernels
def _hard_logits(rng, k, dtype):
    """Ordinary rows, and rows where argmax of the logits and of predict_proba differ or nearly do."""
    eps = np.finfo(dtype).eps
    ordinary = rng.normal(scale=3.0, size=(500, k))
    near = rng.normal(scale=3.0, size=(500, k))
    if k > 1:
        top, at = near.max(axis=1), near.argmax(axis=1)
        other = (at + rng.integers(1, k, len(near))) % k
        near[np.arange(len(near)), other] = top + rng.integers(-80, 80, len(near)) * eps * np.where(
            rng.random(len(near)) < 0.5, 1.0, np.abs(top))
    else:
        near[:, 0] = rng.integers(-200, 200, len(near)) * eps * 0.5
    tiny = rng.normal(size=(300, k)) * 10.0 ** rng.integers(-20, -12, size=(300, 1))
    large = rng.normal(scale=40.0, size=(300, k))
    extreme = np.sign(rng.normal(size=(100, k))) * 1e4
    odd = np.array([[np.nan] * k, [np.inf] * k, [-np.inf] * k, [0.0] * k, [-0.0] * k])
    return np.concatenate([ordinary, near, tiny, large, extreme, odd]).astype(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss_name,n_classes", [("ce", 2), ("ce", 5), ("wce", 5), ("bce", 2), ("bce", 5)])
def test_prediction_kernels_pick_the_numpy_class_or_decline(loss_name, n_classes, dtype, rng):
    loss = LOSSES[loss_name](np.arange(3 * n_classes + 2) % n_classes, n_classes)
    kernel, params = loss.compiled_predict(dtype)
    logits = _hard_logits(rng, loss.n_outputs, dtype)
    with np.errstate(all="ignore"):
        want = np.argmax(loss.predict_proba(logits), axis=1)
    got = evaluation.predict_classes(kernel, params, logits)
    decided = got != evaluation.UNSURE
    np.testing.assert_array_equal(got[decided], want[decided])
    assert decided[:500].all()               # ordinary logits: never declined
    # not vacuous: on some of these rows the largest logit is not what predict_proba picks
    finite = np.isfinite(logits).all(axis=1)
    naive = np.argmax(logits, axis=1) if loss.n_outputs > 1 else (logits[:, 0] > 0).astype(np.int64)
    assert np.any((naive != want) & finite)


def test_the_conformance_kit_checks_prediction_kernels():
    from numba import carray, cfunc, types

    @cfunc(types.void(types.CPointer(types.float64), types.intp, types.intp, types.CPointer(types.float64),
                      types.CPointer(types.int64)))
    def first_max_of_logits(logits, n, k, params, classes):   # ignores how predict_proba rounds
        Z = carray(logits, (n, k))
        for r in range(n):
            c = 0
            for j in range(k):
                if Z[r, j] > Z[r, c]:
                    c = j
            classes[r] = c

    class Naive(type(make_ce(np.arange(4) % 2, 2))):
        def compiled_predict(self, dtype):
            return (first_max_of_logits, np.zeros(1)) if dtype == "float64" else None

    class WrongSignature(type(make_ce(np.arange(4) % 2, 2))):
        def compiled_predict(self, dtype):
            return make_ce(np.arange(4) % 2, 2).compiled_row_grad(dtype)

    spec = lambda cls: LossSpec("l", "test loss", lambda y, k: cls(k))   # noqa: E731
    with pytest.raises(AssertionError, match="argmax\\(predict_proba\\) picks"):
        testing.check_loss_compiled_predict(spec(Naive))
    with pytest.raises(AssertionError, match="signature"):
        testing.check_loss_compiled_predict(spec(WrongSignature))
    testing.check_loss_compiled_predict(spec(type(make_ce(np.arange(4) % 2, 2))))
    assert Naive(2).compiled_predict("float64") is not None


# --------------------------------------------------------------------------- capability
def test_only_models_and_losses_that_offer_it_take_the_compiled_evaluation(monkeypatch, rng):
    parts = _parts(rng, 3)
    ce = make_ce(parts["train"][1], 3)
    model = MLP(5, 3, (4,), seed=0)
    assert _Evaluator(model, ce, parts, 3, 0).compiled is not None
    assert _Evaluator(model, FocalLoss(3, 2.0), parts, 3, 0).compiled is None   # a plugin loss without the kernel

    class WrongSignature(type(ce)):
        def compiled_predict(self, dtype):
            return make_ce(np.arange(4) % 2, 2).compiled_predict("float32")   # float32 kernel for float64

    assert _Evaluator(model, WrongSignature(3), parts, 3, 0).compiled is None

    class OwnForward(MLP):
        def forward(self, X, train=False):
            return super().forward(X, train) * 2.0

    assert _Evaluator(OwnForward(5, 3, (4,), seed=0), ce, parts, 3, 0).compiled is None
    monkeypatch.setenv(kernels.ENV_SWITCH, "0")
    assert _Evaluator(model, ce, parts, 3, 0).compiled is None


def test_a_plugin_loss_without_the_kernel_still_evaluates(rng):
    parts = _parts(rng, 3)
    model = MLP(5, 3, (4,), "tanh", seed=0)
    _set_state(model, rng, "trained")
    row = _Evaluator(model, FocalLoss(3, 2.0), parts, 3, 0)()
    assert set(RECORD_COLUMNS) - set(row) == {"epoch", "updates", "samples_seen", "train_seconds", "learning_rate",
                                              "status", "reason"}
    assert np.isfinite(row["train_loss"]) and 0 <= row["test_accuracy"] <= 1


def test_runs_sharing_their_evaluation_rows_evaluate_as_alone(rng):
    parts = _parts(rng, 3)
    rows = EvaluationRows(parts, 3)
    models = [MLP(5, 3, (4,), seed=s) for s in range(2)]
    shared = [_Evaluator(m, make_ce(parts["train"][1], 3), parts, 3, 0, rows=rows)() for m in models]
    alone = [_Evaluator(m, make_ce(parts["train"][1], 3), parts, 3, 0)() for m in models]
    for got, want in zip(shared, alone):
        _assert_rows_equal(got, want, shift_rtol=0)
    assert shared[0]["train_loss"] != shared[1]["train_loss"]


# --------------------------------------------------------------------------- whole runs
def _train_on_each_evaluation(monkeypatch, config, split):
    """Records of one config trained twice on the same (compiled) training path: compiled, then numpy evaluation."""
    frames = [train(config, split=split, registry=REG)]
    monkeypatch.setattr(evaluation, "compiled_evaluation", lambda *a, **k: None)
    frames.append(train(config, split=split, registry=REG))
    return frames


@pytest.mark.parametrize("optimizer", ["bgd", "minibatch", "minibatch-bn", "sgd"])
@pytest.mark.parametrize("loss_name,classes", [("ce", 4), ("wce", 4), ("bce", 2), ("bce", 4)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_whole_run_stores_the_same_records_on_either_evaluation(monkeypatch, optimizer, loss_name, classes, dtype):
    lr = {"bgd": 0.5, "minibatch": 0.2, "minibatch-bn": 0.2, "sgd": 0.02}[optimizer]
    config = RunConfig.make("tiny", loss=loss_name, optimizer=optimizer, hidden=(8,), lr=lr, epochs=4, seed=5,
                            dtype=dtype, optimizer_params={"batch_size": 16} if "minibatch" in optimizer else None)
    fast, ref = _train_on_each_evaluation(monkeypatch, config, DIGITS[classes])
    assert fast.status.iloc[-1] == "done" and ref.train_loss.iloc[-1] < ref.train_loss.iloc[0]
    columns = [c for c in RECORD_COLUMNS if c not in ("train_seconds", "bn_batch_shift")]
    assert fast[columns].equals(ref[columns])
    np.testing.assert_allclose(fast.bn_batch_shift, ref.bn_batch_shift, rtol=1e-12, atol=0)
    assert fast.bn_batch_shift.isna().all() == (optimizer != "minibatch-bn")


@pytest.mark.parametrize("optimizer", ["bgd", "sgd", "minibatch-bn"])
def test_a_diverging_run_stores_the_same_records_on_either_evaluation(monkeypatch, optimizer):
    config = RunConfig.make("tiny", loss="ce", optimizer=optimizer, hidden=(8, 4), lr=1e30, epochs=4, seed=1,
                            optimizer_params={"batch_size": 16} if optimizer == "minibatch-bn" else None)
    fast, ref = _train_on_each_evaluation(monkeypatch, config, DIGITS[4])
    assert ref.status.iloc[-1] == "diverged"
    columns = [c for c in RECORD_COLUMNS if c not in ("train_seconds", "bn_batch_shift")]
    assert fast[columns].equals(ref[columns])
