"""One configuration grammar: `harness run` and `harness sweep` take the same keys and build the same run."""
import dataclasses

import pytest

from harness.cli import main
from harness.cli.main import build_parser
from harness.cli.run import build_config
from harness.errors import UsageError
from harness.learning.runconfig import RUN, RUN_PARAMS, RunConfig, build_run, parse_hidden, resolve_run
from harness.learning.trainer import train
from harness.plugin.loader import load_registry
from harness.sweep.config import load_config
from harness.sweep.plan import build_plan, format_plan

SETTINGS = ["run.hidden=16x8", "optimizer.batch_size=16", "loss.normalisation=lecture",
            "run.schedule=inverse:0.01", "dataset.max_samples=120", "run.activation=tanh"]


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def run_config(registry, *argv):
    args = build_parser().parse_args(["run", "--dataset", "iris", "--loss", "wce", "--optimizer", "minibatch",
                                      *argv])
    return build_config(args, registry)


def sweep_final_cell(registry, sets, **overrides):
    cfg = load_config(sets=sets, overrides={"datasets": "iris", "losses": "wce", "optimizers": "minibatch",
                                            **overrides}, registry=registry)
    plan = build_plan(cfg, registry)
    assert not plan.tune and len(plan.final) == 1
    return plan.final[0].config


def test_run_and_sweep_build_the_same_resolved_config(registry):
    sets = [arg for s in SETTINGS for arg in ("--set", s)]
    by_run = run_config(registry, *sets, "--lr", "0.05", "--epochs", "5", "--seed", "3")
    # the sweep starts from the default preset (hidden [32], [tune.lr], batch_size 32 for minibatch...):
    # the command line replaces each of those, so the one final cell is the run above
    by_sweep = sweep_final_cell(registry, SETTINGS, lr="0.05", epochs="5", seeds=[3])
    assert by_sweep == by_run
    assert by_run.hidden == (16, 8) and by_run.schedule == "inverse" and by_run.decay == 0.01
    assert by_run.seed == 3 and by_run.lr == 0.05 and by_run.epochs == 5 and by_run.activation == "tanh"
    # fully resolved: every plugin and generic dataset default is filled in
    assert dict(by_run.optimizer_params) == {"batch_size": 16}
    assert dict(by_run.loss_params) == {"normalisation": "lecture"}
    assert dict(by_run.dataset_params) == {"imbalance": 0.0, "max_samples": 120, "test_fraction": 0.25,
                                           "val_fraction": 0.2}


def test_dedicated_options_are_spellings_of_the_same_keys(registry):
    a = run_config(registry, "--hidden", "16x8", "--epochs", "3", "--schedule", "step:0.5:10",
                   "--lecture-stop", "--set", "optimizer.minibatch.batch_size=16")
    b = run_config(registry, "--set", "run.hidden=16x8", "--set", "run.epochs=3", "--set", "run.schedule=step",
                   "--set", "run.decay=0.5", "--set", "run.step_every=10", "--set", "run.lecture_stop=true",
                   "--set", "optimizer.batch_size=16")
    assert a == b
    assert (a.schedule, a.decay, a.step_every, a.lecture_stop) == ("step", 0.5, 10, True)


def test_old_hidden_spelling_still_works_with_a_note(registry, capsys):
    assert run_config(registry, "--hidden", "64,32").hidden == (64, 32)
    assert "deprecated; write --hidden 64x32" in capsys.readouterr().err
    assert run_config(registry, "--hidden", "none").hidden == ()


@pytest.mark.parametrize("argv, key", [
    (["--lr", "0.1,0.2"], "run.lr"),
    (["--set", "run.hidden=8,16"], "run.hidden"),
    (["--set", "optimizer.batch_size=8,16"], "optimizer.*.batch_size"),
    (["--seed", "1,2"], "seed"),
    (["--set", "run.schedule=constant,inverse:0.1"], "run.schedule"),
])
def test_a_grid_given_to_run_is_one_line_pointing_to_sweep(registry, argv, key):
    with pytest.raises(UsageError) as info:
        run_config(registry, *argv)
    assert str(info.value).startswith(f"{key}: `harness run` trains one configuration")
    assert "`harness sweep` takes grids" in str(info.value)


def test_run_help_and_sweep_help_list_the_same_keys(capsys):
    texts = {}
    for command in ("run", "sweep"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        texts[command] = capsys.readouterr().out
    for p in RUN_PARAMS:
        for text in texts.values():
            assert f"run.{p.name} " in text and "--" + p.name.replace("_", "-") in text
    for text in texts.values():
        assert "optimizer.<param>" in text and "dataset[.<name>].<param>" in text


def test_runconfig_defaults_are_the_run_params_defaults():
    fields = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    assert {p.name: fields[p.name] for p in RUN_PARAMS} == {p.name: p.default for p in RUN_PARAMS}


def test_one_hidden_grammar():
    assert parse_hidden("64x32") == (64, 32) == parse_hidden([64, 32])
    assert parse_hidden("none") == () == parse_hidden([]) == parse_hidden("")
    assert parse_hidden(64) == (64,)
    for bad in ("64,32", "64x", "0", "2.5", True):
        with pytest.raises(UsageError, match="run.hidden"):
            parse_hidden(bad)


def test_builder_fills_defaults_and_rejects_bad_values(registry):
    config = resolve_run("iris", "wce", "minibatch", registry=registry)
    assert dict(config.optimizer_params)["batch_size"] == 32 and config.hidden == RUN["hidden"].default
    with pytest.raises(UsageError, match=r"run.epochs: expected an integer"):
        build_run("iris", "ce", "bgd", registry=registry, settings={"epochs": 1.5})
    with pytest.raises(UsageError, match="needs decay"):
        build_run("iris", "ce", "bgd", registry=registry, settings={"schedule": "step"})


def test_the_trainer_uses_the_same_validator(registry):
    bad = RunConfig.make("iris", "ce", "bgd", epochs=0)
    with pytest.raises(UsageError, match="run.epochs: 0 is below the minimum 1"):
        train(bad, registry=registry)
    with pytest.raises(UsageError, match="run.activation"):
        train(dataclasses.replace(bad, epochs=1, activation="swish"), registry=registry)


# --------------------------------------------------------------------------- run.lr on a sweep that tunes
def test_one_cli_learning_rate_turns_tuning_off_and_says_so(registry):
    cfg = load_config(sets=["run.lr=0.05"], registry=registry)
    assert all(cfg.lr_grid(o) == (0.05,) for o in cfg.optimizers)
    assert cfg.notes == ("run.lr=0.05 given: learning rates are not tuned; the optimizers' declared grids ignored",)
    plan = build_plan(cfg, registry)
    assert not plan.tune
    assert format_plan(plan).splitlines()[0] == cfg.notes[0]


def test_several_cli_learning_rates_are_every_optimizers_grid(registry):
    cfg = load_config(overrides={"lr": "0.01,0.1", "optimizers": "bgd,sgd"}, registry=registry)
    assert cfg.lr_grid("bgd") == cfg.lr_grid("sgd") == (0.01, 0.1)
    assert cfg.notes == ("run.lr=0.01,0.1 given: every optimizer tunes its learning rate over this grid; "
                         "the optimizers' declared grids ignored",)
    # a per-optimizer grid given on the command line as well still wins for that optimizer
    cfg = load_config(sets=["run.lr=0.01", "tune.lr.sgd=0.5,1"], registry=registry)
    assert cfg.lr_grid("sgd") == (0.5, 1.0) and cfg.lr_grid("bgd") == (0.01,)


def test_the_sweeps_first_line_says_what_run_lr_did(tmp_path, capsys):
    code = main(["sweep", "--dry-run", "--lr", "0.05", "--datasets", "iris", "--losses", "ce",
                 "--optimizers", "bgd", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == "run.lr=0.05 given: learning rates are not tuned; the optimizers' declared grids ignored"
    assert "bgd: lr=0.05" in out


def test_a_sweep_without_cli_lr_has_no_note(registry):
    assert load_config(registry=registry).notes == ()


# --------------------------------------------------------------------------- plugin keys in a sweep
def test_short_plugin_key_applies_to_every_selected_plugin_that_has_it(registry):
    cfg = load_config(sets=["optimizer.batch_size=16"], overrides={"datasets": "iris", "losses": "ce",
                      "optimizers": "bgd,minibatch,minibatch-bn", "lr": "0.1", "seeds": "1"}, registry=registry)
    plan = build_plan(cfg, registry)
    sizes = {c.config.optimizer: dict(c.config.optimizer_params).get("batch_size") for c in plan.final}
    # the preset's [optimizer.minibatch] batch_size = 32 is replaced by the command line
    assert sizes == {"bgd": None, "minibatch": 16, "minibatch-bn": 16}
    # a later key naming one plugin wins over the short form
    cfg = load_config(sets=["optimizer.batch_size=16", "optimizer.minibatch.batch_size=8"],
                      overrides={"optimizers": "minibatch,minibatch-bn"}, registry=registry)
    assert cfg.param_grids("optimizer", "minibatch")["batch_size"] == (8,)
    assert cfg.param_grids("optimizer", "minibatch-bn")["batch_size"] == (16,)


def test_short_plugin_key_unknown_to_every_selected_plugin_is_an_error(registry):
    with pytest.raises(UsageError, match=r"optimizer.batch_size: unknown hyper-parameter 'batch_size'"):
        load_config(sets=["optimizer.batch_size=16"], overrides={"optimizers": "bgd"}, registry=registry)


@pytest.mark.slow
def test_a_real_sweeps_first_line_says_what_run_lr_did(tmp_path, capsys):
    code = main(["sweep", "--set", "run.lr=0.1,0.2", "--datasets", "iris", "--losses", "ce", "--optimizers", "bgd",
                 "--seeds", "1", "--epochs", "1", "--hidden", "none", "--jobs", "1", "--out", str(tmp_path), "--name", "lr",
                 "--quiet", "--no-report"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == ("run.lr=0.1,0.2 given: every optimizer tunes its learning rate over this grid; "
                                   "the optimizers' declared grids ignored")
