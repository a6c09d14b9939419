"""Sweep configuration: TOML + CLI overrides, and validation before anything runs."""
import pytest

from harness.cli import main
from harness.sweep.config import load_config, parse_set
from harness.errors import UsageError
from harness.plugin.loader import load_registry


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def write(tmp_path, text, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_default_preset_is_the_issue_sweep(registry):
    cfg = load_config(registry=registry)
    assert set(cfg.optimizers) == {"bgd", "point", "sgd", "minibatch", "minibatch-bn"}
    assert set(cfg.losses) == {"ce", "bce", "wce"}
    assert set(cfg.datasets) == {"digits", "breast_cancer", "face-vs-background"}
    assert len(cfg.seeds) >= 3
    # every optimizer's learning rate is tuned on a grid
    assert all(len(cfg.lr_grid(o)) > 1 for o in cfg.optimizers)


def test_cli_overrides_replace_file_values(registry, tmp_path):
    cfg = load_config(
        sets=["optimizer.minibatch.batch_size=16,64", "run.hidden=64x32,none", "loss.wce.normalisation=lecture",
              "dataset.*.max_samples=300", "tune.seeds=0,1"],
        overrides={"datasets": "digits", "losses": "ce,wce", "optimizers": "minibatch,sgd", "seeds": "0,5,7",
                   "epochs": "4", "jobs": "2", "out": str(tmp_path), "name": "x"},
        registry=registry)
    assert cfg.datasets == ("digits",)
    assert cfg.losses == ("ce", "wce")
    assert cfg.seeds == (0, 5, 7)
    assert cfg.run_grid("epochs") == (4,)
    assert cfg.jobs == 2
    assert cfg.param_grids("optimizer", "minibatch") == {"batch_size": (16, 64)}
    assert cfg.run_grid("hidden") == ((64, 32), ())
    assert cfg.param_grids("loss", "wce") == {"normalisation": ("lecture",)}
    assert cfg.param_grids("dataset", "digits") == {"max_samples": (300,)}
    assert cfg.tune_seeds == (0, 1)
    assert cfg.sweep_dir == tmp_path / "x"


def test_seed_count_means_range(registry):
    assert load_config(overrides={"seeds": "3"}, registry=registry).seeds == (0, 1, 2)


def test_toml_grids_and_hidden_spelling(registry, tmp_path):
    path = write(tmp_path, """
        datasets = ["iris"]
        losses = ["ce"]
        optimizers = ["bgd", "minibatch"]
        seeds = [4, 2]
        [run]
        hidden = [[16], [], [8, 8]]
        lr = [0.5, 0.05]
        [tune.lr]
        bgd = [1.0, 2.0]
        [optimizer.minibatch]
        batch_size = [8, "16"]
    """)
    cfg = load_config(path, registry=registry)
    assert cfg.seeds == (4, 2)
    assert cfg.run_grid("hidden") == ((16,), (), (8, 8))
    assert cfg.lr_grid("bgd") == (1.0, 2.0)          # per-optimizer grid wins
    assert cfg.lr_grid("minibatch") == (0.5, 0.05)   # others use run.lr
    assert cfg.param_grids("optimizer", "minibatch")["batch_size"] == (8, 16)
    assert load_config(path, registry=registry, sets=[]).run_grid("hidden")[2] == (8, 8)
    one = write(tmp_path, "[run]\nhidden = [64, 32]\n", "one.toml")
    assert load_config(one, registry=registry).run_grid("hidden") == ((64, 32),)


def test_a_config_file_without_a_name_names_the_sweep_after_itself(registry, tmp_path):
    assert load_config(write(tmp_path, "seeds = 1\n", "mine.toml"), registry=registry).name == "mine"
    assert load_config(write(tmp_path, 'name = "x"\n', "other.toml"), registry=registry).name == "x"
    assert load_config(registry=registry).name == "default"


def test_cli_learning_rate_replaces_per_optimizer_grids(registry):
    cfg = load_config(sets=["run.lr=0.01,0.02"], registry=registry)
    assert all(cfg.lr_grid(o) == (0.01, 0.02) for o in cfg.optimizers)


@pytest.mark.parametrize("kwargs, needle", [
    ({"overrides": {"optimizers": "bgd,sgdd"}}, "unknown optimizer 'sgdd' (did you mean 'sgd'?)"),
    ({"overrides": {"datasets": "digit"}}, "unknown dataset 'digit'"),
    ({"overrides": {"losses": "ce,"}}, "unknown loss ''"),
    ({"overrides": {"seeds": "0,,2"}}, "seeds"),
    ({"overrides": {"seeds": "-1,2"}}, "seeds: must be integers >= 0"),
    ({"overrides": {"seeds": "1e9"}}, "seeds: at most 10000 seeds"),
    ({"overrides": {"timeout": "-1"}}, "timeout: -1.0 is below the minimum"),
    ({"sets": ["optimizer.nothing=1"]}, "optimizer.nothing: unknown hyper-parameter"),
    ({"sets": ["dataset.iris.max_samples=3"], "overrides": {"datasets": "iris"}}, "max_samples=3: class"),
    ({"overrides": {"epochs": "ten"}}, "run.epochs: expected an integer"),
    ({"overrides": {"epochs": "0"}}, "run.epochs"),
    ({"overrides": {"jobs": "two"}}, "jobs"),
    ({"sets": ["optimizer.minibatch.batch_size=abc"]}, "optimizer.minibatch.batch_size: expected an integer"),
    ({"sets": ["optimizer.minibatch.batch_size=0"]}, "optimizer.minibatch.batch_size"),
    ({"sets": ["optimizer.minibatch.batch_size="]}, "optimizer.minibatch.batch_size: empty grid"),
    ({"sets": ["optimizer.minibatch.batchsize=8"]}, "did you mean 'batch_size'?"),
    ({"sets": ["optimizer.minibach.batch_size=8"]}, "unknown optimizer 'minibach'"),
    ({"sets": ["loss.wce.normalisation=weird"]}, "loss.wce.normalisation: 'weird' is not one of"),
    ({"sets": ["dataset.digits.imbalance=2"]}, "dataset.digits.imbalance"),
    ({"sets": ["run.schedule=cosine"]}, "run.schedule: unknown schedule 'cosine'"),
    ({"sets": ["run.schedule=step"]}, "needs decay (gamma) in (0, 1]"),
    ({"sets": ["run.schedule=inverse:-1"]}, "run.schedule: -1.0 is below the minimum 0.0"),
    ({"sets": ["run.hidden=64xq"]}, "run.hidden"),
    ({"sets": ["run.lrr=0.1"]}, "unknown setting 'lrr' (did you mean 'lr'?)"),
    ({"sets": ["tune.metric=test_loss"]}, "tune.metric"),
    ({"sets": ["tune.lr.adam=0.1"]}, "unknown optimizer 'adam'"),
    ({"sets": ["colour=red"]}, "unknown key 'colour'"),
    ({"sets": ["nonsense"]}, "expected KEY=VALUE"),
    ({"overrides": {"backend": "dask"}}, "scheduler"),
])
def test_validation_errors_are_one_line_usage_errors(registry, kwargs, needle):
    with pytest.raises(UsageError) as info:
        load_config(registry=registry, **kwargs)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_bad_toml_file_is_a_usage_error(registry, tmp_path):
    with pytest.raises(UsageError, match="not valid TOML"):
        load_config(write(tmp_path, "seeds = [1,\n"), registry=registry)
    with pytest.raises(UsageError, match="no such file"):
        load_config(str(tmp_path / "missing.toml"), registry=registry)
    with pytest.raises(UsageError, match="unknown key 'optimiser'"):
        load_config(write(tmp_path, "[optimiser.sgd]\n", "typo.toml"), registry=registry)
    with pytest.raises(UsageError, match="run.hidden: mix"):
        load_config(write(tmp_path, "[run]\nhidden = [[64], 32]\n", "mix.toml"), registry=registry)


def test_schedule_axis_with_inline_decay_and_skipped_combinations(registry):
    from harness.sweep.plan import build_plan

    cfg = load_config(sets=["run.lr=0.1", "run.schedule=constant,inverse:0.01,step:0.5:100,step"],
                      overrides={"datasets": "iris", "losses": "ce", "optimizers": "sgd", "seeds": "1"},
                      registry=registry)
    plan = build_plan(cfg, registry)
    got = {(c.config.schedule, c.config.decay, c.config.step_every): c.skip for c in plan.final}
    assert set(got) == {("constant", 0.0, 0), ("inverse", 0.01, 0), ("step", 0.5, 100), ("step", 0.0, 0)}
    assert got[("step", 0.0, 0)] and "decay" in got[("step", 0.0, 0)]   # grid combination skipped, not fatal
    assert sum(v is None for v in got.values()) == 3


def test_parse_set():
    assert parse_set("optimizer.minibatch.batch_size=16,64") == ("optimizer.minibatch.batch_size", ["16", "64"])
    assert parse_set("run.hidden=") == ("run.hidden", [])


def test_cli_validation_error_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["sweep", "--out", str(out), "--optimizers", "bgd,sgdd", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "unknown optimizer 'sgdd'" in err and "valid:" in err
    assert not out.exists()
    code = main(["sweep", "--out", str(out), "--set", "optimizer.minibatch.batch_size=-3", "--quiet"])
    assert code == 2 and "batch_size" in capsys.readouterr().err
    assert not out.exists()
