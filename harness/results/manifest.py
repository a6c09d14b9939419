"""``manifest.json``: what was run, with what, on what machine, and how it ended.

Written next to the results when a sweep starts, after tuning and at the end,
atomically each time. The report's reproducibility footer reads it, and
``harness.results.store.read_results`` uses its ``cells`` list to tell this sweep's
cells from older ones left in the same folder.
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from harness.plugin.cache import atomic_write

__all__ = ["environment", "cpu_info", "write_manifest", "read_manifest", "now", "command_line"]

PACKAGES = ("harness-gd", "numpy", "scipy", "scikit-learn", "pandas", "pyarrow", "joblib",
            "threadpoolctl", "pluggy", "matplotlib", "jinja2", "scikit-image", "dask", "distributed")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def command_line(argv=None) -> str:
    """The command as the user could retype it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return " ".join(shlex.quote(a) for a in ["python", "-m", "harness", *argv])


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def cpu_info() -> dict:
    """CPU model and core counts (model name from /proc/cpuinfo on Linux)."""
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"model": model or platform.machine(), "logical_cores": os.cpu_count(), "usable_cores": usable,
            "machine": platform.machine()}


def environment(registry=None) -> dict:
    """Versions of Python, the libraries and every plugin; the BLAS in use; the CPU."""
    from threadpoolctl import threadpool_info

    import numpy  # noqa: F401  (loads the BLAS so threadpool_info sees it)

    info = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "blas": [{k: v for k, v in lib.items() if k in ("user_api", "internal_api", "prefix", "version",
                                                          "num_threads", "threading_layer", "architecture",
                                                          "filepath")}
                 for lib in threadpool_info()],
        "cpu": cpu_info(),
    }
    if registry is not None:
        info["plugins"] = [p.to_dict() for p in registry.plugins]
        info["plugin_failures"] = [f.to_dict() for f in registry.failures]
    return info


def write_manifest(sweep_dir, manifest: dict) -> Path:
    text = json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n"
    return atomic_write(Path(sweep_dir) / "manifest.json", lambda fh: fh.write(text.encode()))


def read_manifest(sweep_dir) -> dict | None:
    path = Path(sweep_dir) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
