"""`harness export DIR --to mlflow|csv`: every stored run round-trips through MLflow's own client, once."""
from __future__ import annotations

import sys

import pandas as pd
import pytest

import harness
from harness.cli.main import main
from harness.export.mlflow_runs import CELL_TAG, DONE_TAG, INSTALL_HINT, RUN_STATUS, default_tracking_uri

TINY = {"name": "tiny", "datasets": ["iris"], "losses": ["ce"], "optimizers": ["sgd", "minibatch"], "seeds": 2,
        "jobs": 1, "run": {"epochs": 2, "hidden": [], "lr": 0.05}, "optimizer": {"minibatch": {"batch_size": 16}}}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return harness.run_sweep({**TINY, "out": str(tmp_path_factory.mktemp("export"))}, report=False)


def _runs(client, experiment_id):
    return client.search_runs([experiment_id], max_results=1000)


@pytest.mark.slow
def test_mlflow_round_trip_and_rerun(sweep, capsys):
    mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install 'harness-gd[mlflow]')")
    assert main(["export", str(sweep.path), "--to", "mlflow"]) == 0
    cells = sweep.runs.groupby("cell_id")
    assert f"{cells.ngroups} runs exported, 0 already there" in capsys.readouterr().out

    client = mlflow.tracking.MlflowClient(tracking_uri=default_tracking_uri(sweep.path))
    experiment = client.get_experiment_by_name("tiny")
    runs = {r.data.tags[CELL_TAG]: r for r in _runs(client, experiment.experiment_id)}
    assert set(runs) == set(sweep.runs["cell_id"])
    for cell_id, cell in cells:
        run, first, last = runs[cell_id], cell.iloc[0], cell.iloc[-1]
        assert run.data.tags["harness.sweep"] == "tiny" and run.data.tags["harness.phase"] == first["phase"]
        assert run.data.tags[DONE_TAG] == "true"
        assert run.info.status == RUN_STATUS[last["status"]]
        assert run.data.tags["harness.status"] == last["status"]
        params = run.data.params
        assert params["optimizer"] == first["optimizer"] and float(params["lr"]) == first["lr"]
        assert int(params["seed"]) == first["seed"] and params["hidden"] == "none"
        if first["optimizer"] == "minibatch":
            assert params["optimizer.batch_size"] == "16"
        history = sorted(client.get_metric_history(run.info.run_id, "train_loss"), key=lambda m: m.step)
        assert [m.step for m in history] == cell["epoch"].tolist()
        assert [m.value for m in history] == pytest.approx(cell["train_loss"].tolist())

    # a rerun adds nothing
    assert main(["export", str(sweep.path), "--to", "mlflow"]) == 0
    assert f"0 runs exported, {cells.ngroups} already there" in capsys.readouterr().out
    assert len(_runs(client, experiment.experiment_id)) == cells.ngroups

    # a run an interrupted export left without its completion tag is replaced, not duplicated
    half = next(iter(runs.values()))
    client.delete_tag(half.info.run_id, DONE_TAG)
    assert main(["export", str(sweep.path), "--to", "mlflow"]) == 0
    assert "1 runs exported" in capsys.readouterr().out
    again = _runs(client, experiment.experiment_id)
    assert len(again) == cells.ngroups and all(r.data.tags[DONE_TAG] == "true" for r in again)


def test_without_mlflow_says_how_to_install(sweep, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)            # import mlflow -> ImportError
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    assert main(["export", str(sweep.path), "--to", "mlflow"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"harness export: error: {INSTALL_HINT}" and "\n" not in err


def test_csv_and_usage_errors(sweep, tmp_path, capsys):
    assert main(["export", str(sweep.path), "--to", "csv"]) == 0
    frame = pd.read_csv(sweep.path / "results.csv")
    assert len(frame) == len(sweep.runs) and set(frame["cell_id"]) == set(sweep.runs["cell_id"])
    assert main(["export", str(sweep.path), "--to", "csv", "--tracking-uri", "sqlite:///x.db"]) == 2
    assert main(["export", str(tmp_path), "--to", "mlflow"]) == 1
    assert "no stored results" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["export", str(sweep.path), "--to", "wandb"])
    assert exc.value.code == 2
