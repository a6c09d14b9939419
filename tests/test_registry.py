"""The plugin loader's robustness rules (issue: plugin platform, rule 4), one test each."""
import pytest

from harness.errors import PluginError
from harness.plugin.loader import load_registry

GOOD = """
    from harness.plugin import OptimizerSpec, Param, hookimpl

    class Plain:
        def batches(self, n, rng):
            yield rng.permutation(n)
        def step(self, params, grads, lr):
            for p, g in zip(params, grads):
                p -= lr * g

    @hookimpl
    def register_optimizers(register):
        register(OptimizerSpec("{name}", "a test optimizer", Plain, (Param("unused", 1),)))
"""


def test_a_good_third_party_plugin_registers(fake_dist):
    fake_dist("harness-good", "harness_good_plugin", GOOD.format(name="good-opt"))
    reg = load_registry(strict=False, autoload=True)
    assert "good-opt" in reg.optimizers
    info = next(p for p in reg.plugins if p.name == "harness_good_plugin")
    assert (info.distribution, info.version, info.builtin) == ("harness-good", "1.0", False)
    assert info.registered["optimizers"] == ["good-opt"]


@pytest.mark.slow
def test_plugin_that_raises_on_import_is_reported_and_the_rest_load(fake_dist):
    fake_dist("harness-good", "harness_good_plugin", GOOD.format(name="good-opt"))
    fake_dist("harness-broken", "harness_broken_plugin", "raise RuntimeError('boom at import')",
              ep_name="broken", version="2.3")
    reg = load_registry(strict=False, autoload=True)
    assert "good-opt" in reg.optimizers
    failure = next(f for f in reg.failures if f.name == "broken")
    assert failure.distribution == "harness-broken" and failure.version == "2.3"
    assert failure.error == "RuntimeError: boom at import"


@pytest.mark.slow
def test_strict_mode_makes_a_broken_plugin_fatal(fake_dist, monkeypatch):
    fake_dist("harness-broken", "harness_broken_plugin", "raise RuntimeError('boom at import')",
              ep_name="broken")
    monkeypatch.setenv("HARNESS_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="broken.*harness-broken.*boom at import"):
        load_registry()


def test_a_duplicate_name_fails_the_later_plugin_naming_both_and_the_rest_keep_working(fake_dist):
    fake_dist("harness-one", "harness_one_plugin", GOOD.format(name="twin"))
    fake_dist("harness-two", "harness_two_plugin", GOOD.format(name="twin"))
    fake_dist("harness-sgd", "harness_sgd_plugin", GOOD.format(name="sgd"))  # takes a built-in's name
    reg = load_registry(strict=False, autoload=True)
    assert "twin" in reg.optimizers and "bgd" in reg.optimizers
    assert [p.name for p in reg.plugins if p.name.startswith("harness_")] == ["harness_one_plugin"]
    errors = {f.name: f.error for f in reg.failures}
    assert set(errors) == {"harness_two_plugin", "harness_sgd_plugin"}
    assert "'twin'" in errors["harness_two_plugin"] and "harness_one_plugin" in errors["harness_two_plugin"]
    assert "'sgd'" in errors["harness_sgd_plugin"] and "'optimizers' (harness-gd)" in errors["harness_sgd_plugin"]
    assert reg.optimizers["sgd"].description != "a test optimizer", "the built-in keeps its name"
    with pytest.raises(PluginError, match="'sgd' is already registered by plugin 'optimizers'"):
        load_registry(strict=True, autoload=True)


def test_misspelt_hook_name_fails_loudly_with_a_suggestion(fake_dist):
    fake_dist("harness-typo", "harness_typo_plugin", """
        import harness

        @harness.hookimpl
        def register_optimiser(register):
            pass
    """)
    reg = load_registry(strict=False, autoload=True)
    failure = next(f for f in reg.failures if f.name == "harness_typo_plugin")
    assert "register_optimiser" in failure.error and "register_optimizers" in failure.error
    assert all(p.name != "harness_typo_plugin" for p in reg.plugins)
    with pytest.raises(PluginError, match="register_optimiser"):
        load_registry(strict=True, autoload=True)


@pytest.mark.slow
def test_hook_that_raises_or_registers_a_bad_spec_is_reported(fake_dist):
    fake_dist("harness-raiser", "harness_raiser_plugin", """
        import harness

        @harness.hookimpl
        def register_losses(register):
            raise ValueError("cannot register today")
    """)
    fake_dist("harness-badspec", "harness_badspec_plugin", """
        import harness

        @harness.hookimpl
        def register_datasets(register):
            register("not a spec")
    """)
    reg = load_registry(strict=False, autoload=True)
    errors = {f.name: f.error for f in reg.failures}
    assert errors["harness_raiser_plugin"] == "ValueError: cannot register today"
    assert "DatasetSpec" in errors["harness_badspec_plugin"]


def test_disable_autoload_loads_only_the_builtins(fake_dist, monkeypatch):
    fake_dist("harness-good", "harness_good_plugin", GOOD.format(name="good-opt"))
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    reg = load_registry()
    assert "good-opt" not in reg.optimizers
    assert reg.plugins and all(p.builtin for p in reg.plugins)
    monkeypatch.delenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD")
    assert "good-opt" in load_registry().optimizers


def test_each_call_builds_a_fresh_registry():
    first, second = load_registry(), load_registry()
    first.optimizers.clear()
    assert second.optimizers, "registries must not share state"


def test_unknown_name_suggests_the_closest(fake_dist):
    fake_dist("harness-good", "harness_good_plugin", GOOD.format(name="good-opt"))
    reg = load_registry(strict=False, autoload=True)
    with pytest.raises(ValueError, match="did you mean 'good-opt'"):
        reg.optimizer("good-op")
