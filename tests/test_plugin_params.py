"""Param bounds: inclusive by default, exclusive on request (issue 12: beta1 = 1.0 broke Adam)."""
import pytest

from harness.errors import UsageError
from harness.plugin import Param
from harness.plugin.specs import resolve_params

BETA1 = Param("beta1", 0.9, "first-moment decay", low=0.0, high=1.0, high_exclusive=True)


def test_an_exclusive_high_bound_rejects_the_bound_itself():
    with pytest.raises(UsageError, match=r"^beta1: 1\.0 must be below 1\.0$"):
        BETA1.parse("1.0")
    assert BETA1.parse("0.999999") == 0.999999 and BETA1.parse(0) == 0.0


def test_an_exclusive_low_bound_rejects_the_bound_itself():
    lr = Param("eps", 1e-8, low=0.0, low_exclusive=True)
    with pytest.raises(UsageError, match="eps: 0.0 must be above 0.0"):
        lr.parse(0)
    assert lr.parse("1e-12") == 1e-12


def test_inclusive_bounds_still_accept_the_bound():
    inclusive = Param("beta1", 0.9, low=0.0, high=1.0)
    assert inclusive.parse("1.0") == 1.0
    with pytest.raises(UsageError, match="above the maximum 1.0"):
        inclusive.parse("1.5")


def test_bounds_are_described_for_listing_and_resolved_through_resolve_params():
    assert BETA1.to_dict() == {"name": "beta1", "default": 0.9, "type": "float", "help": "first-moment decay",
                               "low": 0.0, "high": 1.0, "high_exclusive": True}
    with pytest.raises(UsageError, match="beta1: 1.0 must be below 1.0"):
        resolve_params((BETA1,), {"beta1": "1"}, "optimizer adam")
    assert resolve_params((BETA1,), {"beta1": "0.5"}, "optimizer adam") == {"beta1": 0.5}
