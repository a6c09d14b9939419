"""The Python API (harness.load / run / run_sweep / Sweep): same path as the command line, typed frames."""
from __future__ import annotations

import subprocess
import sys
import tomllib

import pandas as pd
import pytest

import harness
from harness.api.settings import spell, to_sets
from harness.api.toml_text import dumps
from harness.cli.main import main
from harness.errors import HarnessError, UsageError
from harness.plugin.loader import load_registry
from harness.results.schema import RECORD_COLUMNS
from harness.sweep.config import load_config

TINY = {"datasets": ["iris"], "losses": ["ce"], "optimizers": ["sgd", "bgd"], "seeds": 2, "jobs": 1,
        "run": {"epochs": 2, "hidden": []},
        "tune": {"seeds": [0], "lr": {"sgd": [0.01, 0.1], "bgd": [0.3, 1.0]}}}


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    return harness.run_sweep({**TINY, "name": "tiny", "out": str(out)}, report=False)


@pytest.mark.slow
def test_import_harness_stays_light():
    code = ("import sys, harness; harness.hookimpl; "
            "print('pandas' in sys.modules, 'harness.api' in sys.modules, callable(harness.load))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "True"]   # the API loads on first use, then it is there
    assert {"load", "run", "run_sweep", "Sweep"} <= set(dir(harness))
    with pytest.raises(AttributeError):
        harness.no_such_name


def test_run_matches_the_command_line(tmp_path):
    frame = harness.run("iris", "ce", "sgd", epochs=2, lr=0.05, hidden=())
    assert list(frame.columns) == list(RECORD_COLUMNS)
    assert frame["epoch"].tolist() == [0, 1, 2]
    assert frame.attrs["config"]["epochs"] == 2 and frame.attrs["config"]["hidden"] == []
    csv = tmp_path / "run.csv"
    assert main(["run", "--dataset", "iris", "--loss", "ce", "--optimizer", "sgd", "--epochs", "2",
                 "--lr", "0.05", "--hidden", "none", "--csv", str(csv)]) == 0
    cli = pd.read_csv(csv)
    for col in ("train_loss", "test_loss", "test_accuracy", "updates", "samples_seen", "learning_rate"):  # not seconds
        assert frame[col].tolist() == pytest.approx(cli[col].tolist(), rel=1e-12)


def test_run_plugin_params_and_dotted_keys():
    frame = harness.run("iris", "ce", "minibatch", epochs=1, hidden=[8], optimizer_params={"batch_size": 16},
                        dataset_params={"max_samples": 100}, **{"dataset.test_fraction": 0.3})
    config = frame.attrs["config"]
    assert config["dataset_params"]["test_fraction"] == 0.3
    assert config["optimizer_params"]["batch_size"] == 16
    assert config["dataset_params"]["max_samples"] == 100
    assert config["hidden"] == [8]


def test_run_errors_are_the_command_lines():
    with pytest.raises(UsageError, match="run.epochs"):
        harness.run("iris", "ce", "sgd", epochs=-1)
    with pytest.raises(UsageError, match="unknown setting 'epoch'.*did you mean 'epochs'"):
        harness.run("iris", "ce", "sgd", epoch=3)
    with pytest.raises(UsageError, match="one value"):
        harness.run("iris", "ce", "sgd", lr=[0.1, 0.2])
    with pytest.raises(UsageError, match="unknown optimizer 'sdg'"):
        harness.run("iris", "ce", "sdg")


@pytest.mark.slow
def test_run_sweep_from_a_dict(tiny_sweep):
    sweep = tiny_sweep
    assert isinstance(sweep, harness.Sweep) and sweep.name == "tiny"
    manifest = sweep.manifest
    assert manifest["status"] == "complete"
    # the runs: long format, every planned cell stored
    assert set(sweep.runs["cell_id"]) == set(manifest["cells"])
    assert len(sweep.plan) == len(manifest["cells"]) and set(sweep.plan["status"]) <= {"done", "stopped"}
    assert len(sweep.outcomes) == len(manifest["cells"])
    n_tune = sum(len(grid) for grid in sweep.tuning["lr_grid"])   # tuned once, on seed 0, grids extended at edges
    assert sorted(sweep.outcomes["phase"].value_counts().to_dict().items()) == [("final", 4), ("tune", n_tune)]
    # tuning: one row per optimizer, the chosen rate is one of its grid
    tuning = sweep.tuning.set_index("optimizer")
    for opt in ("sgd", "bgd"):   # the grid extends past an edge choice, so the chosen rate ends inside its grid
        grid, chosen = tuning.loc[opt, "lr_grid"], tuning.loc[opt, "chosen_lr"]
        assert chosen in grid and (grid[0] < chosen < grid[-1] or tuning.loc[opt, "edges"])
    # the dict is kept as the sweep's config file and the manifest's command reruns it
    config_file = sweep.path / "config.toml"
    assert manifest["config"]["source"] == str(config_file)
    assert manifest["command"].startswith(f"python -m harness sweep --config {config_file}")
    again = load_config(str(config_file), registry=load_registry()).to_dict()
    assert {k: v for k, v in again.items() if k != "source"} == \
        {k: v for k, v in manifest["config"].items() if k != "source"}
    assert not (sweep.path / "index.html").exists()   # report=False


@pytest.mark.slow
def test_run_sweep_from_a_path_with_overrides(tiny_sweep, tmp_path):
    path = tiny_sweep.path / "config.toml"
    sweep = harness.run_sweep(path, name="again", out=tmp_path, optimizers=["sgd"], epochs=1,
                              **{"tune.lr.sgd": [0.1]})
    assert set(sweep.outcomes["optimizer"]) == {"sgd"}
    assert set(sweep.outcomes["lr"]) == {0.1} and set(sweep.outcomes["phase"]) == {"final"}
    assert sweep.runs["epoch"].max() == 1
    assert "--set optimizers=sgd" in sweep.manifest["command"]
    page = sweep.report()
    assert page == sweep.path / "index.html" and page.read_text().startswith("<!")


@pytest.mark.slow
def test_claims_frame(tiny_sweep):
    claims = tiny_sweep.claims
    assert {"claim", "verdict", "reason"} <= set(claims.columns)
    assert len(claims) == len(load_registry().claims)
    # the same verdicts as the page: each claim read on the runs tuned for its objective
    page = pd.read_csv(tiny_sweep.report().parent / "tables" / "claims.csv", keep_default_na=False)
    shown = ["claim", "tuned for", "verdict", "pairs", "reason"]
    assert set(shown) <= set(claims.columns)
    assert page[shown].astype(str).values.tolist() == claims[shown].astype(str).values.tolist()


def test_load(tiny_sweep, tmp_path):
    loaded = harness.load(tiny_sweep.path)
    pd.testing.assert_frame_equal(loaded.runs, tiny_sweep.runs)
    with pytest.raises(HarnessError, match="no such sweep folder"):
        harness.load(tmp_path / "missing")
    with pytest.raises(HarnessError, match="not a sweep folder"):
        harness.load(tmp_path)


def test_sweep_dict_errors_name_the_key(tmp_path):
    with pytest.raises(UsageError, match="run.epochs"):
        harness.run_sweep({**TINY, "out": str(tmp_path), "run": {"epochs": "many"}})
    with pytest.raises(UsageError, match="unknown setting 'optimiser'"):
        harness.run_sweep({**TINY, "out": str(tmp_path)}, optimiser="sgd")
    with pytest.raises(UsageError, match="None is not a setting"):
        harness.run_sweep({**TINY, "out": str(tmp_path), "timeout": None})
    assert not any(tmp_path.iterdir())   # nothing written before the config is valid


def test_spelling_of_python_values():
    assert spell("run.hidden", (64, 32)) == "64x32"
    assert spell("hidden", ()) == "none"
    assert spell("run.hidden", [[64], [64, 32], []]) == "64,64x32,none"
    assert spell("run.lecture_stop", True) == "true"
    assert spell("run.lr", [0.01, 1e-05]) == "0.01,1e-05"
    assert to_sets({"epochs": 3, "optimizer": {"minibatch": {"batch_size": [16, 64]}}, "seeds": [0, 5]},
                   sweep=True) == ["run.epochs=3", "optimizer.minibatch.batch_size=16,64", "seeds=0,5"]
    with pytest.raises(UsageError, match="unknown setting 'seeds'"):
        to_sets({"seeds": 2}, sweep=False)


def test_toml_text_round_trips():
    table = {"name": "x", "seeds": 3, "run": {"hidden": [[64], []], "lr": [1e-05, 0.5], "lecture_stop": True},
             "dataset": {"*": {"max_samples": 100}, "face-vs-background": {"imbalance": 0.1}},
             "note": 'quote " and \\ and é'}
    assert tomllib.loads(dumps(table)) == table
    with pytest.raises(UsageError, match="run.epochs: None"):
        dumps({"run": {"epochs": None}})
