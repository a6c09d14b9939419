"""The dask backend on a LocalCluster gives the same records as local loky processes."""
import pandas as pd
import pytest

from harness.sweep.config import load_config
from harness.sweep.executor import run_tasks
from harness.plugin.loader import load_registry
from harness.results.store import read_results
from harness.sweep.runner import run_sweep

distributed = pytest.importorskip("distributed")


def square(x):
    return x * x


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c:
        yield c


def test_run_tasks_streams_every_result(cluster):
    out = dict(run_tasks(square, range(7), backend="dask", scheduler=cluster.scheduler_address,
                         key=lambda t: f"sq-{t}"))
    assert out == {i: i * i for i in range(7)}


def test_dask_backend_gives_the_same_records_as_loky(cluster, tmp_path):
    registry = load_registry()
    overrides = {"datasets": "iris", "losses": "ce,bce", "optimizers": "sgd,minibatch-bn", "seeds": "2",
                 "epochs": "3", "name": "same"}
    sets = ["run.lr=0.05,0.3", "run.hidden=8"]
    dask_cfg = load_config(sets=sets, registry=registry, overrides={
        **overrides, "out": str(tmp_path / "dask"), "backend": "dask", "scheduler": cluster.scheduler_address})
    loky_cfg = load_config(sets=sets, registry=registry, overrides={
        **overrides, "out": str(tmp_path / "loky"), "jobs": "2"})
    for cfg in (dask_cfg, loky_cfg):
        run_sweep(cfg, registry=registry, quiet=True, report=False, echo=lambda *_: None)
    a = read_results(tmp_path / "dask" / "same").drop(columns="train_seconds")
    b = read_results(tmp_path / "loky" / "same").drop(columns="train_seconds")
    assert len(a) > 0 and set(a.phase) == {"tune", "final"}
    pd.testing.assert_frame_equal(a, b)
