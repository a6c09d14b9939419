"""Run sweep tasks in parallel and hand each result back the moment it finishes.

Two backends, one interface (:func:`run_tasks` yields ``(task, result)`` in
completion order, so the caller stores each cell as soon as it exists):

* ``loky`` (default): ``joblib.Parallel(n_jobs=jobs, return_as="generator_unordered")``
  on local worker processes; ``jobs=1`` runs in this process.
* ``dask``: an existing ``dask.distributed`` cluster, via ``Client.submit`` and
  ``as_completed``. We use the native futures API rather than joblib's dask
  backend because it streams results as they complete without joblib's
  batching layer, retries a task whose worker died (``retries``), and lets us
  name each task by its cell id (visible in the dask dashboard).

Every task runs with BLAS pinned to one thread (threadpoolctl, inside the
worker): with N workers on N cores, extra BLAS threads only oversubscribe the
machine and make timings noisy.

The task function must be importable by the workers (a module-level function
of an installed package) and must not raise for an ordinary failure: the sweep's
cell function turns exceptions into ``error`` records itself. If a task does
raise, the exception propagates and the sweep stops; finished cells are already
stored, so rerunning resumes.
"""
from __future__ import annotations

import shutil
import sys
import warnings
from typing import Any, Callable, Iterator, Sequence

__all__ = ["run_tasks", "connect", "pinned", "progress_bar"]


def pinned(fn: Callable, task: Any) -> Any:
    """Call ``fn(task)`` with BLAS limited to one thread (runs inside the worker)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return fn(task)


def progress_bar(total: int, desc: str, quiet: bool = False):
    """A tqdm bar on stderr, off when stderr is not a terminal or ``quiet``."""
    from tqdm import tqdm

    disable = quiet or not sys.stderr.isatty()
    # a terminal that reports no size (e.g. under `script`) would get an invisible bar
    size = shutil.get_terminal_size((100, 24))
    return tqdm(total=total, desc=desc, unit="cell", file=sys.stderr, disable=disable,
                ncols=min(size.columns or 100, 120), nrows=size.lines or 24, smoothing=0.1)


def connect(scheduler: str):
    """A ``distributed.Client`` for ``scheduler``, or a one-line HarnessError."""
    from distributed import Client

    from harness.errors import HarnessError

    try:
        return Client(scheduler, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise HarnessError(f"cannot reach the dask scheduler at {scheduler}: {exc}") from None


def run_tasks(fn: Callable, tasks: Sequence, *, jobs: int = 1, backend: str = "loky",
              scheduler: str = "", key: Callable[[Any], str] | None = None, client=None) -> Iterator[tuple]:
    """Yield ``(task, fn(task))`` for every task, in the order they finish.

    With ``backend="dask"`` an open ``client`` is used when given (the sweep
    connects once, before writing anything), else one is opened for the call.
    """
    tasks = list(tasks)
    if not tasks:
        return iter(())
    if backend == "dask":
        return _run_dask(fn, tasks, scheduler, key, client)
    if backend != "loky":
        raise ValueError(f"unknown backend {backend!r}")
    return _run_loky(fn, tasks, jobs)


def _run_loky(fn: Callable, tasks: list, jobs: int) -> Iterator[tuple]:
    if jobs <= 1:
        for task in tasks:
            yield task, pinned(fn, task)
        return
    from joblib import Parallel, delayed

    # on Ctrl-C joblib warns about cancelled tasks; the sweep reports the interruption itself
    warnings.filterwarnings("ignore", message=r".*tasks have been successfully executed", category=UserWarning)
    parallel = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered",
                        batch_size=1, pre_dispatch="2*n_jobs")
    yield from parallel(delayed(_tagged)(fn, i, task) for i, task in enumerate(tasks))


def _tagged(fn: Callable, index: int, task: Any) -> tuple:
    """Return the task with its result, so unordered results can be matched."""
    return task, pinned(fn, task)


def _run_dask(fn: Callable, tasks: list, scheduler: str, key, client=None) -> Iterator[tuple]:
    from distributed import as_completed

    own = client is None
    if own:
        client = connect(scheduler)
    try:
        futures = {}
        for i, task in enumerate(tasks):
            name = f"harness-cell-{key(task) if key else i}"
            future = client.submit(pinned, fn, task, key=name, pure=False, retries=1)
            futures[future] = task
        for future in as_completed(futures, loop=client.loop):
            yield futures[future], future.result()
            future.release()
    finally:
        if own:
            client.close()
