"""The sweep end to end: tuning protocol, reuse, skips, errors, resume after kill -9, the lock."""
import pytest
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from harness.cli import main
from harness.results.store import SweepLock, done_cells, read_results

TINY = ["--datasets", "iris", "--losses", "ce", "--seeds", "2", "--epochs", "3",
        "--set", "run.hidden=8", "--quiet", "--no-report"]


def sweep(tmp_path, *args, name="t"):
    return main(["sweep", "--out", str(tmp_path), "--name", name, *TINY, *args])


def last_rows(results):
    return results.groupby("cell_id", sort=False).tail(1).reset_index(drop=True)


@pytest.mark.slow
def test_tuning_picks_the_lowest_validation_loss_and_runs_it_on_every_seed(tmp_path, capsys):
    # tuning once on seed 0 for one objective, no grid extension (tests/test_tuning.py covers the rest)
    code = sweep(tmp_path, "--optimizers", "bgd,sgd", "--set", "run.lr=0.01,0.3", "--jobs", "1",
                 "--set", "tune.seeds=0", "--set", "tune.metric=val_loss", "--set", "tune.max_extensions=0")
    assert code == 0
    results = read_results(tmp_path / "t")
    last = last_rows(results)
    tune, final = last[last.phase == "tune"], last[last.phase == "final"]
    assert len(tune) == 2 * 2 * 1          # optimizers x lrs x tuning seed 0
    assert len(final) == 2 * 2             # optimizers x seeds
    manifest = json.loads((tmp_path / "t" / "manifest.json").read_text())
    for opt in ("bgd", "sgd"):
        # recompute the rule independently from the stored tuning rows
        t = tune[tune.optimizer == opt]
        expected = t.sort_values(["val_loss", "lr"]).iloc[0]["lr"]
        assert set(final[final.optimizer == opt]["lr"]) == {expected}
        assert set(final[final.optimizer == opt]["seed"]) == {0, 1}
        chosen = [e for e in manifest["tuning"] if e["optimizer"] == opt]
        assert chosen[0]["chosen_lr"] == expected
    # the final seed-0 cell reuses the identical tuning run: same records, another phase and id
    for opt in ("bgd", "sgd"):
        t = results[(results.phase == "tune") & (results.optimizer == opt) & (results.seed == 0)]
        f = results[(results.phase == "final") & (results.optimizer == opt) & (results.seed == 0)]
        t = t[t.lr == f.lr.iloc[0]]
        cols = [c for c in results.columns if c not in ("phase", "cell_id")]
        pd.testing.assert_frame_equal(t[cols].reset_index(drop=True), f[cols].reset_index(drop=True))
        assert set(t.cell_id).isdisjoint(set(f.cell_id))
    # paired seeds: every optimizer starts from the same split, hence the same epoch-0 val loss
    start = results[(results.phase == "final") & (results.epoch == 0)]
    assert start.groupby("seed")["val_loss"].nunique().eq(1).all()
    assert manifest["status"] == "complete"
    assert manifest["counts"]["cells"] == len(last)
    for key in ("command", "config", "environment", "datasets", "started", "finished", "cells"):
        assert key in manifest
    env = manifest["environment"]
    assert env["packages"]["numpy"] and env["packages"]["scikit-learn"] and env["cpu"]["logical_cores"]
    assert any(p["name"] == "optimizers" for p in env["plugins"])
    assert manifest["datasets"]["iris"]["fingerprint"]


@pytest.mark.slow
def test_skips_and_convex_reference(tmp_path):
    code = sweep(tmp_path, "--optimizers", "bgd,minibatch-bn", "--set", "run.hidden=none", "--jobs", "1",
                 "--set", "run.lr=0.5")
    assert code == 0
    last = last_rows(read_results(tmp_path / "t"))
    bn = last[last.optimizer == "minibatch-bn"]
    assert len(bn) == 2 and set(bn.status) == {"skipped"}
    assert bn.reason.str.contains("hidden layer").all()
    bgd = last[last.optimizer == "bgd"]
    # hidden=() is the convex model: a reference optimum, below what 3 epochs reach
    assert bgd.reference_train_loss.notna().all()
    assert (bgd.reference_train_loss <= bgd.train_loss + 1e-9).all()


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    code = main(["sweep", "--out", str(tmp_path / "o"), *TINY[:-2], "--dry-run", "--set", "run.lr=0.1,0.2",
                 "--optimizers", "bgd,minibatch-bn", "--set", "run.hidden=none,8"])   # the last --set wins
    out = capsys.readouterr().out
    assert code == 0
    assert "SKIPPED: optimizer 'minibatch-bn': batch normalisation needs a hidden layer" in out
    assert "cells to train" in out and "iris / ce / bgd" in out
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_erroring_plugin_cell_is_recorded_and_the_sweep_goes_on(tmp_path, fake_dist):
    fake_dist("harness-broken", "harness_broken_opt", """
        import harness
        from harness.plugin.specs import OptimizerSpec

        def make():
            raise RuntimeError("boom: this optimizer cannot be built")

        @harness.hookimpl
        def register_optimizers(register):
            register(OptimizerSpec(name="broken", description="always fails", factory=make))
    """)
    code = sweep(tmp_path, "--optimizers", "broken,bgd", "--jobs", "1", "--set", "run.lr=0.1")
    assert code == 0
    last = last_rows(read_results(tmp_path / "t"))
    broken, bgd = last[last.optimizer == "broken"], last[last.optimizer == "bgd"]
    assert list(broken.status) == ["error", "error"]
    assert (broken.reason == "RuntimeError: boom: this optimizer cannot be built").all()
    assert set(bgd.status) == {"done"}
    # with a tuned lr, a group whose every tuning run failed is skipped in the final phase, with why
    code = sweep(tmp_path, "--optimizers", "broken", "--jobs", "1", "--set", "run.lr=0.1,0.2", name="t2")
    last = last_rows(read_results(tmp_path / "t2"))
    final = last[last.phase == "final"]
    assert code == 0 and set(final.status) == {"skipped"} and final.reason.str.contains("error").all()


@pytest.mark.slow
def test_a_cell_failing_in_a_worker_process_is_recorded(tmp_path, fake_dist):
    # the workers are forked from this process, so they see the plugin registered here
    fake_dist("harness-picky", "harness_picky_opt", """
        import harness
        from harness.plugin.specs import OptimizerSpec

        def make(**params):
            import os
            if os.getpid() == PARENT:
                raise AssertionError("the cell ran in the main process")
            raise ValueError("picky: refuses to run in a worker")

        PARENT = __import__("os").getpid()

        @harness.hookimpl
        def register_optimizers(register):
            register(OptimizerSpec(name="picky", description="fails in workers", factory=make))
    """)
    code = sweep(tmp_path, "--optimizers", "picky,bgd", "--jobs", "2", "--set", "run.lr=0.1")
    assert code == 0
    last = last_rows(read_results(tmp_path / "t"))
    picky, bgd = last[last.optimizer == "picky"], last[last.optimizer == "bgd"]
    assert set(picky.status) == {"error"} and len(picky) == 2
    assert (picky.reason == "ValueError: picky: refuses to run in a worker").all()
    assert set(bgd.status) == {"done"}


def test_a_second_sweep_on_the_same_folder_is_refused(tmp_path, capsys):
    with SweepLock(tmp_path / "t"):
        code = sweep(tmp_path, "--optimizers", "bgd", "--set", "run.lr=0.1")
    err = capsys.readouterr().err
    assert code == 1
    assert "another sweep" in err and len(err.strip().splitlines()) == 1
    assert done_cells(tmp_path / "t") == set()


def test_unavailable_dataset_stops_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "empty-sklearn-home"))
    code = main(["sweep", "--out", str(tmp_path / "o"), "--datasets", "face-vs-background-lfw",
                 "--losses", "ce", "--optimizers", "bgd", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "not available" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_report_is_built_and_its_path_printed(tmp_path, monkeypatch, capsys):
    import harness.report

    calls = []

    def fake_build_report(sweep_dir, results=None, manifest=None):
        calls.append((Path(sweep_dir), len(results), manifest["status"]))
        path = Path(sweep_dir) / "index.html"
        path.write_text("<html></html>")
        return path

    monkeypatch.setattr(harness.report, "build_report", fake_build_report, raising=False)
    code = main(["sweep", "--out", str(tmp_path), "--name", "r", *TINY[:-1], "--optimizers", "bgd",
                 "--set", "run.lr=0.1", "--csv"])
    out = capsys.readouterr().out
    assert code == 0
    assert calls and calls[0][0] == tmp_path / "r" and calls[0][2] == "complete"
    assert f"report: {tmp_path / 'r' / 'index.html'}" in out
    assert (tmp_path / "r" / "results.csv").exists()


# --------------------------------------------------------------------------- resume after kill -9
SLOW = ["--datasets", "iris", "--losses", "ce", "--optimizers", "point", "--seeds", "6",
        "--epochs", "150", "--set", "run.hidden=16", "--set", "run.lr=0.01", "--quiet", "--no-report"]


def run_sweep_process(tmp_path, jobs):
    args = [sys.executable, "-m", "harness", "sweep", "--out", str(tmp_path), "--name", "k", "--jobs", str(jobs),
            *SLOW]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


@pytest.mark.slow
def test_resume_after_kill_9_runs_every_cell_exactly_once(tmp_path):
    sweep_dir = tmp_path / "k"
    proc = run_sweep_process(tmp_path, jobs=2)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(done_cells(sweep_dir)) < 2 and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep finished before it could be killed; make SLOW slower"
        os.kill(proc.pid, signal.SIGKILL)          # kill -9 the sweep itself, mid-way
        proc.wait()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)    # and any worker it left behind
        except ProcessLookupError:
            pass
    survivors = done_cells(sweep_dir)
    assert 0 < len(survivors) < 6
    before = {c: (sweep_dir / "results" / f"{c}.parquet").stat().st_mtime_ns for c in survivors}
    assert json.loads((sweep_dir / "manifest.json").read_text())["status"] == "running"

    rerun = subprocess.run([sys.executable, "-m", "harness", "sweep", "--out", str(tmp_path), "--name", "k",
                            "--jobs", "2", *SLOW], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    results = read_results(sweep_dir)
    per_cell = results.groupby("cell_id")["epoch"].agg(["count", "nunique"])
    assert len(per_cell) == 6                               # every cell present
    assert (per_cell["count"] == per_cell["nunique"]).all()  # ... exactly once (no duplicate epochs)
    assert sorted(results.drop_duplicates("cell_id")["seed"]) == [0, 1, 2, 3, 4, 5]
    assert set(results.status) == {"done"}
    # finished cells were kept, not rerun
    assert {c: (sweep_dir / "results" / f"{c}.parquet").stat().st_mtime_ns for c in survivors} == before
    assert not list((sweep_dir / "results").glob(".*.tmp"))
    assert json.loads((sweep_dir / "manifest.json").read_text())["status"] == "complete"


@pytest.mark.slow
def test_force_reruns_stored_cells(tmp_path):
    assert sweep(tmp_path, "--optimizers", "bgd", "--set", "run.lr=0.1", "--jobs", "1") == 0
    path = next((tmp_path / "t" / "results").glob("*.parquet"))
    stamp = path.stat().st_mtime_ns
    assert sweep(tmp_path, "--optimizers", "bgd", "--set", "run.lr=0.1", "--jobs", "1") == 0
    assert path.stat().st_mtime_ns == stamp
    assert sweep(tmp_path, "--optimizers", "bgd", "--set", "run.lr=0.1", "--jobs", "1", "--force") == 0
    assert path.stat().st_mtime_ns != stamp
