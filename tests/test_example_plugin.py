"""The worked third-party plugin (plugins/examples/harness-momentum), installed beside harness.

.ci/run installs it and sets HARNESS_REQUIRE_EXAMPLE_PLUGIN=1, so there a missing
install fails instead of skipping.
"""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

if importlib.util.find_spec("harness_momentum") is None:
    if os.environ.get("HARNESS_REQUIRE_EXAMPLE_PLUGIN") == "1":
        raise RuntimeError("harness-momentum is not installed: pip install plugins/examples/harness-momentum")
    pytest.skip("harness-momentum not installed (pip install plugins/examples/harness-momentum)",
                allow_module_level=True)

from harness.plugin.loader import load_registry  # noqa: E402
from harness.testing import check_plugin  # noqa: E402


@pytest.mark.slow
def test_shows_up_as_a_third_party_plugin():
    out = subprocess.run([sys.executable, "-m", "harness", "plugins", "--json"],
                         capture_output=True, text=True, check=True)
    plugin = next(p for p in json.loads(out.stdout)["plugins"] if p["name"] == "momentum")
    assert plugin["distribution"] == "harness-momentum" and not plugin["builtin"]
    assert plugin["registered"]["optimizers"] == ["momentum"]
    assert plugin["registered"]["losses"] == ["focal"]


def test_passes_the_conformance_kit():
    reg = load_registry(strict=True)
    check_plugin(reg.optimizer("momentum"))
    check_plugin(reg.loss("focal"))


def test_trains_through_the_ordinary_runner():
    from harness.learning.runconfig import RunConfig
    from harness.learning.trainer import train

    config = RunConfig.make("breast_cancer", "focal", "momentum", epochs=3, lr=0.05, hidden=(8,),
                            optimizer_params={"batch_size": 16, "momentum": 0.8})
    records = train(config)
    assert list(records["epoch"]) == [0, 1, 2, 3]
    assert records["status"].iloc[-1] == "done"
    assert records["train_loss"].iloc[-1] < records["train_loss"].iloc[0]
