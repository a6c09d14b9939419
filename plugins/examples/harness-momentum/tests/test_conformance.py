"""The plugin's own suite: harness's conformance kit, as any plugin author would run it."""
import numpy as np

from harness.testing import parametrize_with_checks
from harness_momentum import FOCAL, MOMENTUM, FocalLoss


@parametrize_with_checks([MOMENTUM, FOCAL])
def test_conformance(spec, check):
    check(spec)


def test_focal_with_gamma_zero_is_cross_entropy():
    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(6, 3)), rng.integers(0, 3, 6)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert np.allclose(FocalLoss(3, 0.0).per_sample(logits, y), -logp[np.arange(6), y])
