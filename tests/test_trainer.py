"""The trainer: records, counters, determinism, paired starts, stopping, refusals, metrics."""
import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from harness.learning import metrics
from harness.plugin.specs import Refused
from harness.learning.runconfig import RunConfig
from harness.learning.split import Split
from harness.errors import UsageError
from harness.plugin.loader import load_registry
from harness.results.schema import RECORD_COLUMNS
from harness.learning.trainer import single_thread_blas, train

REG = load_registry(autoload=False)


def _split(X, y, seed=0, names=None):
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
    X_tr, X_va, y_tr, y_va = train_test_split(X_tr, y_tr, test_size=0.2, stratify=y_tr, random_state=seed)
    scaler = StandardScaler().fit(X_tr)
    names = names or tuple(str(c) for c in np.unique(y))
    return Split(scaler.transform(X_tr), y_tr, scaler.transform(X_va), y_va, scaler.transform(X_te), y_te, names)


_digits = load_digits()
DIGITS = _split(_digits.data[:600], _digits.target[:600])


def _run(optimizer="minibatch", loss="ce", split=DIGITS, **kw):
    kw.setdefault("epochs", 2)
    kw.setdefault("hidden", (16,))
    kw.setdefault("lr", 0.05)
    return train(RunConfig.make("digits-600", loss, optimizer, **kw), split=split, registry=REG)


def test_records_have_the_schema_columns_one_row_per_epoch():
    df = _run(epochs=3)
    assert list(df.columns) == list(RECORD_COLUMNS)
    assert df.epoch.tolist() == [0, 1, 2, 3]
    first = df.iloc[0]
    assert first.updates == 0 and first.samples_seen == 0 and first.train_seconds == 0.0
    assert df.train_seconds.is_monotonic_increasing
    assert set(df.status) == {"done"} and df.reason.nunique() == 1
    for col in RECORD_COLUMNS[5:-3]:
        assert df[col].notna().all(), col
    cm = np.array(json.loads(df.test_confusion.iloc[-1]))
    assert cm.shape == (10, 10) and cm.sum() == len(DIGITS.y_test)
    assert df.test_accuracy.iloc[-1] == pytest.approx(np.trace(cm) / cm.sum())


@pytest.mark.parametrize("optimizer,params,per_epoch", [
    ("bgd", {}, 1), ("point", {}, None), ("sgd", {}, None),
    ("minibatch", {"batch_size": 32}, math.ceil), ("minibatch-bn", {"batch_size": 50}, math.ceil)])
def test_work_counters(optimizer, params, per_epoch):
    n = len(DIGITS.y_train)
    df = _run(optimizer, epochs=2, optimizer_params=params)
    if per_epoch is None:
        expected = n
    elif per_epoch == 1:
        expected = 1
    else:
        b = params["batch_size"]
        expected = math.ceil(n / b) - (1 if optimizer == "minibatch-bn" and n % b == 1 else 0)
    assert df.updates.tolist() == [0, expected, 2 * expected]
    assert df.samples_seen.tolist() == [0, n, 2 * n]
    assert df.train_loss.iloc[-1] < df.train_loss.iloc[0]


def test_same_seed_is_bit_identical_and_another_seed_differs():
    a, b = _run("sgd", seed=3), _run("sgd", seed=3)
    pd.testing.assert_frame_equal(a.drop(columns="train_seconds"), b.drop(columns="train_seconds"))
    c = _run("sgd", seed=4)
    assert not np.array_equal(a.train_loss.to_numpy(), c.train_loss.to_numpy())


def test_every_optimizer_starts_from_the_same_weights():
    starts = [_run(opt, epochs=1).iloc[0] for opt in ("bgd", "point", "sgd", "minibatch")]
    for row in starts[1:]:
        assert row.train_loss == starts[0].train_loss and row.test_confusion == starts[0].test_confusion


def test_learning_rate_column_follows_the_schedule_by_updates():
    df = _run("bgd", epochs=4, lr=0.4, schedule="inverse_sqrt")
    # epoch e's last update is number t = e - 1 (t counts earlier updates)
    assert df.learning_rate.tolist() == pytest.approx([0.4] + [0.4 / math.sqrt(e) for e in (1, 2, 3, 4)])
    step = _run("minibatch", epochs=3, lr=0.4, schedule="step", decay=0.5)
    assert step.learning_rate.tolist() == pytest.approx([0.4, 0.4, 0.2, 0.1])


def test_huge_learning_rate_ends_as_diverged_without_raising():
    df = _run("sgd", epochs=5, lr=1e6)
    assert set(df.status) == {"diverged"}
    assert len(df) < 6 and ("non-finite" in df.reason.iloc[0] or "nan" in df.reason.iloc[0])


def test_stopping_rules_through_the_trainer():
    tol = _run("minibatch", epochs=50, tol=1.0)
    assert tol.status.iloc[0] == "stopped" and tol.reason.iloc[0].startswith("tol")
    assert tol.train_loss.iloc[-1] <= 1.0 < tol.train_loss.iloc[-2]
    budget = _run("minibatch", epochs=50, time_budget=1e-9)
    assert len(budget) == 2 and budget.reason.iloc[0].startswith("time_budget")
    patience = _run("sgd", epochs=60, lr=0.1, patience=2)  # too large a step: the loss stalls
    assert patience.status.iloc[0] == "stopped" and patience.reason.iloc[0].startswith("patience")
    assert patience.epoch.iloc[-1] - patience.train_loss.idxmin() == 2
    assert _run("sgd", epochs=8, lr=0.01, patience=2).status.iloc[0] == "done"
    lecture = _run("bgd", epochs=50, lecture_stop=True, lr=0.5)
    last = lecture.iloc[-1]
    assert lecture.status.iloc[0] == "stopped" and last.train_loss <= 1 / math.sqrt(last.updates)


def test_refused_combinations_raise_refused():
    with pytest.raises(Refused, match="2 samples"):
        _run("minibatch-bn", optimizer_params={"batch_size": 1})
    with pytest.raises(Refused, match="hidden"):
        _run("minibatch-bn", hidden=())


@pytest.mark.parametrize("kw,match", [
    (dict(optimizer="sdg"), "did you mean 'sgd'"),
    (dict(loss="cee"), "did you mean 'ce'"),
    (dict(optimizer="minibatch", optimizer_params={"batch_size": 0}), "batch_size"),
    (dict(optimizer="minibatch", optimizer_params={"bach_size": 8}), "unknown hyper-parameter"),
    (dict(loss="wce", loss_params={"normalisation": "sklearn"}), "normalisation"),
    (dict(activation="gelu"), "activation"),
    (dict(schedule="cosine"), "schedule"),
])
def test_unknown_names_and_bad_values_are_usage_errors(kw, match):
    with pytest.raises(UsageError, match=match):
        _run(**kw)


def test_progress_callback_sees_every_epoch():
    seen = []
    train(RunConfig.make("digits-600", "ce", "bgd", epochs=3, hidden=()), split=DIGITS, registry=REG,
          progress=lambda row: seen.append(row["epoch"]))
    assert seen == [0, 1, 2, 3]


def test_float32_and_every_loss_and_activation_run():
    for loss in ("ce", "bce", "wce"):
        for act in ("relu", "tanh", "sigmoid"):
            df = _run("minibatch", loss=loss, activation=act, dtype="float32", epochs=1)
            assert df.status.iloc[0] == "done" and np.isfinite(df.train_loss).all()


def test_loads_the_split_itself_when_none_is_given():
    with single_thread_blas():
        df = train(RunConfig.make("iris", "ce", "bgd", epochs=1, hidden=()), registry=REG)
    from harness.learning.split import load_split

    split = load_split("iris", seed=0, registry=REG)
    assert np.array(json.loads(df.test_confusion.iloc[0])).sum() == len(split.y_test)


def test_no_hidden_layer_bgd_reaches_the_logistic_regression_optimum():
    # The 5 "mean" features radius, texture, smoothness, symmetry, fractal dimension:
    # with all 30 features breast_cancer is linearly separable (optimum 0 at infinity),
    # with these the optimum is finite and unique, so "reaching it" means something.
    data = load_breast_cancer()
    X = StandardScaler().fit_transform(data.data[:, [0, 1, 4, 8, 9]])
    y = data.target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(X, y)
    optimum = skm.log_loss(y, lr.predict_proba(X))
    split = Split(X, y, X[:30], y[:30], X[:30], y[:30], tuple(data.target_names))
    df = train(RunConfig.make("bc", "ce", "bgd", hidden=(), lr=4.0, epochs=300), split=split, registry=REG)
    assert df.train_loss.iloc[-1] == pytest.approx(optimum, abs=1e-4)
    assert df.train_loss.iloc[-1] >= optimum - 1e-9  # cannot beat the optimum


# ---------------------------------------------------------------- metrics vs scikit-learn
@pytest.mark.parametrize("seed", range(8))
def test_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    y_true, y_pred = rng.integers(0, k, 40), rng.integers(0, k, 40)
    y_pred[:3] = 0
    scores, cm = metrics.evaluate(y_true, y_pred, k, minority=1)
    assert np.array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=range(k)))
    assert scores["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert scores["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert scores["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert scores["minority_recall"] == pytest.approx(
        skm.recall_score(y_true, y_pred, labels=[1], average=None, zero_division=0)[0])


def test_minority_class_comes_from_training_counts():
    assert metrics.minority_class(np.array([0, 0, 0, 1, 1, 2, 2, 2]), 3) == 1
    assert metrics.minority_class(np.array([0, 1, 1]), 3) == 2  # absent in training counts as 0
