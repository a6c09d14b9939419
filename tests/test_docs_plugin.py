"""The plugin written in docs/plugins.md works as printed: it loads, passes the kit and trains."""
import re
import tomllib
from pathlib import Path

from harness.plugin.loader import load_registry
from harness.testing import check_plugin

DOC = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()


def _block(lang: str, marker: str) -> str:
    for block in re.findall(rf"```{lang}\n(.*?)```", DOC, flags=re.S):
        if marker in block:
            return block
    raise AssertionError(f"no {lang} block containing {marker!r} in docs/plugins.md")


def test_documented_plugin_loads_passes_the_kit_and_trains(fake_dist):
    code = _block("python", "register_optimizers")
    meta = tomllib.loads(_block("toml", "harness.plugins"))
    (ep_name, target), = meta["project"]["entry-points"]["harness.plugins"].items()
    fake_dist(meta["project"]["name"], target, code, ep_name=ep_name, version=meta["project"]["version"])

    reg = load_registry(strict=True, autoload=True)
    info = next(p for p in reg.plugins if p.name == ep_name)
    assert info.distribution == "my-harness-plugin" and info.registered["optimizers"] == ["sign-gd"]
    check_plugin(reg.optimizer("sign-gd"))

    from harness.learning.runconfig import RunConfig
    from harness.learning.trainer import train

    records = train(RunConfig.make("iris", "ce", "sign-gd", epochs=3, lr=0.01, hidden=(8,)), registry=reg)
    assert records["status"].iloc[-1] == "done"
    assert records["train_loss"].iloc[-1] < records["train_loss"].iloc[0]
