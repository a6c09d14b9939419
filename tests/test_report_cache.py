"""The consolidated results cache (``<sweep>/results.cache.parquet``): same frame as reading the cell files,
and any change to the cell files (rewritten, added, removed, damaged) sends the read back to the files."""
import json
import os
import stat

import pandas as pd
import pytest

from harness.errors import HarnessError
from harness.learning.runconfig import RunConfig
from harness.results import store
from harness.results.schema import RECORD_COLUMNS
from harness.results.store import CACHE_NAME, cell_frame, read_results, status_frame, write_cell


def records(n_epochs=3, shift=0.0):
    rows = []
    for e in range(n_epochs + 1):
        row = {c: float(e) / 10 + shift for c in RECORD_COLUMNS}
        row.update(epoch=e, updates=e * 2, samples_seen=e * 20, test_confusion="[[1, 0], [0, 1]]",
                   status="done", reason="reached max epochs \u00e9")
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.loc[1, "test_loss"] = float("nan")   # a missing value survives the cache as NaN
    return frame


def cell(cell_id, seed=0, phase="final", shift=0.0, n_epochs=3):
    config = RunConfig.make("iris", "ce", "minibatch", seed=seed, lr=0.1, hidden=(8,),
                            optimizer_params={"batch_size": 16}, dataset_params={"max_samples": 50})
    return cell_frame(records(n_epochs, shift), config, sweep="s", cell_id=cell_id, phase=phase, reference=0.25)


def uncached(sweep_dir, **kw):
    """What read_results returns from the cell files alone (the cache removed first)."""
    (sweep_dir / CACHE_NAME).unlink(missing_ok=True)
    return read_results(sweep_dir, **kw)


@pytest.fixture
def sweep(tmp_path):
    write_cell(tmp_path, cell("b", seed=1))
    write_cell(tmp_path, cell("a", seed=0, phase="tune"))
    config = RunConfig.make("iris", "ce", "sgd", seed=2, lr=0.1)
    write_cell(tmp_path, status_frame(config, "skipped", "refused: no", sweep="s", cell_id="z", phase="final"))
    return tmp_path


def test_the_first_read_writes_the_cache_and_the_second_reads_it_with_an_equal_frame(sweep, monkeypatch):
    first = read_results(sweep)
    assert (sweep / CACHE_NAME).is_file()
    monkeypatch.setattr(store, "_read_all", lambda paths: pytest.fail("the cell files were read again"))
    second = read_results(sweep)
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    assert list(second.dtypes) == list(first.dtypes)
    assert second["test_loss"].isna().sum() == first["test_loss"].isna().sum() == 3   # one row each of a, b; z's only row


@pytest.mark.parametrize("change", ["rewritten", "added", "removed"])
def test_a_changed_added_or_removed_cell_file_invalidates_the_cache(sweep, change):
    read_results(sweep)
    before = (sweep / CACHE_NAME).read_bytes()
    if change == "rewritten":
        write_cell(sweep, cell("b", seed=1, shift=1.0))
    elif change == "added":
        write_cell(sweep, cell("c", seed=3))
    else:
        (sweep / "results" / "a.parquet").unlink()
    got = read_results(sweep)
    pd.testing.assert_frame_equal(got, uncached(sweep), check_exact=True)
    ids = set(got["cell_id"])
    assert ids == {"rewritten": {"a", "b", "z"}, "added": {"a", "b", "c", "z"}, "removed": {"b", "z"}}[change]
    if change == "rewritten":
        assert got.loc[got["cell_id"] == "b", "train_loss"].min() == pytest.approx(1.0)
    assert (sweep / CACHE_NAME).read_bytes() != before    # rewritten for the new listing


def test_a_damaged_cell_file_still_raises_its_one_line_error(sweep):
    read_results(sweep)
    path = sweep / "results" / "a.parquet"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(HarnessError) as caught:
        read_results(sweep)
    message = str(caught.value)
    assert message.startswith(f"{path} is unreadable (") and "\n" not in message


def test_the_manifest_plan_still_filters_and_a_new_plan_reads_the_files_again(sweep):
    (sweep / "manifest.json").write_text(json.dumps({"cells": ["a", "z"]}))
    assert set(read_results(sweep)["cell_id"]) == {"a", "z"}
    assert set(read_results(sweep)["cell_id"]) == {"a", "z"}            # from the cache
    assert set(read_results(sweep, all_cells=True)["cell_id"]) == {"a", "b", "z"}
    (sweep / "manifest.json").write_text(json.dumps({"cells": ["b"]}))
    assert set(read_results(sweep)["cell_id"]) == {"b"}


def test_a_damaged_or_foreign_cache_is_ignored_and_replaced(sweep):
    expected = read_results(sweep)
    (sweep / CACHE_NAME).write_bytes(b"not parquet")
    pd.testing.assert_frame_equal(read_results(sweep), expected, check_exact=True)
    pd.DataFrame({"x": [1]}).to_parquet(sweep / CACHE_NAME)
    pd.testing.assert_frame_equal(read_results(sweep), expected, check_exact=True)
    assert store._read_cache(sweep / CACHE_NAME, store._listing(sweep / "results")) is not None


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_folder_is_read_without_a_cache(sweep):
    mode = sweep.stat().st_mode
    sweep.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        got = read_results(sweep)
        assert not (sweep / CACHE_NAME).exists()
    finally:
        sweep.chmod(mode)
    pd.testing.assert_frame_equal(got, uncached(sweep), check_exact=True)


def test_a_read_only_folder_is_read_without_a_cache_even_as_root(sweep, monkeypatch):
    """Root ignores permission bits, so the failed write is simulated: it must be skipped, not raised."""
    def refuse(path, write, **kw):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(store, "atomic_write", refuse)
    got = read_results(sweep)
    assert not (sweep / CACHE_NAME).exists()
    pd.testing.assert_frame_equal(got, uncached(sweep), check_exact=True)
