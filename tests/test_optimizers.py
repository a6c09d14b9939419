"""Built-in optimizers: batching schemes, the in-place GD step, refusals, pickling."""
import pickle

import numpy as np
import pytest

from harness.learning.checks import refusal
from harness.plugin import CheckContext, Optimizer
from harness.learning.runconfig import RunConfig
from harness.plugin.loader import load_registry

REG = load_registry(autoload=False)


def _make(name, **params):
    return REG.optimizer(name).factory(**params)


def _epoch(opt, n, seed=0):
    return [b.copy() for b in opt.batches(n, np.random.default_rng(seed))]


def test_all_five_registered_and_satisfy_the_protocol():
    assert {"bgd", "point", "sgd", "minibatch", "minibatch-bn"} <= set(REG.optimizers)
    for name in ("bgd", "point", "sgd", "minibatch", "minibatch-bn"):
        assert isinstance(_make(name), Optimizer)
    assert REG.optimizer("minibatch-bn").batch_norm
    assert not any(REG.optimizer(n).batch_norm for n in ("bgd", "point", "sgd", "minibatch"))


def test_bgd_is_one_update_of_everything():
    (batch,) = _epoch(_make("bgd"), 10)
    assert np.array_equal(batch, np.arange(10))


def test_point_is_cyclic_in_a_fixed_order():
    first, second = _epoch(_make("point"), 5, seed=0), _epoch(_make("point"), 5, seed=99)
    assert [b.tolist() for b in first] == [[0], [1], [2], [3], [4]] == [b.tolist() for b in second]


def test_sgd_reshuffles_every_epoch_and_is_reproducible():
    opt = _make("sgd")
    rng = np.random.default_rng(3)
    e1 = np.concatenate(list(opt.batches(50, rng)))
    e2 = np.concatenate(list(opt.batches(50, rng)))
    assert all(len(b) == 1 for b in opt.batches(50, rng))
    assert sorted(e1) == list(range(50)) == sorted(e2)
    assert not np.array_equal(e1, e2)
    rng = np.random.default_rng(3)
    assert np.array_equal(np.concatenate(list(opt.batches(50, rng))), e1)


def test_minibatch_covers_each_sample_once_in_batch_size_chunks():
    batches = _epoch(_make("minibatch", batch_size=8), 30)
    assert [len(b) for b in batches] == [8, 8, 8, 6]
    assert sorted(np.concatenate(batches)) == list(range(30))
    assert not np.array_equal(np.concatenate(batches), np.arange(30))


def test_minibatch_bn_never_yields_a_batch_of_one():
    batches = _epoch(_make("minibatch-bn", batch_size=8), 25)
    assert [len(b) for b in batches] == [8, 8, 9]
    assert sorted(np.concatenate(batches)) == list(range(25))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_step_is_w_minus_lr_times_grad_in_place(dtype):
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(4, 3)).astype(dtype), rng.normal(size=3).astype(dtype)]
    grads = [rng.normal(size=(4, 3)).astype(dtype), rng.normal(size=3).astype(dtype)]
    expected = [p - dtype(0.1) * g for p, g in zip(params, grads)]
    ids = [id(p) for p in params]
    _make("sgd").step(params, grads, 0.1)
    assert [id(p) for p in params] == ids
    for p, e in zip(params, expected):
        assert p.dtype == dtype and np.allclose(p, e, rtol=1e-6)


def test_step_on_a_non_contiguous_view_still_updates_it():
    base = np.ones((4, 6))
    view = base[:, ::2]
    _make("bgd").step([view], [np.full((4, 3), 2.0)], 0.5)
    assert np.all(base[:, ::2] == 0.0) and np.all(base[:, 1::2] == 1.0)


def _config(**kw):
    base = dict(dataset="iris", loss="ce", optimizer="minibatch-bn", hidden=(8,))
    base.update(kw)
    return RunConfig.make(base.pop("dataset"), base.pop("loss"), base.pop("optimizer"), **base)


def _refusal(config):
    return refusal((REG.optimizer(config.optimizer), REG.loss(config.loss), REG.dataset(config.dataset)), config)


def test_batch_norm_refuses_one_sample_per_update_and_no_hidden_layer():
    assert _refusal(_config()) is None
    one = _refusal(_config(optimizer_params={"batch_size": 1}))
    assert one.startswith("optimizer 'minibatch-bn': ") and "2 samples" in one
    assert _refusal(_config(hidden=())).startswith("optimizer 'minibatch-bn': batch normalisation needs a hidden layer")
    for name in ("bgd", "point", "sgd", "minibatch"):
        assert _refusal(_config(optimizer=name, hidden=())) is None


def test_check_receives_resolved_read_only_params():
    seen = []
    spec = REG.optimizer("minibatch")
    spying = type(spec)(spec.name, spec.description, spec.factory, spec.params, check=seen.append)
    config = _config(optimizer="minibatch", optimizer_params={"batch_size": "16"}, lr=0.3)
    assert refusal((spying, REG.loss("ce"), REG.dataset("iris")), config) is None
    (context,) = seen
    assert isinstance(context, CheckContext)
    assert context.optimizer_params["batch_size"] == 16 and context.lr == 0.3 and context.hidden == (8,)
    assert context.dataset_params["test_fraction"] == 0.25 and context.batch_norm is False
    with pytest.raises(TypeError):
        context.optimizer_params["batch_size"] = 1


def test_a_check_that_raises_refuses_its_run_naming_the_plugin():
    spec = REG.optimizer("minibatch")
    broken = type(spec)(spec.name, spec.description, spec.factory, spec.params, check=lambda c: 1 / 0)
    reason = refusal((broken, REG.loss("ce"), None), _config(optimizer="minibatch"))
    assert reason == "optimizer 'minibatch': check raised ZeroDivisionError: division by zero"


@pytest.mark.parametrize("name", ["bgd", "point", "sgd", "minibatch", "minibatch-bn"])
def test_optimizer_pickles(name):
    opt = _make(name)
    clone = pickle.loads(pickle.dumps(opt))
    assert _epoch(clone, 20, seed=5)[0].tolist() == _epoch(opt, 20, seed=5)[0].tolist()
