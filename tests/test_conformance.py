"""Every built-in plugin passes the same conformance kit third-party authors run."""
import pytest
from harness.plugin.loader import load_registry
from harness.testing import parametrize_with_checks

_BUILTINS = load_registry(autoload=False, strict=True)


@parametrize_with_checks([*_BUILTINS.optimizers.values(), *_BUILTINS.losses.values(),
                          *(s for n, s in _BUILTINS.datasets.items() if n != "face-vs-background-lfw")])
@pytest.mark.slow
def test_builtin_conformance(spec, check):
    check(spec)


def test_lfw_variant_is_registered():
    assert "face-vs-background-lfw" in _BUILTINS.datasets
