"""Helpers a dataset plugin uses to cache what it builds: content fingerprints,
the data home and atomic saves."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

import harness  # for harness.__file__ at call time (the package is initialised by then)

__all__ = ["fingerprint", "data_home", "atomic_write", "atomic_save_npz"]


def fingerprint(*parts: Any) -> str:
    """A short content hash (16 hex digits) of arrays and plain values.

    Arrays contribute their dtype, shape and bytes; anything else its JSON
    form (or ``repr``). Used for dataset fingerprints, cache keys and the
    sweep manifest.
    """
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            h.update(f"ndarray:{arr.dtype.str}:{arr.shape}:".encode())
            h.update(arr.tobytes())
        else:
            try:
                text = json.dumps(part, sort_keys=True, default=repr)
            except (TypeError, ValueError):
                text = repr(part)
            h.update(f"value:{text}".encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


def data_home() -> Path:
    """Where built datasets are cached.

    ``HARNESS_DATA_HOME`` if set; else the repository's ``datasets/`` folder
    when harness runs from a source checkout and that folder is writable; else
    ``~/.cache/harness/datasets``. The folder is created if needed.
    """
    env = os.environ.get("HARNESS_DATA_HOME", "").strip()
    if env:
        home = Path(env).expanduser()
    else:
        checkout = Path(harness.__file__).resolve().parents[1] / "datasets"
        if checkout.is_dir() and os.access(checkout, os.W_OK):
            home = checkout
        else:
            home = Path("~/.cache/harness/datasets").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def atomic_write(path, write: Callable[[BinaryIO], None], *, fsync: bool = False) -> Path:
    """Write ``path`` whole or not at all: ``write(fh)`` fills a hidden temporary file in
    the same folder (``.NAME.XXXX.tmp``), which then replaces ``path`` in one step.

    A process killed mid-write leaves only the temporary (and the old file, if any);
    concurrent writers of identical content never expose a half-written file.
    ``fsync`` also forces the bytes to disk before the replace (stored results).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_save_npz(path: Path, **arrays) -> None:
    """A compressed .npz written with :func:`atomic_write` (dataset caches)."""
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
