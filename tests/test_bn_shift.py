"""``bn_batch_shift``: how far a batch's statistics stray from the training set's, for batch-norm models.

Checked against a direct numpy computation written from the definition (loops
over batches and units), on a tiny model, and NaN for models without batch norm.
"""
import math

import numpy as np
import pytest

from harness.learning import metrics
from harness.learning.model import MLP
from harness.learning.runconfig import RunConfig
from harness.learning.split import Split
from harness.learning.trainer import SHIFT_STREAM, _BatchShift, batch_rng, train
from harness.plugin.loader import load_registry

REG = load_registry(autoload=False)


def direct_shift(z: np.ndarray, batches: list) -> float:
    """The definition, unit by unit and batch by batch."""
    n, h = z.shape
    mu = [sum(z[:, j]) / n for j in range(h)]
    sigma = [math.sqrt(sum((z[i, j] - mu[j]) ** 2 for i in range(n)) / n) for j in range(h)]
    per_batch = []
    for rows in batches:
        squares = []
        for j in range(h):
            mean = sum(z[i, j] for i in rows) / len(rows)
            squares.append(0.0 if sigma[j] < 1e-12 else ((mean - mu[j]) / sigma[j]) ** 2)
        per_batch.append(math.sqrt(sum(squares) / h))
    return sum(per_batch) / len(per_batch)


def _batches(n: int, size: int, seed: int) -> list:
    """The rows of each batch: the seed's own order, consecutive chunks, a last chunk of one folded in."""
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SHIFT_STREAM,))).permutation(n)
    chunks = [order[s:s + size] for s in range(0, n, size)]
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2:] = [np.concatenate(chunks[-2:])]
    return chunks


@pytest.mark.parametrize("n,size", [(23, 5), (21, 5), (20, 5), (12, 12), (12, None), (9, 4)])
def test_batch_shift_equals_the_definition(n, size):
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, 3))
    model = MLP(3, 2, (4,), "relu", batch_norm=True, seed=7)
    model.W[0][...] = rng.normal(size=(3, 4))
    model.b[0][...] = rng.normal(size=4)
    model.W[0][:, 2] = 0.0                      # a unit constant over the set: sigma 0, counts as 0
    z = X @ model.W[0] + model.b[0]
    got = _BatchShift(model, X, size, seed=5)()
    assert got == pytest.approx(direct_shift(z, _batches(n, size or n, 5)), rel=1e-12, abs=1e-15)
    if size in (None, n):
        assert got == pytest.approx(0.0, abs=1e-12)   # one batch: its mean is the set's
    else:
        assert got > 0.05


def test_smaller_batches_stray_further():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(512, 16))
    shift = {b: metrics.batch_shift(z, np.arange(0, 512, b)) for b in (4, 16, 64)}
    assert shift[4] > shift[16] > shift[64]
    for b, value in shift.items():   # an iid batch mean strays by about 1/sqrt(b) standard deviations
        assert value == pytest.approx(1 / math.sqrt(b), rel=0.15)


def _split():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(90, 4)), rng.integers(0, 3, 90)
    return Split(X[:60], y[:60], X[60:75], y[60:75], X[75:], y[75:], ("a", "b", "c"))


def test_a_batch_norm_run_records_it_every_epoch_and_a_plain_run_records_nan():
    split = _split()
    bn = train(RunConfig.make("tiny", loss="ce", optimizer="minibatch-bn", hidden=(5,), lr=0.1, epochs=3, seed=2,
                              optimizer_params={"batch_size": 8}), split=split, registry=REG)
    assert bn["bn_batch_shift"].notna().all() and (bn["bn_batch_shift"] > 0).all()
    assert bn["bn_batch_shift"].nunique() > 1        # measured at each epoch's weights
    plain = train(RunConfig.make("tiny", loss="ce", optimizer="minibatch", hidden=(5,), lr=0.1, epochs=2, seed=2,
                                 optimizer_params={"batch_size": 8}), split=split, registry=REG)
    assert plain["bn_batch_shift"].isna().all()


def test_measuring_it_does_not_touch_the_batching_stream():
    """The trained weights, hence the losses, are the same whether or not the shift is measured."""
    split = _split()
    config = RunConfig.make("tiny", loss="ce", optimizer="minibatch-bn", hidden=(5,), lr=0.1, epochs=3, seed=2,
                            optimizer_params={"batch_size": 8})
    measured = train(config, split=split, registry=REG)
    import harness.learning.trainer as trainer

    real = trainer._BatchShift.__call__
    try:
        trainer._BatchShift.__call__ = lambda self: float("nan")
        unmeasured = train(config, split=split, registry=REG)
    finally:
        trainer._BatchShift.__call__ = real
    assert measured["train_loss"].tolist() == unmeasured["train_loss"].tolist()
    assert batch_rng(2).integers(1 << 30) != np.random.default_rng(
        np.random.SeedSequence(2, spawn_key=(SHIFT_STREAM,))).integers(1 << 30)
