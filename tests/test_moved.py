"""The old plugin imports keep working for one release, with a DeprecationWarning naming the new home."""
import importlib

import pytest

MOVED = [
    ("harness.contracts", "OptimizerSpec", "harness.plugin.specs"),
    ("harness.contracts", "Param", "harness.plugin.specs"),
    ("harness.contracts", "RunConfig", "harness.learning.runconfig"),
    ("harness.data", "fingerprint", "harness.plugin.cache"),
    ("harness.data", "load_split", "harness.learning.split"),
    ("harness.lossmath", "log_softmax", "harness.plugin.lossmath"),
    ("harness.hookspecs", "hookspec", "harness.plugin.hookspecs"),
    ("harness.registry", "load_registry", "harness.plugin.loader"),
]


@pytest.mark.parametrize("old,name,new", MOVED)
def test_old_import_serves_the_new_object_and_warns(old, name, new):
    with pytest.warns(DeprecationWarning, match=f"{old}.{name} moved to {new}.{name}"):
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(importlib.import_module(new), name)


def test_a_name_that_never_existed_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        importlib.import_module("harness.contracts").nothing_here
