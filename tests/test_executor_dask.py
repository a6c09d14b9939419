"""The dask backend on a LocalCluster gives the same records as local processes; the scheduler check is bounded."""
import socket
import threading
import time

import pandas as pd
import pytest

from harness.errors import HarnessError, UsageError
from harness.plugin.loader import load_registry
from harness.results.store import read_results
from harness.sweep.config import load_config
from harness.sweep.executor import SCHEDULER_TIMEOUT, connect, run_tasks
from harness.sweep.runner import run_sweep

distributed = pytest.importorskip("distributed")


def square(x):
    return x * x


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c:
        yield c


@pytest.mark.slow
def test_run_tasks_streams_every_result(cluster):
    out = dict(run_tasks(square, range(7), backend="dask", scheduler=cluster.scheduler_address,
                         key=lambda t: f"sq-{t}"))
    assert out == {i: i * i for i in range(7)}


@pytest.mark.slow
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
        run_sweep(cfg, registry=registry, quiet=True, echo=lambda *_: None)
    a = read_results(tmp_path / "dask" / "same").drop(columns="train_seconds")
    b = read_results(tmp_path / "loky" / "same").drop(columns="train_seconds")
    assert len(a) > 0 and set(a.phase) == {"tune", "final"}
    pd.testing.assert_frame_equal(a, b)


# --------------------------------------------------------------------------- the scheduler check


@pytest.fixture
def silent_port():
    """A TCP server on 127.0.0.1 that accepts connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused(address):
    started = time.monotonic()
    with pytest.raises(HarnessError) as info:
        connect(address)
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert len(message.splitlines()) == 1 and address in message
    assert elapsed < SCHEDULER_TIMEOUT + 3, f"took {elapsed:.1f} s"
    return message


@pytest.mark.slow
def test_a_port_that_accepts_but_never_answers_fails_within_seconds(silent_port):
    port, accepted = silent_port
    message = refused(f"tcp://127.0.0.1:{port}")
    assert "handshake" in message and accepted, "the probe never connected"


def test_a_refused_port_fails_at_once():
    assert "cannot reach" in refused(f"tcp://127.0.0.1:{free_port()}")


@pytest.mark.parametrize("address, expected", [("nonsense", "HOST:PORT"), ("bogus://h:1", "unknown scheme"),
                                               ("tcp://:::", "HOST:PORT")])
def test_garbage_addresses_are_refused_as_bad_usage(address, expected, recwarn):
    with pytest.raises(UsageError, match=expected):
        connect(address)
    assert not [w for w in recwarn if "TimeoutError" in str(w.message)]
