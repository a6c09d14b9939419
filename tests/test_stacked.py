"""A learning-rate grid trained stacked gives, run by run, the records of ``trainer.train`` alone.

Every built-in optimizer x loss (ce, bce, wce) x schedule (constant, inverse)
trains a 5-rate grid both ways from the same seed. Each grid includes a rate
that diverges and a rate that stops early on ``tol`` (asserted, so the
comparison covers masking). Records must agree to 1e-10 except
``train_seconds``; the per-sample optimizers (point, sgd) run the same scalar
arithmetic stacked and alone, so their records are compared bit for bit. One
combination per optimizer runs in the default suite, the other 25 and the
architecture variants under ``-m slow``.
"""
import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest

from harness.learning import kernels, stacked
from harness.learning.runconfig import RunConfig
from harness.learning.trainer import train
from harness.plugin.loader import load_registry
from harness.results.schema import RECORD_COLUMNS

from digits_splits import REG, SPLITS

pytestmark = pytest.mark.skipif(kernels.numba is None, reason="numba not installed")

EXACT = ("point", "sgd")      # per-sample: the same scalar loops stacked and alone
# per family: two ordinary rates, one that reaches tol within the epochs, a large one, one that blows up
GRIDS = {"point": (1e-3, 1e-2, 0.03, 0.2, 1e30), "sgd": (1e-3, 1e-2, 0.03, 0.2, 1e30),
         "minibatch": (1e-2, 0.1, 1.0, 3.0, 1e30), "minibatch-bn": (1e-2, 0.1, 1.0, 3.0, 1e30),
         "bgd": (1e-2, 0.1, 1.0, 3.0, 1e30)}
COMPARED = [c for c in RECORD_COLUMNS if c != "train_seconds"]


def _grid(optimizer, loss, schedule, rates=None, **kw):
    base = dict(loss=loss, optimizer=optimizer, schedule=schedule, decay=0.05 if schedule == "inverse" else 0.0,
                epochs=6, seed=3, hidden=(16,), tol=0.02, patience=2,
                optimizer_params={"batch_size": 16} if optimizer.startswith("minibatch") else None)
    base.update(kw)
    return [RunConfig.make("tiny", lr=lr, **base) for lr in rates or GRIDS[optimizer]]


def _assert_same(stacked_frames, alone_frames, exact):
    assert len(stacked_frames) == len(alone_frames)
    for got, want in zip(stacked_frames, alone_frames):
        assert list(got.columns) == list(RECORD_COLUMNS)
        assert len(got) == len(want)
        numeric = [c for c in COMPARED if pd.api.types.is_float_dtype(want[c])]
        other = [c for c in COMPARED if c not in numeric]
        assert got[other].equals(want[other]), (got[other], want[other])
        if exact:
            np.testing.assert_array_equal(got[numeric].to_numpy(), want[numeric].to_numpy())
        else:
            np.testing.assert_allclose(got[numeric].to_numpy(), want[numeric].to_numpy(), rtol=1e-10, atol=1e-10)


# one combination per optimizer in the default suite, all 30 under -m slow
QUICK = {("sgd", "ce", "constant"), ("point", "bce", "inverse"), ("minibatch", "wce", "inverse"),
         ("bgd", "bce", "constant"), ("minibatch-bn", "ce", "constant")}
GRID_CASES = [pytest.param(o, l, s, marks=() if (o, l, s) in QUICK else pytest.mark.slow)
              for o, l, s in itertools.product(["bgd", "point", "sgd", "minibatch", "minibatch-bn"],
                                               ["ce", "bce", "wce"], ["constant", "inverse"])]


@pytest.mark.parametrize("optimizer,loss,schedule", GRID_CASES)
def test_stacked_grid_equals_runs_alone(optimizer, loss, schedule):
    split = SPLITS[2 if loss == "bce" else 4]
    configs = _grid(optimizer, loss, schedule)
    got = stacked.train_stacked(configs, split=split, registry=REG)
    want = [train(c, split=split, registry=REG) for c in configs]
    _assert_same(got, want, exact=optimizer in EXACT)
    statuses = [frame.status.iloc[-1] for frame in want]
    assert "diverged" in statuses and "stopped" in statuses, statuses  # masking was exercised
    assert any(s == "stopped" and len(f) < 7 for s, f in zip(statuses, want))


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["point", "minibatch", "bgd"])
@pytest.mark.parametrize("hidden,activation", [((), "relu"), ((8, 4), "tanh"), ((6,), "sigmoid")])
def test_stacked_architectures(optimizer, hidden, activation):
    split = SPLITS[4]
    configs = _grid(optimizer, "ce", "constant", hidden=hidden, activation=activation, tol=0.0, patience=0)
    _assert_same(stacked.train_stacked(configs, split=split, registry=REG),
                 [train(c, split=split, registry=REG) for c in configs], exact=optimizer in EXACT)


@pytest.mark.parametrize("chunk", [5, 16])
@pytest.mark.parametrize("optimizer,hidden", [("bgd", (16,)), ("bgd", ()), ("minibatch", (8, 4))])
def test_stacked_batches_in_chunks_equal_runs_alone(monkeypatch, chunk, optimizer, hidden):
    """Batches longer than ``kernels.CHUNK_ROWS`` run chunk by chunk, stacked as alone (gradients added up,
    the steps after the last chunk); with chunks of 5 and 16 rows (batches of 90 and 16) the grid, its
    divergence and its stopping included, still gives each run's records."""
    monkeypatch.setattr(kernels, "CHUNK_ROWS", chunk)
    split = SPLITS[4]
    configs = _grid(optimizer, "ce", "constant", hidden=hidden)
    want = [train(c, split=split, registry=REG) for c in configs]
    _assert_same(stacked.train_stacked(configs, split=split, registry=REG), want, exact=False)
    assert "diverged" in [frame.status.iloc[-1] for frame in want]


@pytest.mark.parametrize("optimizer,rates,epoch_updates", [
    ("sgd", (1e-3, 3e-3, 0.01, 1e30, 1e300), 90),          # blow up at updates 8 and 7 (different restarts)
    ("minibatch", (1e-3, 0.01, 0.1, 1e100, 1e200), 6),     # at updates 3 and 2 of 6
])
def test_mid_epoch_divergence_leaves_the_others_running(optimizer, rates, epoch_updates):
    """Rates that blow up inside an epoch stop at the same update as alone; the rest finish the epoch."""
    split = SPLITS[4]
    configs = _grid(optimizer, "ce", "constant", rates=rates, tol=0.0, patience=0)
    got = stacked.train_stacked(configs, split=split, registry=REG)
    for blown in got[-2:]:
        assert blown.status.iloc[-1] == "diverged" and "non-finite at update" in blown.reason.iloc[-1]
        assert 0 < blown.updates.iloc[-1] < epoch_updates
    assert got[-1].updates.iloc[-1] != got[-2].updates.iloc[-1]   # two separate exits from the stack
    assert [f.updates.iloc[-1] for f in got[:-2]] == [6 * epoch_updates] * 3
    _assert_same(got, [train(c, split=split, registry=REG) for c in configs], exact=optimizer in EXACT)


def test_float32_grid_is_close():
    split = SPLITS[4]
    configs = _grid("minibatch", "ce", "constant", dtype="float32", tol=0.0, patience=0)[:4]
    got = stacked.train_stacked(configs, split=split, registry=REG)
    want = [train(c, split=split, registry=REG) for c in configs]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.train_loss, w.train_loss, rtol=2e-4, atol=2e-4)


def test_stacked_path_is_taken_where_it_applies(monkeypatch):
    """The built-in plain-GD grid must not quietly fall back to training run by run."""
    def refuse(*a, **k):
        raise AssertionError("fell back to trainer.train")

    monkeypatch.setattr(stacked.trainer, "train", refuse)
    frames = stacked.train_stacked(_grid("minibatch", "ce", "constant"), split=SPLITS[4], registry=REG)
    assert len(frames) == 5


def test_plugin_optimizer_without_fast_path_falls_back(monkeypatch):
    """The momentum example has state (no ``step_is_plain_gd``): its grid trains run by run, same records."""
    registry = load_registry()
    if "momentum" not in registry.optimizers:
        pytest.skip("harness-momentum example not installed")
    calls = []
    real = stacked.trainer.train

    def spy(config, **kw):
        calls.append(config.lr)
        return real(config, **kw)

    monkeypatch.setattr(stacked.trainer, "train", spy)
    configs = [RunConfig.make("tiny", loss="ce", optimizer="momentum", lr=lr, epochs=3, seed=1, hidden=(8,))
               for lr in (0.01, 0.1, 1e30)]
    got = stacked.train_stacked(configs, split=SPLITS[4], registry=registry)
    assert calls == [0.01, 0.1, 1e30]
    monkeypatch.setattr(stacked.trainer, "train", real)
    _assert_same(got, [real(c, split=SPLITS[4], registry=registry) for c in configs], exact=True)


def test_batch_norm_falls_back(monkeypatch):
    calls = []
    real = stacked.trainer.train
    monkeypatch.setattr(stacked.trainer, "train", lambda c, **kw: calls.append(c) or real(c, **kw))
    configs = _grid("minibatch-bn", "ce", "constant")
    stacked.train_stacked(configs, split=SPLITS[4], registry=REG)
    assert calls == configs


def test_configs_must_differ_in_lr_only():
    a = RunConfig.make("tiny", loss="ce", optimizer="sgd", lr=0.1)
    with pytest.raises(ValueError, match="lr only"):
        stacked.train_stacked([a, dataclasses.replace(a, lr=0.2, seed=4)], split=SPLITS[4], registry=REG)
    assert stacked.train_stacked([], registry=REG) == []


def test_fast_path_switched_off_trains_run_by_run(monkeypatch):
    monkeypatch.setenv(kernels.ENV_SWITCH, "0")
    configs = _grid("point", "ce", "constant")[:2]
    _assert_same(stacked.train_stacked(configs, split=SPLITS[4], registry=REG),
                 [train(c, split=SPLITS[4], registry=REG) for c in configs], exact=True)
