"""The built-in softmax losses' per_sample, which every evaluation calls on all rows, keeps its values."""
import numpy as np
import pytest

from harness_plugins.losses import make_ce, make_wce


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
