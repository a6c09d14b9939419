"""Figure workers started before the report's heavy imports (the first step of ``harness report``).

Why: the figure workers are the last to finish a build. Forked at the start,
while the main process still imports pandas and reads the store, they import
pandas and matplotlib on the core the main process leaves idle, and are ready
when the first figure arrives. This module imports nothing heavy itself, so
that ``prestart`` can run before anything else; ``plots.FigurePool`` takes the
pool over (``take``). Only where processes can be forked (not on Windows/macOS
spawn): elsewhere the pool starts on the first figure, as before.
"""
from __future__ import annotations

PROCESSES = 2     # figure workers of a build (build_report's default ``processes``)
_POOL = None


def _start_worker() -> None:
    from harness.report.plots import _worker_start

    _worker_start()


def prestart(processes: int) -> None:
    """Fork ``processes`` figure workers now; they import the drawing libraries and wait for figures."""
    global _POOL
    if processes <= 1 or _POOL is not None:
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if "fork" not in multiprocessing.get_all_start_methods():
        return
    _POOL = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("fork"),
                                initializer=_start_worker)
    _POOL.submit(int)   # a fork pool starts all its workers on the first submit


def take(processes: int):
    """The pre-started pool when it has ``processes`` workers (handed over once), else None."""
    global _POOL
    pool, _POOL = _POOL, None
    if pool is not None and pool._max_workers != processes:
        pool.shutdown(wait=False, cancel_futures=True)
        return None
    return pool
