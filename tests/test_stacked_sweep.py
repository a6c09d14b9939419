"""Stacked tuning inside a sweep: the same stored records as cell-by-cell tuning, faults still per cell.

With a held-out tuning seed no final run reuses a tuning run, so the runner
trains one group's tuning rates as one task (``harness.learning.stacked``).
"""
import json
import uuid

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.results.store import read_results
from harness.sweep import runner

HELD_OUT = ["--datasets", "iris", "--losses", "ce", "--optimizers", "bgd,sgd,minibatch", "--seeds", "2",
            "--epochs", "3", "--set", "run.hidden=8", "--set", "tune.seeds=1000",
            "--set", "tune.lr.bgd=0.1,1,10", "--set", "tune.lr.sgd=0.001,0.01,0.1",
            "--set", "tune.lr.minibatch=0.01,0.1,1", "--set", "tune.max_extensions=1",
            "--quiet", "--no-report", "--jobs", "1"]
VOLATILE = ["train_seconds", "sweep"]


def rows(folder):
    frame = read_results(folder).sort_values(["cell_id", "epoch"]).reset_index(drop=True)
    return frame.drop(columns=[c for c in VOLATILE if c in frame])


@pytest.mark.slow
def test_stacked_tuning_stores_what_cell_by_cell_tuning_stores(tmp_path, monkeypatch):
    assert main(["sweep", "--out", str(tmp_path), "--name", "stacked", *HELD_OUT]) == 0
    monkeypatch.setattr(runner, "_stacks", lambda tasks: list(tasks))      # every cell its own task
    assert main(["sweep", "--out", str(tmp_path), "--name", "alone", *HELD_OUT]) == 0
    stacked, alone = rows(tmp_path / "stacked"), rows(tmp_path / "alone")
    assert len(stacked) and set(stacked.phase) == {"tune", "final"}
    pd.testing.assert_frame_equal(stacked, alone, check_exact=False, rtol=1e-10, atol=0)
    manifest = json.loads((tmp_path / "stacked" / "manifest.json").read_text())
    assert manifest["tuning_protocol"]["stacked"] is True
    # the page says how the rates were chosen and how the stacked runs' seconds were measured
    assert main(["report", str(tmp_path / "stacked")]) == 0
    page = (tmp_path / "stacked" / "index.html").read_text(encoding="utf-8")
    assert "held-out tuning seed(s) [1000]" in page and "trained stacked" in page
    # the tuning runs ran on the held-out seed only, the final runs on the evaluation seeds only
    full = read_results(tmp_path / "stacked")
    assert set(full[full.phase == "tune"].seed) == {1000} and set(full[full.phase == "final"].seed) == {0, 1}
    # evidence that they trained stacked: a stack shares its epoch seconds evenly, so the first epoch's
    # seconds are equal across one group's rates; trained alone they are not
    for folder, shared in (("stacked", True), ("alone", False)):
        data = read_results(tmp_path / folder)
        first = data[(data.phase == "tune") & (data.epoch == 1) & (data.optimizer == "sgd")]
        first = first[first.lr.isin([0.001, 0.01, 0.1])]
        assert (first.train_seconds.nunique() == 1) is shared


PLUGIN = """
    import os
    import harness
    from harness.plugin.specs import OptimizerSpec

    def make():
        os._exit(3)

    @harness.hookimpl
    def register_optimizers(register):
        register(OptimizerSpec(name="faulty", description="kills its worker", factory=make))
"""


@pytest.mark.slow
def test_a_stack_whose_worker_dies_records_every_cell_of_it(tmp_path, fake_dist):
    module = f"harness_faulty_{uuid.uuid4().hex[:12]}"
    fake_dist(module.replace("_", "-"), module, PLUGIN)
    assert main(["sweep", "--out", str(tmp_path), "--name", "f", "--datasets", "iris", "--losses", "ce",
                 "--optimizers", "faulty,bgd", "--seeds", "2", "--epochs", "2", "--set", "run.hidden=8",
                 "--set", "tune.seeds=1000", "--set", "tune.lr.faulty=0.01,0.1,1",
                 "--set", "tune.lr.bgd=0.1,1,10", "--set", "tune.max_extensions=0",
                 "--quiet", "--no-report", "--jobs", "2"]) == 0
    last = read_results(tmp_path / "f").groupby("cell_id").tail(1)
    bad = last[(last.optimizer == "faulty") & (last.phase == "tune")]
    assert sorted(bad.lr) == [0.01, 0.1, 1.0]
    assert set(bad.status) == {"error"} and bad.reason.str.contains("exited with status 3").all()
    good = last[last.optimizer == "bgd"]
    assert set(good.status) <= {"done", "diverged"} and set(good[good.phase == "final"].seed) == {0, 1}
    manifest = json.loads((tmp_path / "f" / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert np.all([manifest["crashed"].get(c) == 1 for c in bad.cell_id])
