"""Schedules against their closed forms; every stopping rule and its status."""
import math

import pytest

from harness.learning.runconfig import RunConfig
from harness.learning.schedules import SCHEDULES, make_schedule, validate
from harness.learning.stopping import DIVERGENCE_FACTOR, Stopper


@pytest.mark.parametrize("t", [0, 1, 7, 100, 12345])
def test_schedules_closed_forms(t):
    assert make_schedule("constant", 0.3)(t) == 0.3
    assert make_schedule("inverse", 0.3, decay=0.01)(t) == pytest.approx(0.3 / (1 + 0.01 * t))
    assert make_schedule("inverse_sqrt", 0.3)(t) == pytest.approx(0.3 / math.sqrt(1 + t))
    assert make_schedule("step", 0.3, decay=0.5, step_every=10)(t) == pytest.approx(0.3 * 0.5 ** (t // 10))


def test_step_schedule_defaults_to_one_drop_per_epoch():
    lr = make_schedule("step", 1.0, decay=0.1, step_every=0, updates_per_epoch=4)
    assert [lr(t) for t in range(9)] == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1, 0.01])


def test_first_update_uses_lr0():
    for name in SCHEDULES:
        assert make_schedule(name, 0.2, decay=0.5, step_every=3)(0) == 0.2


@pytest.mark.parametrize("args,match", [
    (("warmup", 0.1, 0.0, 0), "unknown schedule"),
    (("constant", -1.0, 0.0, 0), "lr"),
    (("step", 0.1, 0.0, 0), "gamma"),
    (("step", 0.1, 1.5, 0), "gamma"),
    (("inverse", 0.1, -1.0, 0), "decay"),
])
def test_bad_schedule_settings_raise(args, match):
    with pytest.raises(ValueError, match=match):
        validate(*args)


def _stopper(**kw):
    return Stopper(RunConfig.make("d", "ce", "bgd", **kw))


def _run(stopper, losses, updates_per_epoch=10, seconds_per_epoch=1.0):
    """Feed epoch losses (losses[0] = initial); return (last epoch, outcome)."""
    for epoch, loss in enumerate(losses):
        out = stopper.check(epoch, loss, epoch * updates_per_epoch, epoch * seconds_per_epoch)
        if out is not None:
            return epoch, out
    return None, None


def test_max_epochs_is_done():
    epoch, out = _run(_stopper(epochs=3), [2.0, 1.0, 0.9, 0.8, 0.7])
    assert (epoch, out.status) == (3, "done") and "max epochs" in out.reason


def test_zero_epochs_is_done_at_epoch_zero():
    assert _run(_stopper(epochs=0), [2.0])[1].status == "done"


def test_tol_stops():
    epoch, out = _run(_stopper(epochs=10, tol=0.5), [2.0, 1.0, 0.6, 0.5, 0.4])
    assert (epoch, out.status) == (3, "stopped") and out.reason.startswith("tol")


def test_lecture_rule_stops_when_loss_below_one_over_sqrt_updates():
    # 10 updates per epoch: thresholds 1/sqrt(10)=0.316, 1/sqrt(20)=0.224, 1/sqrt(30)=0.183
    epoch, out = _run(_stopper(epochs=10, lecture_stop=True), [2.0, 0.5, 0.3, 0.18, 0.1])
    assert (epoch, out.status) == (3, "stopped") and out.reason.startswith("lecture_stop")
    assert _run(_stopper(epochs=4), [2.0, 0.5, 0.3, 0.18, 0.1])[1].status == "done"  # off by default


def test_patience_stops_after_k_epochs_without_improvement():
    epoch, out = _run(_stopper(epochs=20, patience=2), [2.0, 1.0, 0.5, 0.6, 0.5, 0.7, 0.1])
    assert (epoch, out.status) == (4, "stopped") and out.reason.startswith("patience")


def test_time_budget_stops():
    epoch, out = _run(_stopper(epochs=20, time_budget=2.5), [2.0, 1.0, 0.9, 0.8, 0.7], seconds_per_epoch=1.0)
    assert (epoch, out.status) == (3, "stopped") and out.reason.startswith("time_budget")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_diverges(bad):
    epoch, out = _run(_stopper(epochs=10), [2.0, 1.0, bad])
    assert (epoch, out.status) == (2, "diverged")


def test_exploding_loss_diverges():
    limit = DIVERGENCE_FACTOR * 2.0
    epoch, out = _run(_stopper(epochs=10), [2.0, 5.0, limit * 0.99, limit * 1.01])
    assert (epoch, out.status) == (3, "diverged")


def test_divergence_takes_precedence_over_other_rules():
    epoch, out = _run(_stopper(epochs=1, tol=1.0), [2.0, float("nan")])
    assert out.status == "diverged"
