"""Faults stay inside their cell: whatever a plugin does in a cell, the sweep ends with every cell stored.

Each test registers a misbehaving optimizer through a fake installed distribution
(``fake_dist``); the sweep's workers are forked, so they see it too.
"""
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import fields, replace

import psutil
import pytest

from harness.cli import main
from harness.plugin.loader import load_registry
from harness.results.store import read_results
from harness.sweep.config import load_config
from harness.sweep.runner import run_sweep

EARLIER: set = set()
TINY = ["--datasets", "iris", "--losses", "ce", "--seeds", "2", "--epochs", "2",
        "--set", "run.hidden=8", "--set", "run.lr=0.1", "--quiet", "--no-report"]

PLUGIN = """
    import os, signal, sys, time
    import harness
    from harness.plugin.specs import OptimizerSpec

    def make():
        {body}

    @harness.hookimpl
    def register_optimizers(register):
        register(OptimizerSpec(name="faulty", description="misbehaves", factory=make))
"""


def faulty(fake_dist, body: str):
    """Install the misbehaving plugin under a fresh module name (an imported module would be reused)."""
    module = f"harness_faulty_{uuid.uuid4().hex[:12]}"
    return fake_dist(module.replace("_", "-"), module, PLUGIN.format(body=body))


def sweep(tmp_path, *args, name="f"):
    return main(["sweep", "--out", str(tmp_path), "--name", name, *TINY, *args])


def last_rows(sweep_dir):
    return read_results(sweep_dir).groupby("cell_id", sort=False).tail(1).reset_index(drop=True)


def children():
    return {p.pid for p in psutil.Process().children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE}


@pytest.fixture(autouse=True)
def earlier_children():
    """Processes other tests left running (joblib keeps its loky workers for minutes): not ours."""
    global EARLIER
    EARLIER = children()


def workers_alive():
    """Child processes started during this test that are still alive."""
    return sorted(children() - EARLIER)


def assert_contained(tmp_path, capsys, status, reason_part, name="f"):
    """Every cell stored; the faulty ones with ``status``; the healthy optimizer unharmed; no worker left."""
    last = last_rows(tmp_path / name)
    bad, good = last[last.optimizer == "faulty"], last[last.optimizer == "bgd"]
    assert len(bad) == 2 and set(bad.status) == {status}, bad[["status", "reason"]]
    assert bad.reason.str.contains(reason_part, regex=False).all(), list(bad.reason)
    assert len(good) == 2 and set(good.status) == {"done"}
    assert workers_alive() == []
    manifest = json.loads((tmp_path / name / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["cells"] == 4
    return bad


@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_segfaulting_cell_is_recorded_with_its_signal(tmp_path, fake_dist, capsys, jobs):
    faulty(fake_dist, "os.kill(os.getpid(), signal.SIGSEGV)")
    assert sweep(tmp_path, "--optimizers", "faulty,bgd", "--jobs", jobs) == 0
    assert_contained(tmp_path, capsys, "error", "killed by signal 11 (SIGSEGV)")


@pytest.mark.parametrize("body, reason", [
    ("sys.exit(3)", "SystemExit: 3"),
    ("os._exit(3)", "exited with status 3"),
    ("raise KeyboardInterrupt", "KeyboardInterrupt"),
])
@pytest.mark.slow
def test_a_cell_that_exits_its_worker_is_recorded_with_the_exit_code(tmp_path, fake_dist, capsys, body, reason):
    faulty(fake_dist, body)
    assert sweep(tmp_path, "--optimizers", "faulty,bgd", "--jobs", "1") == 0
    assert_contained(tmp_path, capsys, "error", reason)


@pytest.mark.slow
def test_a_crashed_cell_is_retried_once_on_resume_then_kept(tmp_path, fake_dist, capsys):
    faulty(fake_dist, "os._exit(3)")
    sweep_dir = tmp_path / "f"
    stamps = []
    for _ in range(3):
        assert sweep(tmp_path, "--optimizers", "faulty,bgd", "--jobs", "1") == 0
        last = last_rows(sweep_dir)
        files = {c: (sweep_dir / "results" / f"{c}.parquet").stat().st_mtime_ns for c in last.cell_id}
        stamps.append(files)
        crashed = json.loads((sweep_dir / "manifest.json").read_text())["crashed"]
    faulty_ids = set(last[last.optimizer == "faulty"].cell_id)
    healthy = set(last.cell_id) - faulty_ids
    assert all(stamps[0][c] != stamps[1][c] for c in faulty_ids)   # first resume: retried
    assert all(stamps[1][c] == stamps[2][c] for c in faulty_ids)   # second resume: the record is kept
    assert all(stamps[0][c] == stamps[2][c] for c in healthy)      # healthy cells never rerun
    assert crashed == {c: 2 for c in faulty_ids}


def with_timeout(config, seconds):
    """The config with a per-cell timeout (field added by the CLI's --timeout; set directly if absent)."""
    if any(f.name == "timeout" for f in fields(config)):
        return replace(config, timeout=seconds)
    object.__setattr__(config, "timeout", seconds)
    return config


@pytest.mark.slow
def test_a_hanging_cell_is_stopped_by_the_per_cell_timeout(tmp_path, fake_dist, capsys):
    faulty(fake_dist, "time.sleep(600)")
    registry = load_registry()
    config = load_config(sets=["run.hidden=8", "run.lr=0.1"], registry=registry, overrides={
        "datasets": "iris", "losses": "ce", "optimizers": "faulty,bgd", "seeds": "2", "epochs": "2",
        "jobs": "2", "out": str(tmp_path), "name": "f"})
    started = time.monotonic()
    run_sweep(with_timeout(config, 1.5), registry=registry, quiet=True, echo=lambda *_: None)
    assert time.monotonic() - started < 60
    bad = assert_contained(tmp_path, capsys, "timeout", "1.5 s per-cell timeout")
    assert len(bad) == 2


@pytest.mark.slow
def test_exception_text_that_is_not_utf8_or_huge_is_recorded_safely(tmp_path, fake_dist, capsys):
    # a file name with an undecodable byte (a lone surrogate in Python), then a megabyte of text
    faulty(fake_dist, "raise FileNotFoundError(b'data-\\xff.csv: '.decode('utf-8', 'surrogateescape') "
                      "+ 'x' * 1_000_000)")
    assert sweep(tmp_path, "--optimizers", "faulty,bgd", "--jobs", "2") == 0
    bad = assert_contained(tmp_path, capsys, "error", "FileNotFoundError")
    assert bad.reason.str.contains(r"data-\udcff.csv", regex=False).all()
    assert (bad.reason.str.len() < 3000).all()


def cell_file(sweep_dir, optimizer="bgd", seed=0):
    last = last_rows(sweep_dir)
    row = last[(last.optimizer == optimizer) & (last.seed == seed) & (last.phase == "final")].iloc[0]
    return sweep_dir / "results" / f"{row.cell_id}.parquet"


def rerun_after(tmp_path, capsys, damage):
    """Sweep, damage one stored file, sweep again: the file is set aside with a warning and redone."""
    args = ["--optimizers", "bgd", "--jobs", "1"]
    assert sweep(tmp_path, *args) == 0
    sweep_dir = tmp_path / "f"
    before = read_results(sweep_dir)
    path = cell_file(sweep_dir)
    damage(path, sweep_dir)
    capsys.readouterr()
    assert main(["sweep", "--out", str(tmp_path), "--name", "f", *TINY[:-2], "--no-report", *args]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(path) in warnings[0] and "runs again" in warnings[0]
    assert len(list((sweep_dir / "set-aside").iterdir())) == 1      # kept, not deleted
    after = read_results(sweep_dir)
    cols = [c for c in before.columns if c != "train_seconds"]
    assert after[cols].equals(before[cols])                          # nothing lost, same records
    return warnings[0]


@pytest.mark.slow
def test_a_truncated_result_file_is_set_aside_and_its_cell_rerun(tmp_path, capsys):
    def truncate(path, _):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    assert "unreadable" in rerun_after(tmp_path, capsys, truncate)


@pytest.mark.slow
def test_a_foreign_result_file_under_a_cell_name_is_set_aside(tmp_path, capsys):
    def swap(path, sweep_dir):
        other = cell_file(sweep_dir, seed=1)
        path.write_bytes(other.read_bytes())       # another cell's file under this name

    assert "holds another cell" in rerun_after(tmp_path, capsys, swap)


@pytest.mark.slow
def test_a_parquet_file_with_another_schema_is_set_aside(tmp_path, capsys):
    import pandas as pd

    def foreign(path, _):
        pd.DataFrame({"a": [1, 2]}).to_parquet(path)

    assert "wrong columns" in rerun_after(tmp_path, capsys, foreign)


@pytest.mark.slow
def test_a_sweep_with_another_config_on_the_same_folder_is_refused(tmp_path, capsys):
    assert sweep(tmp_path, "--optimizers", "bgd", "--jobs", "1") == 0
    sweep_dir = tmp_path / "f"
    files = {p.name: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file() and p.name != ".lock"}
    capsys.readouterr()
    code = sweep(tmp_path, "--optimizers", "sgd", "--jobs", "1")
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "--name" in err and "--force" in err and "optimizers" in err
    assert {p.name: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file() and p.name != ".lock"} == files
    # the same config with another --jobs is the same sweep (resumes); --force replaces it
    assert sweep(tmp_path, "--optimizers", "bgd", "--jobs", "2") == 0
    assert sweep(tmp_path, "--optimizers", "sgd", "--jobs", "1", "--force") == 0
    assert set(last_rows(sweep_dir).optimizer) == {"sgd"}


def test_a_failed_cell_write_names_the_cell_and_folder(tmp_path, capsys, monkeypatch):
    import harness.results.store as store

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full_disk)
    code = sweep(tmp_path, "--optimizers", "bgd", "--jobs", "1")
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith("error: could not store cell") or "could not store cell" in err
    assert str(tmp_path / "f" / "results") in err and "No space left" in err
    assert workers_alive() == []


@pytest.mark.slow
def test_workers_exit_when_the_main_process_is_killed(tmp_path, fake_dist):
    root = faulty(fake_dist, "time.sleep(600)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "sweep", "--out", str(tmp_path), "--name", "k",
                             *TINY, "--optimizers", "faulty", "--jobs", "2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(parent.children()) < 2:
            time.sleep(0.1)
        workers = parent.children(recursive=True)
        assert len(workers) >= 2, "the sweep never started its workers"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        gone, alive = psutil.wait_procs(workers, timeout=5)
        assert alive == []
        # nothing holds the sweep's output open any more: reading it ends
        assert proc.stdout.read() is not None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
