"""Run sweep tasks in parallel and hand each result back the moment it finishes.

Two backends, one interface (:func:`run_tasks` yields ``(task, result)`` in
completion order, so the caller stores each cell as soon as it exists):

* ``loky`` (the default, named after the executor it replaced): a small pool of
  our own worker processes (:class:`WorkerPool`), ``jobs`` of them, even for
  ``jobs=1``. Each worker runs one task at a time and the main process watches
  it, so whatever a task does stays inside its task: a worker that segfaults or
  calls ``os._exit`` is replaced and the task becomes a fault (``"error"``, with
  the signal or exit code); a task running past ``timeout`` seconds has its
  worker killed and becomes a ``"timeout"`` fault. Workers are forked, so they
  inherit the caller's plugin registry; they ignore Ctrl-C (the main process
  stops them) and exit by themselves when the main process dies, even by
  ``kill -9``.
* ``dask``: an existing ``dask.distributed`` cluster, via ``Client.submit`` and
  ``as_completed`` (streams results as they complete, retries a task whose
  worker died, names each task by its cell id in the dashboard).
  :func:`connect` probes the scheduler first with a bounded handshake.

Every task runs with BLAS pinned to one thread (threadpoolctl, inside the
worker): with N workers on N cores, extra BLAS threads only oversubscribe the
machine and make timings noisy.

The task function must not raise for an ordinary failure (the sweep's cell
function turns exceptions into ``error`` records itself); what it cannot catch
(a dead worker, a hang) reaches the caller through ``on_fault(task, status,
reason)``, whose return value is yielded as that task's result.
"""
from __future__ import annotations

import asyncio
import faulthandler
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from multiprocessing.connection import wait
from typing import Any, Callable, Iterator, Sequence

from harness.errors import HarnessError, UsageError
from harness.learning.trainer import single_thread_blas

__all__ = ["run_tasks", "connect", "pinned", "progress_bar", "WorkerPool", "describe_exit",
           "SCHEDULER_TIMEOUT"]

SCHEDULER_TIMEOUT = 5.0   # seconds to reach a dask scheduler and get its handshake


def pinned(fn: Callable, task: Any) -> Any:
    """Call ``fn(task)`` with BLAS limited to one thread (runs inside the worker)."""
    with single_thread_blas():
        return fn(task)


def progress_bar(total: int, desc: str, quiet: bool = False):
    """A tqdm bar on stderr, off when stderr is not a terminal or ``quiet``."""
    from tqdm import tqdm

    disable = quiet or not sys.stderr.isatty()
    # a terminal that reports no size (e.g. under `script`) would get an invisible bar
    size = shutil.get_terminal_size((100, 24))
    return tqdm(total=total, desc=desc, unit="cell", file=sys.stderr, disable=disable,
                ncols=min(size.columns or 100, 120), nrows=size.lines or 24, smoothing=0.1)


# --------------------------------------------------------------------------- dask
def _split_address(scheduler: str) -> tuple[str, str]:
    scheme, sep, rest = scheduler.partition("://")
    return (scheme, rest) if sep else ("tcp", scheduler)


def probe_scheduler(scheduler: str, timeout: float = SCHEDULER_TIMEOUT) -> None:
    """Raise a one-line HarnessError unless a dask scheduler answers at ``scheduler`` within ``timeout``.

    Checks, in order: the address parses, its scheme is one dask knows, and a
    connection plus dask's handshake complete in time (a port that accepts and
    never answers fails here instead of hanging).
    """
    # distributed is heavy (~1 s to import): only dask sweeps pay for it
    from distributed.comm import connect as comm_connect
    from distributed.comm.registry import backends

    scheme, rest = _split_address(scheduler)
    if scheme not in backends:
        raise UsageError(f"cannot use dask scheduler address {scheduler!r}: unknown scheme {scheme!r} "
                         f"(valid: {', '.join(sorted(backends))})")
    host, _, port = rest.rpartition(":")
    if scheme in ("tcp", "tls") and (not host or not port.isdigit()):
        raise UsageError(f"cannot use dask scheduler address {scheduler!r}: expected {scheme}://HOST:PORT")

    if scheme == "tcp":   # a refused or unroutable port answers at once, before dask's retry loop
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
        except OSError as exc:
            raise HarnessError(f"cannot reach the dask scheduler at {scheduler}: tried a TCP connection "
                               f"to {host}:{port}: {exc.strerror or exc}") from None

    async def handshake():
        comm = await comm_connect(f"{scheme}://{rest}", timeout=timeout)
        await comm.close()

    try:
        asyncio.run(asyncio.wait_for(handshake(), timeout))
    except (asyncio.TimeoutError, TimeoutError):
        raise HarnessError(f"cannot reach the dask scheduler at {scheduler}: no dask handshake within "
                           f"{timeout:g} s (tried a connection and dask's handshake)") from None
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise HarnessError(f"cannot reach the dask scheduler at {scheduler} within {timeout:g} s: "
                           f"{reason}") from None


def connect(scheduler: str, timeout: float = SCHEDULER_TIMEOUT):
    """A ``distributed.Client`` for ``scheduler``, or a one-line HarnessError within a few seconds."""
    from distributed import Client

    probe_scheduler(scheduler, timeout)
    try:
        return Client(scheduler, timeout=f"{max(timeout, 10):g}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise HarnessError(f"cannot reach the dask scheduler at {scheduler}: {exc}") from None


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


# --------------------------------------------------------------------------- local workers
def describe_exit(exitcode: int | None) -> str:
    """'killed by signal 11 (SIGSEGV)' or 'exited with status 3', for a dead worker's exit code."""
    if exitcode is None:
        return "stopped"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-exitcode} ({name})"
    return f"exited with status {exitcode}"


def _watch_parent(parent: int) -> None:
    """Exit this worker as soon as the main process is gone (kill -9 included)."""
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(0.5)


def _worker_main(conn, fn: Callable, parent: int) -> None:
    """Worker loop: receive a task, send back ('ok', result) or ('raised', text); EOF ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the main process handles Ctrl-C and stops us
    faulthandler.disable()   # a crash is reported once, in the cell's record, not as a stack dump on stderr
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            os._exit(0)
        try:
            reply = ("ok", pinned(fn, task))
        except BaseException as exc:   # SystemExit too: the task fails, the worker lives on
            reply = ("raised", _exception_line(exc))
        try:
            conn.send(reply)
        except Exception as exc:        # an unpicklable result
            conn.send(("raised", f"result could not be sent back: {_exception_line(exc)}"))


def _exception_line(exc: BaseException) -> str:
    lines = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__


class _Worker:
    def __init__(self, ctx, fn: Callable):
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child, fn, os.getpid()), daemon=True,
                                   name="harness-worker")
        self.process.start()
        child.close()
        self.task = None
        self.started = 0.0
        self.limit = 0.0

    def send(self, task, timeout: float = 0) -> None:
        """Start ``task``; ``timeout`` (0: none) is this task's limit, scaled by its ``timeout_scale``
        (a stack of k cells gets k cells' time)."""
        self.task, self.started = task, time.monotonic()
        self.limit = float(timeout) * float(getattr(task, "timeout_scale", 1))
        self.conn.send(task)

    def stop(self) -> None:
        """Kill the process now and reap it (no zombie, no open pipe)."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


class WorkerPool:
    """``jobs`` forked worker processes with a watchdog; see the module docstring."""

    def __init__(self, fn: Callable, jobs: int, *, timeout: float = 0, on_fault: Callable | None = None):
        self.fn = fn
        self.jobs = max(1, int(jobs))
        self.timeout = float(timeout or 0)
        self.on_fault = on_fault or _raise_fault
        self.ctx = multiprocessing.get_context("fork")
        self.workers: list[_Worker] = []
        self.dead_on_arrival = 0    # workers found dead before their first task (a broken machine)

    def run(self, tasks: Sequence) -> Iterator[tuple]:
        pending = list(tasks)[::-1]
        try:
            while pending or any(w.task is not None for w in self.workers):
                while pending and len(self.workers) < min(self.jobs, len(pending) + self._busy()):
                    self.workers.append(_Worker(self.ctx, self.fn))
                for worker in list(self.workers):
                    if worker.task is None and pending:
                        self._hand_out(worker, pending)
                yield from self._collect()
        finally:
            self.close()

    def _hand_out(self, worker: _Worker, pending: list) -> None:
        """Give ``worker`` the next task; a worker found dead is replaced and the task stays queued."""
        task = pending.pop()
        try:
            if not worker.process.is_alive():
                raise BrokenPipeError
            worker.send(task, self.timeout)
        except (BrokenPipeError, ConnectionError, EOFError):
            worker.task = None
            self._replace(worker)
            pending.append(task)
            self.dead_on_arrival += 1
            if self.dead_on_arrival > 10:
                            raise HarnessError("worker processes die before receiving a cell; "
                                   "cells stored so far are kept") from None

    def _busy(self) -> int:
        return sum(1 for w in self.workers if w.task is not None)

    def _collect(self) -> Iterator[tuple]:
        """Wait for the next reply, death or deadline; yield what finished."""
        busy = [w for w in self.workers if w.task is not None]
        wait_for = 1.0
        if self.timeout > 0:
            now = time.monotonic()
            wait_for = max(0.0, min(wait_for, min(w.started + w.limit - now for w in busy)))
        ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], wait_for))
        for worker in busy:
            task = worker.task
            if worker.conn in ready:
                try:
                    kind, value = worker.conn.recv()
                except (EOFError, OSError):    # died while replying
                    kind, value = None, None
                if kind == "ok":
                    worker.task = None
                    yield task, value
                    continue
                if kind == "raised":
                    worker.task = None
                    yield task, self.on_fault(task, "error", f"the task raised {value}")
                    continue
            if worker.conn in ready or worker.process.sentinel in ready:
                worker.process.join(5)
                why = describe_exit(worker.process.exitcode)
                self._replace(worker)
                yield task, self.on_fault(task, "error", f"the worker process {why}")
            elif self.timeout > 0 and time.monotonic() - worker.started >= worker.limit:
                self._replace(worker)
                yield task, self.on_fault(task, "timeout", f"still running after the {worker.limit:g} s "
                                                           "per-cell timeout; its worker was killed")

    def _replace(self, worker: _Worker) -> None:
        worker.stop()
        self.workers.remove(worker)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []


def _raise_fault(task, status: str, reason: str):
    raise HarnessError(f"a task failed ({status}): {reason}")


def run_tasks(fn: Callable, tasks: Sequence, *, jobs: int = 1, backend: str = "loky", scheduler: str = "",
              key: Callable[[Any], str] | None = None, client=None, timeout: float = 0,
              on_fault: Callable | None = None) -> Iterator[tuple]:
    """Yield ``(task, fn(task))`` for every task, in the order they finish.

    Local workers (``backend="loky"``): a task that kills its worker, raises
    past ``fn`` or runs longer than ``timeout`` seconds (0 = no limit) yields
    ``on_fault(task, status, reason)`` instead (status ``"error"`` or
    ``"timeout"``); without ``on_fault`` it stops the run with a HarnessError.
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
    return WorkerPool(fn, jobs, timeout=timeout, on_fault=on_fault).run(tasks)
