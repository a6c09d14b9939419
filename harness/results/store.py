"""The results store: one Parquet file per cell, written atomically, plus a lock.

Layout under a sweep directory ``reports/<name>/``::

    results/<cell_id>.parquet   one file per finished cell (long format: one row per epoch)
    set-aside/                  damaged or foreign result files, moved out of the way (never deleted)
    results.cache.parquet       the cells read_results last returned, in one file (see read_results)
    manifest.json               see harness.results.manifest
    .lock                       fcntl lock held by the sweep writing here
    results.csv                 only with --csv

A cell file appears complete or not at all (written to a temporary name, then
``os.replace``), so a sweep killed at any moment loses at most the cells in
flight, and a rerun skips every cell whose file exists. The lock is an OS-level
``flock``: the kernel releases it when the process dies, so a crashed sweep
never leaves a stale lock behind.

Before a sweep trusts a stored file it checks it (:func:`verify_stored`): the
file must read as Parquet, have exactly the result columns and hold only its
own cell id. Anything else (a truncated write, another cell's file copied under
this name, another program's Parquet) is moved to ``set-aside/`` with a warning
and the cell runs again.
"""
from __future__ import annotations

import errno
import fcntl
import functools
import json
import math
import os
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.errors import HarnessError
from harness.plugin.cache import atomic_write
from harness.results.schema import (BOOL_COLUMNS, CELL_COLUMNS, DIAGNOSTIC_COLUMNS, INT_COLUMNS, RECORD_COLUMNS,
                                    STR_COLUMNS)

if TYPE_CHECKING:  # results sit below learning: a RunConfig is only read through its attributes
    from harness.learning.runconfig import RunConfig

__all__ = ["COLUMNS", "SweepLock", "cell_frame", "relabel_cell", "status_frame", "write_cell", "read_cell",
           "done_cells", "read_results", "export_csv", "results_dir", "safe_text", "check_cell_file",
           "verify_stored", "set_aside", "MAX_TEXT"]

COLUMNS = CELL_COLUMNS + RECORD_COLUMNS
FLOAT_COLUMNS = tuple(c for c in COLUMNS if c not in INT_COLUMNS + BOOL_COLUMNS + STR_COLUMNS)
MAX_TEXT = 2000   # characters kept of a free-text field (an exception message can be megabytes)


def safe_text(value, limit: int | None = MAX_TEXT) -> str:
    """``value`` as text Parquet can store: lone surrogates (undecodable bytes in a file name)
    become ``\\udcXX`` escapes, and text longer than ``limit`` characters is cut to ``limit``
    with a marker at its end. Applying it twice gives the same text."""
    text = value if isinstance(value, str) else str(value)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if limit is not None and len(text) > limit:
        # the marker counts towards the limit, so a cut text is never cut again (writing, then reading, a cell)
        marker = f"... [{len(text)} characters in all]"
        text = text[:max(0, limit - len(marker))] + marker
    return text


def results_dir(sweep_dir) -> Path:
    return Path(sweep_dir) / "results"


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _cell_values(config: RunConfig, sweep: str, cell_id: str, phase: str, reference: float) -> dict:
    d = config.to_dict()
    values = {"sweep": sweep, "cell_id": cell_id, "phase": phase}
    for col in CELL_COLUMNS[3:-1]:
        values[col] = d[col]
    values["hidden"] = _canonical(list(config.hidden))
    for col in ("optimizer_params", "loss_params", "dataset_params"):
        values[col] = _canonical(d[col])
    values["reference_train_loss"] = math.nan if reference is None else float(reference)
    return values


def _coerce(frame: pd.DataFrame, stored_text: bool = False) -> pd.DataFrame:
    """Fixed column order and dtypes, so every cell file concatenates cleanly (any frame: stored or foreign).

    ``stored_text``: the string columns were read from the store, where every value was
    made safe when it was written; only missing values are filled (no per-value pass).
    """
    for col in COLUMNS:
        if col not in frame:
            frame[col] = "" if col in STR_COLUMNS else math.nan
    frame = frame.loc[:, list(COLUMNS)].copy()
    for col in INT_COLUMNS:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").fillna(0).astype("int64")
    for col in BOOL_COLUMNS:
        frame[col] = frame[col].astype(bool)
    for col in FLOAT_COLUMNS:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    for col in STR_COLUMNS:
        if stored_text:
            frame[col] = frame[col].astype(object).where(frame[col].notna(), "")
        else:
            frame[col] = frame[col].map(functools.partial(_text, limit=_limit(col))).astype(object)
    return frame.reset_index(drop=True)


def _limit(col: str) -> int | None:
    return None if col == "test_confusion" else MAX_TEXT


def _text(value, limit: int | None) -> str:
    """A string column's stored value: "" for a missing one, else :func:`safe_text`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return safe_text(value, limit=limit)


def _typed_column(col: str, values) -> np.ndarray:
    """One column in its stored dtype: used as is when it already has it (the trainer's
    records do), else coerced exactly as :func:`_coerce` would."""
    values = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if col in STR_COLUMNS:
        limit = _limit(col)
        return np.array([_text(v, limit) for v in values] if len(values) else [], dtype=object)
    if col in INT_COLUMNS and values.dtype == np.int64:
        return values
    if col not in INT_COLUMNS + BOOL_COLUMNS and values.dtype == np.float64:
        return values
    return _coerce_column(col, pd.Series(values))


def _coerce_column(col: str, series: pd.Series) -> np.ndarray:
    if col in INT_COLUMNS:
        return pd.to_numeric(series, errors="coerce").fillna(0).astype("int64").to_numpy()
    if col in BOOL_COLUMNS:
        return series.astype(bool).to_numpy()
    return pd.to_numeric(series, errors="coerce").astype("float64").to_numpy()


def _constant_column(col: str, value, n: int):
    """``n`` copies of one cell value in the column's stored dtype, converted once, not per row."""
    if col in STR_COLUMNS:
        text = _text(value, _limit(col))
        return pd.Series([text] * n, dtype=object)
    kind = type(value)
    if col in INT_COLUMNS and kind in (int, bool, float) and not (kind is float and math.isnan(value)):
        return np.full(n, int(value), np.int64)          # what to_numeric + astype("int64") make of it
    if col in BOOL_COLUMNS and kind in (bool, int):
        return np.full(n, bool(value))
    if col not in INT_COLUMNS + BOOL_COLUMNS and (value is None or kind in (int, float, bool)):
        return np.full(n, math.nan if value is None else float(value), np.float64)
    return np.repeat(_coerce_column(col, pd.Series([value], dtype=object)), n)   # anything else: as _coerce


def cell_frame(records: pd.DataFrame, config: RunConfig, *, sweep: str, cell_id: str, phase: str,
               reference: float | None = None) -> pd.DataFrame:
    """The trainer's per-epoch records with the cell's config columns in front.

    Built column by column in the stored dtypes (the frame :func:`write_cell`
    stores without another pass); a column already typed is taken as is.
    """
    missing = [c for c in RECORD_COLUMNS if c not in records.columns]
    if missing:
        raise ValueError(f"trainer records lack columns {missing}")
    n = len(records)
    columns = {col: _constant_column(col, value, n)
               for col, value in _cell_values(config, sweep, cell_id, phase, reference).items()}
    for col in RECORD_COLUMNS:
        columns[col] = _typed_column(col, records[col])
    for col in RECORD_COLUMNS:
        if col in STR_COLUMNS:   # as a Series, or pandas would infer its own string dtype for them
            columns[col] = pd.Series(columns[col], dtype=object, copy=False)
    return pd.DataFrame(columns, columns=list(COLUMNS))


def relabel_cell(frame: pd.DataFrame, *, cell_id: str, phase: str) -> pd.DataFrame:
    """A copy of a stored-form cell frame under another cell id and phase (a final cell that reuses
    a tuning run's records), still in stored form, so :func:`write_cell` stores it as it is."""
    frame = frame.copy()
    for col, value in (("cell_id", cell_id), ("phase", phase)):
        frame[col] = _constant_column(col, value, len(frame))
    return frame


def status_frame(config: RunConfig, status: str, reason: str, *, sweep: str, cell_id: str, phase: str,
                 reference: float | None = None) -> pd.DataFrame:
    """One row (epoch 0, no metrics) for a cell that did not train: skipped or error."""
    row = {col: math.nan for col in RECORD_COLUMNS}
    row.update(epoch=0, updates=0, samples_seen=0, train_seconds=0.0, learning_rate=config.lr,
               test_confusion="", status=status, reason=safe_text(reason))   # before pandas sees it
    return cell_frame(pd.DataFrame([row]), config, sweep=sweep, cell_id=cell_id, phase=phase,
                      reference=reference)


def _stored_dtype(col: str) -> np.dtype:
    return np.dtype(np.int64 if col in INT_COLUMNS else bool if col in BOOL_COLUMNS
                    else object if col in STR_COLUMNS else np.float64)


def _is_stored_form(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` already is what :func:`_coerce` would make of it (so it is stored as is):
    the columns in order, their dtypes, and text that :func:`_text` leaves unchanged."""
    if list(frame.columns) != list(COLUMNS):
        return False
    if any(frame[col].dtype != _stored_dtype(col) for col in COLUMNS):
        return False
    for col in STR_COLUMNS:
        limit = _limit(col)
        for value in frame[col].to_numpy():
            if type(value) is not str:
                return False
            plain = value.isascii() and (limit is None or len(value) <= limit)   # safe_text keeps it as is
            if not plain and safe_text(value, limit) != value:
                return False
    return True


def write_cell(sweep_dir, frame: pd.DataFrame) -> Path:
    """Write one cell's rows atomically: a temporary file, fsync, then ``os.replace``.

    A frame from :func:`cell_frame` is stored as it is; any other is coerced first."""
    ids = frame["cell_id"].unique()
    if len(ids) != 1:
        raise ValueError(f"write_cell expects one cell, got {len(ids)}")
    folder = results_dir(sweep_dir)
    path = folder / f"{ids[0]}.parquet"
    stored = frame if _is_stored_form(frame) else _coerce(frame.copy())
    try:
        atomic_write(path, lambda fh: pq.write_table(_table(stored), fh), fsync=True)
    except OSError as exc:
        raise HarnessError(f"could not store cell {ids[0]} in {folder}: {exc.strerror or exc}; "
                           "the cells stored before it are kept") from None
    return path


@functools.lru_cache(maxsize=1)
def _stored_schema() -> pa.Schema:
    """The Arrow schema (with pandas' metadata) of every frame in stored form: it depends on the
    columns and their dtypes only, so it is worked out once, from a one-row frame."""
    row = {col: pd.Series([_stored_dtype(col).type(0) if col not in STR_COLUMNS else ""],
                          dtype=_stored_dtype(col)) for col in COLUMNS}
    return pa.Table.from_pandas(pd.DataFrame(row, columns=list(COLUMNS)), preserve_index=False).schema


def _table(frame: pd.DataFrame) -> pa.Table:
    """The Arrow table ``frame.to_parquet(index=False)`` writes for a frame in stored form, made
    column by column against the fixed schema (pandas re-infers it at every call); NaN is stored
    as null, as pandas stores it."""
    schema = _stored_schema()
    return pa.Table.from_arrays([pa.array(frame[col].to_numpy(), type=field.type, from_pandas=True)
                                 for col, field in zip(COLUMNS, schema)], schema=schema)


def read_cell(sweep_dir, cell_id: str) -> pd.DataFrame | None:
    path = results_dir(sweep_dir) / f"{cell_id}.parquet"
    if not path.exists():
        return None
    return _coerce(pd.read_parquet(path))


def check_cell_file(path: Path) -> str | None:
    """Why the result file at ``path`` cannot be this cell's result, or None if it can.

    Reads only the schema and the ``cell_id`` column (cheap: used on every stored
    cell when a sweep resumes).
    """
    try:
        names = pq.read_schema(path).names
        ids = (lambda: pq.read_table(path, columns=["cell_id"]).column("cell_id").to_pylist())
        return _problem(path, names, ids)
    except Exception as exc:   # pyarrow raises ArrowInvalid, OSError, ... for a damaged file
        return f"unreadable ({_one_line(exc)})"


def _problem(path: Path, names, cell_ids, missing_ok=()) -> str | None:
    """The check behind :func:`check_cell_file` and :func:`_read_checked`: the exact
    columns (but for those in ``missing_ok``), and rows of this file's cell only
    (``cell_ids()`` is called only then)."""
    if not set(COLUMNS) - set(missing_ok) <= set(names) <= set(COLUMNS):
        return "not a result file (wrong columns)"
    ids = set(cell_ids())
    if ids != {path.stem}:
        found = ", ".join(sorted(map(str, ids)))[:80] or "no rows"
        return f"holds another cell ({found})"
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def set_aside(sweep_dir, path: Path) -> Path:
    """Move ``path`` to ``<sweep_dir>/set-aside/`` under a name that is free; return the new path."""
    folder = Path(sweep_dir) / "set-aside"
    folder.mkdir(exist_ok=True)
    n = 1
    while (folder / f"{path.stem}.{n}{path.suffix}").exists():
        n += 1
    target = folder / f"{path.stem}.{n}{path.suffix}"
    os.replace(path, target)
    return target


def verify_stored(sweep_dir, cell_ids, warn) -> set:
    """The ids among ``cell_ids`` whose stored file is sound; damaged ones are set aside with a
    one-line ``warn`` each, so their cells run again."""
    folder = results_dir(sweep_dir)
    good = set()
    for cell_id in sorted(set(cell_ids) & done_cells(sweep_dir)):
        path = folder / f"{cell_id}.parquet"
        problem = check_cell_file(path)
        if problem is None:
            good.add(cell_id)
            continue
        target = set_aside(sweep_dir, path)
        warn(f"warning: {path} is {problem}; moved to {target}, the cell runs again")
    return good


def done_cells(sweep_dir) -> set:
    """Ids of the cells whose result file exists."""
    folder = results_dir(sweep_dir)
    if not folder.is_dir():
        return set()
    return {p.stem for p in folder.glob("*.parquet")}


def _planned_ids(sweep_dir) -> set | None:
    path = Path(sweep_dir) / "manifest.json"
    try:
        cells = json.loads(path.read_text()).get("cells")
    except (OSError, ValueError):
        return None
    return set(cells) if isinstance(cells, list) else None


def read_results(sweep_dir, *, all_cells: bool = False) -> pd.DataFrame:
    """Every stored row of the sweep, one row per (cell, epoch), in a stable order.

    When the manifest lists the cells of the latest plan, only those are
    returned (older cells stay on disk as a cache but are not part of this
    sweep); ``all_cells=True`` returns every file.

    The frame is kept in ``results.cache.parquet`` and reused while the cell files it
    came from are unchanged (same names, sizes and modification times): one combined
    read instead of one per cell. Any change reads the files again, with their checks.
    """
    folder = results_dir(sweep_dir)
    listing = _listing(folder)
    planned = None if all_cells else _planned_ids(sweep_dir)
    if planned is not None:
        listing = [entry for entry in listing if entry[0][:-len(".parquet")] in planned]
    if not listing:
        return _coerce(pd.DataFrame(columns=list(COLUMNS)))
    cache = Path(sweep_dir) / CACHE_NAME
    frame = _read_cache(cache, listing)
    if frame is not None:
        return frame
    frame = _read_all([folder / name for name, _, _ in listing])
    order = ["phase", "dataset", "loss", "optimizer", "optimizer_params", "loss_params", "dataset_params",
             "hidden", "lr", "seed", "cell_id", "epoch"]
    frame["_phase"] = frame["phase"].map({"tune": 0, "final": 1}).fillna(2)
    frame = frame.sort_values(["_phase"] + order[1:], kind="mergesort").drop(columns="_phase")
    frame = frame.reset_index(drop=True)
    _write_cache(cache, listing, frame)
    return frame


CACHE_NAME = "results.cache.parquet"
_CACHE_KEY = b"harness.results.cache"   # Parquet key-value metadata: the index of the cell files it holds
_CACHE_VERSION = 1


def _listing(folder: Path) -> list:
    """``(name, size, mtime_ns)`` of every cell file, sorted by name: one ``scandir``, one stat each."""
    try:
        with os.scandir(folder) as entries:
            listing = [(e.name, st.st_size, st.st_mtime_ns) for e in entries
                       if e.name.endswith(".parquet") and not e.name.startswith(".") and e.is_file()
                       for st in (e.stat(),)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(listing)


def _read_cache(cache: Path, listing: list) -> pd.DataFrame | None:
    """The combined frame stored by :func:`_write_cache`, if its index matches ``listing`` exactly
    (same files, sizes and modification times); None otherwise, or if it cannot be read.

    Any change to a cell file (rewritten, added, removed, damaged) changes the listing, so the
    files are read again, with their per-file checks."""
    try:
        meta = pq.read_metadata(cache).metadata or {}
        index = json.loads(meta.get(_CACHE_KEY, b"null"))
        if not isinstance(index, dict) or index.get("version") != _CACHE_VERSION:
            return None
        if [tuple(entry) for entry in index.get("files", [])] != [tuple(e) for e in listing]:
            return None
        frame = pq.read_table(cache).to_pandas()
        for col in STR_COLUMNS:   # text was stored from object columns; pandas may read it as its string dtype
            if frame[col].dtype != object:
                frame[col] = frame[col].astype(object)
    except Exception:   # missing, damaged or foreign: the cache is only ever a shortcut
        return None
    if list(frame.columns) != list(COLUMNS) or any(frame[c].dtype != _stored_dtype(c) for c in COLUMNS):
        return None
    return frame


def _write_cache(cache: Path, listing: list, frame: pd.DataFrame) -> None:
    """Store ``frame`` (read from the files in ``listing``) as one file beside ``results/``, atomically;
    a folder that cannot be written (read-only) simply has no cache."""
    table = _table(frame)   # the frame is in stored form: _coerce made it so
    index = json.dumps({"version": _CACHE_VERSION, "files": [list(e) for e in listing]}).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _CACHE_KEY: index})
    try:
        atomic_write(cache, lambda fh: pq.write_table(table, fh))
    except OSError:
        pass


def _read_all(paths: list) -> pd.DataFrame:
    """Every file as an Arrow table (:func:`_read_checked`), converted to pandas once.

    One ``pandas.read_parquet`` per file cost ~15 ms (its per-file conversion); an
    Arrow read costs a fraction of that, and the conversion runs once on the whole.
    """
    tables = [_read_checked(path) for path in paths]
    try:
        return _coerce(pa.concat_tables(tables, promote_options="permissive").to_pandas(), stored_text=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):   # checked files whose column types do not unify: one by one
        return _coerce(pd.concat([table.to_pandas() for table in tables], ignore_index=True))


def _read_checked(path: Path) -> pa.Table:
    """One stored cell, read once and checked as :func:`check_cell_file` would, in the stored column order."""
    try:
        table = pq.ParquetFile(path).read()   # a third of read_table's per-file cost (no dataset layer)
        problem = _problem(path, table.column_names,
                           lambda: table.column("cell_id").unique().to_pylist(), missing_ok=DIAGNOSTIC_COLUMNS)
    except Exception as exc:   # pyarrow raises ArrowInvalid, OSError, ... for a damaged file
        problem = f"unreadable ({_one_line(exc)})"
    if problem is not None:
        raise HarnessError(f"{path} is {problem}; rerun the sweep command to set it aside and redo the cell")
    for name in DIAGNOSTIC_COLUMNS:   # stored before the column existed: NaN (a sweep reruns its cell)
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.float64()))
    return table.select(list(COLUMNS))


def export_csv(sweep_dir, frame: pd.DataFrame | None = None) -> Path:
    """Write ``results.csv`` beside the results (atomically) and return its path."""
    frame = read_results(sweep_dir) if frame is None else frame
    return atomic_write(Path(sweep_dir) / "results.csv", lambda fh: frame.to_csv(fh, index=False))


class SweepLock:
    """Exclusive, non-blocking ``flock`` on ``<sweep_dir>/.lock``; refuses a second writer."""

    def __init__(self, sweep_dir):
        self.path = Path(sweep_dir) / ".lock"
        self._fh = None

    def acquire(self) -> "SweepLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                fh.close()
                raise
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            who = f" (pid {holder})" if holder else ""
            raise HarnessError(f"another sweep{who} is writing to {self.path.parent}; "
                               "wait for it or use another --name") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            try:
                self._fh.seek(0)
                self._fh.truncate()
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            finally:
                self._fh.close()
                self._fh = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def clean_temporaries(sweep_dir) -> int:
    """Remove half-written temporaries left by a killed sweep (call while holding the lock)."""
    folder = results_dir(sweep_dir)
    count = 0
    if folder.is_dir():
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
            count += 1
    for tmp in Path(sweep_dir).glob(f".{CACHE_NAME}.*.tmp"):   # a results cache whose writer was killed
        tmp.unlink(missing_ok=True)
        count += 1
    return count
