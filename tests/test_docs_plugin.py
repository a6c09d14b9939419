"""docs/plugins.md works as printed: every Python example runs, every spec in it passes the kit, the plugin trains."""
import re
import sys
import tomllib
import types
from pathlib import Path

import pytest

from harness.plugin import LossSpec, OptimizerSpec
from harness.plugin.claims import ClaimSpec
from harness.plugin.loader import load_registry
from harness.testing import check_plugin

DOC = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)


def _block(lang: str, marker: str) -> str:
    for block in re.findall(rf"```{lang}\n(.*?)```", DOC, flags=re.S):
        if marker in block:
            return block
    raise AssertionError(f"no {lang} block containing {marker!r} in docs/plugins.md")


@pytest.fixture
def documented_plugin(fake_dist):
    """The documented plugin installed as its pyproject block says (entry point, distribution, version)."""
    meta = tomllib.loads(_block("toml", "harness.plugins"))
    (ep_name, target), = meta["project"]["entry-points"]["harness.plugins"].items()
    fake_dist(meta["project"]["name"], target, _block("python", "register_optimizers"), ep_name=ep_name,
              version=meta["project"]["version"])
    return ep_name


def _run_tests_in(namespace: dict) -> int:
    """Call every ``test_*`` function the block defines (once per parametrize case); how many ran."""
    ran = 0
    for name, fn in list(namespace.items()):
        if not (name.startswith("test_") and callable(fn)):
            continue
        marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
        if not marks:
            fn()
            ran += 1
            continue
        (mark,) = marks
        for case in mark.args[1]:
            fn(*case.values)
            ran += 1
    return ran


def test_there_are_examples_to_run():
    assert len(PYTHON_BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_every_python_example_runs_and_its_specs_pass_the_kit(documented_plugin, index, monkeypatch):
    module = types.ModuleType(f"docs_example_{index}")  # a real module, so its classes pickle
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(PYTHON_BLOCKS[index], f"docs/plugins.md example {index}", "exec"), module.__dict__)
    namespace = module.__dict__
    specs = [v for v in namespace.values() if isinstance(v, (OptimizerSpec, LossSpec, ClaimSpec))]
    for spec in specs:
        if not isinstance(spec, ClaimSpec):   # a ClaimSpec checks itself when built; the report tests it
            check_plugin(spec)
    ran = _run_tests_in(namespace)
    assert specs or ran, f"example {index} defines neither a spec nor a test: nothing shows it works"


def test_documented_plugin_loads_passes_the_kit_and_trains(documented_plugin):
    reg = load_registry(strict=True, autoload=True)
    info = next(p for p in reg.plugins if p.name == documented_plugin)
    assert info.distribution == "my-harness-plugin" and info.registered["optimizers"] == ["sign-gd"]
    check_plugin(reg.optimizer("sign-gd"))

    from harness.learning.runconfig import RunConfig
    from harness.learning.trainer import train

    records = train(RunConfig.make("iris", "ce", "sign-gd", epochs=3, lr=0.01, hidden=(8,)), registry=reg)
    assert records["status"].iloc[-1] == "done"
    assert records["train_loss"].iloc[-1] < records["train_loss"].iloc[0]


def test_the_documented_fast_path_is_used_by_point_gd(fake_dist):
    """The loss example's loss_grad_one is what one-sample updates call, and training with it works."""
    fake_dist("my-losses", "my_losses", _block("python", "loss_grad_one(self"))
    reg = load_registry(strict=True, autoload=True)
    from harness.learning.runconfig import RunConfig
    from harness.learning.trainer import train

    calls = []
    loss_type = type(reg.loss("my-ce").factory(None, 3))
    original = loss_type.loss_grad_one
    loss_type.loss_grad_one = lambda self, z, label, grad: calls.append(label) or original(self, z, label, grad)
    try:
        records = train(RunConfig.make("iris", "my-ce", "sgd", epochs=2, lr=0.05, hidden=(8,)), registry=reg)
    finally:
        loss_type.loss_grad_one = original
    assert records["status"].iloc[-1] == "done" and len(calls) == records["updates"].iloc[-1]
