"""The results store: atomic per-cell files, stable reads, CSV export and the sweep lock."""
import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from harness.learning.runconfig import RunConfig
from harness.errors import HarnessError
from harness.results.schema import CELL_COLUMNS, RECORD_COLUMNS
from harness.results.store import (COLUMNS, SweepLock, cell_frame, clean_temporaries, done_cells, export_csv,
                           check_cell_file, read_cell, read_results, status_frame, write_cell)


def records(n_epochs=3, status="done"):
    rows = []
    for e in range(n_epochs + 1):
        row = {c: float(e) / 10 for c in RECORD_COLUMNS}
        row.update(epoch=e, updates=e * 2, samples_seen=e * 20, test_confusion="[[1, 0], [0, 1]]",
                   status=status, reason="reached max epochs")
        rows.append(row)
    return pd.DataFrame(rows)


def frame(cell_id="abc", seed=0, phase="final", hidden=(8,), reference=None):
    config = RunConfig.make("iris", "ce", "minibatch", seed=seed, lr=0.1, hidden=hidden,
                            optimizer_params={"batch_size": 16}, dataset_params={"max_samples": 50})
    return cell_frame(records(), config, sweep="s", cell_id=cell_id, phase=phase, reference=reference)


def test_cell_frame_has_the_schema_columns_and_config(tmp_path):
    f = frame(reference=0.25, hidden=())
    assert tuple(f.columns) == CELL_COLUMNS + RECORD_COLUMNS
    assert len(f) == 4 and list(f["epoch"]) == [0, 1, 2, 3]
    row = f.iloc[0]
    assert row["optimizer_params"] == '{"batch_size":16}'
    assert json.loads(row["dataset_params"]) == {"max_samples": 50}
    assert row["hidden"] == "[]" and row["reference_train_loss"] == 0.25
    assert math.isnan(frame().iloc[0]["reference_train_loss"])


def test_write_is_atomic_and_read_back_exactly(tmp_path):
    f = frame("c1")
    path = write_cell(tmp_path, f)
    assert path.name == "c1.parquet"
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["c1.parquet"]   # no temporary left
    back = read_cell(tmp_path, "c1")
    pd.testing.assert_frame_equal(back, f)
    assert done_cells(tmp_path) == {"c1"}
    with pytest.raises(ValueError):
        write_cell(tmp_path, pd.concat([frame("a"), frame("b")]))


def test_read_results_concatenates_in_a_stable_order_with_fixed_dtypes(tmp_path):
    write_cell(tmp_path, frame("b", seed=1))
    write_cell(tmp_path, frame("a", seed=0, phase="tune"))
    config = RunConfig.make("iris", "ce", "sgd", lr=0.1)
    write_cell(tmp_path, status_frame(config, "skipped", "refused: no", sweep="s", cell_id="z", phase="final"))
    out = read_results(tmp_path)
    assert tuple(out.columns) == COLUMNS
    assert list(out.drop_duplicates("cell_id")["cell_id"]) == ["a", "z", "b"] or \
        list(out.drop_duplicates("cell_id")["phase"]) == ["tune", "final", "final"]
    assert out["phase"].iloc[0] == "tune"
    assert out["epoch"].dtype == np.int64 and out["test_loss"].dtype == np.float64
    skipped = out[out["cell_id"] == "z"]
    assert len(skipped) == 1 and skipped["status"].iloc[0] == "skipped"
    assert skipped["reason"].iloc[0] == "refused: no" and math.isnan(skipped["test_loss"].iloc[0])
    assert len(read_results(tmp_path / "empty")) == 0


def test_read_results_keeps_to_the_cells_of_the_manifest(tmp_path):
    write_cell(tmp_path, frame("old"))
    write_cell(tmp_path, frame("new"))
    (tmp_path / "manifest.json").write_text(json.dumps({"cells": ["new"]}))
    assert set(read_results(tmp_path)["cell_id"]) == {"new"}
    assert set(read_results(tmp_path, all_cells=True)["cell_id"]) == {"old", "new"}


def test_csv_export_round_trips(tmp_path):
    write_cell(tmp_path, frame("a"))
    path = export_csv(tmp_path)
    back = pd.read_csv(path)
    assert list(back.columns) == list(COLUMNS)
    assert back["train_loss"].tolist() == pytest.approx(read_results(tmp_path)["train_loss"].tolist())


def test_clean_temporaries_removes_half_written_files(tmp_path):
    write_cell(tmp_path, frame("a"))
    (tmp_path / "results" / ".b.123.tmp").write_bytes(b"partial")
    assert clean_temporaries(tmp_path) == 1
    assert done_cells(tmp_path) == {"a"}


def test_lock_refuses_a_second_writer_and_is_released(tmp_path):
    with SweepLock(tmp_path):
        with pytest.raises(HarnessError, match=f"another sweep \\(pid {os.getpid()}\\) is writing"):
            SweepLock(tmp_path).acquire()
    SweepLock(tmp_path).acquire().release()   # free again after release


@pytest.mark.slow
def test_lock_dies_with_its_process(tmp_path):
    code = ("import sys, time; from harness.results.store import SweepLock; lock = SweepLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(HarnessError, match="another sweep"):
            SweepLock(tmp_path).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    SweepLock(tmp_path).acquire().release()   # the kernel released the dead holder's lock


@pytest.mark.parametrize("damage,reason", [
    ("truncate", "unreadable ("),
    ("swap", "holds another cell (b)"),
    ("foreign", "not a result file (wrong columns)"),
])
def test_read_results_names_a_damaged_file_with_the_resume_checks_reason(tmp_path, damage, reason):
    write_cell(tmp_path, frame("a"))
    path = tmp_path / "results" / "a.parquet"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "swap":
        write_cell(tmp_path, frame("b"))
        path.write_bytes((tmp_path / "results" / "b.parquet").read_bytes())
    else:
        pd.DataFrame({"x": [1]}).to_parquet(path)
    assert check_cell_file(path).startswith(reason)   # what a resume says before setting it aside
    with pytest.raises(HarnessError) as caught:      # what `harness report` says, reading each file once
        read_results(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path} is {reason}") and "\n" not in message
