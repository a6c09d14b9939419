"""Orchestration: config -> plan -> tune phase (with grid extensions) -> lr choices -> final phase -> store.

The report is not built here (the sweep and report layers are independent):
``run_sweep`` returns the results and the manifest, and ``harness.cli.sweep``
builds the page from them.

Each step is a plain function; the store is the only state. Every cell result
is written the moment it comes back from a worker, so a sweep can be killed at
any time and rerun to resume (cells whose file exists are not rerun).

Tuning (rules in ``harness.sweep.plan`` and docs/sweep.md) runs in rounds:
the tuning cells run, every objective chooses its rates, and a choice at a grid
edge adds one rate past that edge (ordinary stored ``tune`` cells, so a resume
finds them stored) until no choice can move further. A final cell whose
configuration is identical to a tuning run (the chosen lr on a tuning seed, which
is every seed when tuning per seed) reuses that run's records instead of
training it again: same config, same seed, same bits. Identical final cells
chosen by several objectives run once; the manifest's ``selection`` lists,
per objective, the final cells its choices made.

A sweep folder holds one sweep: a run whose configuration differs from the one
the folder's manifest records is refused (``--name`` gives it its own folder,
``--force`` replaces the old one). Faults stay inside their cell: a cell whose
worker dies is stored as ``error`` with the signal or exit code, one that runs
past ``timeout`` seconds as ``timeout``; the next resume retries a crashed cell
once (the manifest's ``crashed`` map counts the crashes), then keeps its record.
"""
from __future__ import annotations

import functools
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from harness.sweep.config import SweepConfig
from harness.plugin.specs import DatasetUnavailable, Refused
from harness.learning.runconfig import RunConfig
from harness.errors import HarnessError, UsageError, last_line
from harness.sweep.executor import connect, progress_bar, run_tasks
from harness.results.manifest import command_line, environment, now, read_manifest, write_manifest
from harness.sweep.plan import (ONCE, Cell, Group, Plan, build_plan, choose, edge_sides, final_cells,
                                format_plan, next_rate, objective_values, select_lr, tune_cells)
from harness.results.store import (SweepLock, cell_frame, clean_temporaries, export_csv, read_cell,
                                   read_results, relabel_cell, status_frame, verify_stored, write_cell)

__all__ = ["CellTask", "StackTask", "ReferenceTask", "run_cell", "run_stack", "run_reference", "run_sweep",
           "SweepOutcome",
           "DEFAULT_TIMEOUT", "MAX_CRASHES", "sweep_identity"]

DEFAULT_TIMEOUT = 1800   # seconds per cell when the config sets none (0 = no limit)
MAX_CRASHES = 2          # a cell whose worker died is run at most this many times over resumes
EXECUTION_KEYS = ("name", "out", "source", "jobs", "backend", "scheduler", "timeout")


# --------------------------------------------------------------------------- worker side
@dataclass(frozen=True)
class CellTask:
    """What a worker needs to run one cell (small and picklable)."""

    cell_id: str
    config: RunConfig
    phase: str
    sweep: str
    reference: float | None = None


@dataclass(frozen=True)
class StackTask:
    """Tuning cells of one group on one seed, equal but for the learning rate: trained as one stack."""

    cells: tuple   # of CellTask

    @property
    def cell_id(self) -> str:
        """The executor's name for the task (the first cell's id, marked)."""
        return f"stack:{self.cells[0].cell_id}+{len(self.cells) - 1}"

    @property
    def timeout_scale(self) -> int:
        """A stack of k cells may run as long as k cells."""
        return len(self.cells)


@dataclass(frozen=True)
class ReferenceTask:
    """One convex-optimum computation, shared by every cell with the same data and loss."""

    dataset: str
    seed: int
    dataset_params: tuple
    loss: str
    loss_params: tuple


@functools.lru_cache(maxsize=1)
def _worker_registry():
    """Each worker process loads the plugins once (from its own installed entry points)."""
    from harness.plugin.loader import load_registry

    return load_registry()


def run_cell(task: CellTask, registry=None):
    """Train one cell and return its rows; never raises for a failing cell.

    A refusal becomes a ``skipped`` record, any other exception an ``error``
    record whose reason is the exception's last line.
    """
    meta = dict(sweep=task.sweep, cell_id=task.cell_id, phase=task.phase, reference=task.reference)
    try:
        from harness.learning.trainer import train

        records = train(task.config, registry=registry if registry is not None else _worker_registry())
        return cell_frame(records, task.config, **meta)
    except Refused as exc:
        return status_frame(task.config, "skipped", last_line(exc), **meta)
    except Exception as exc:  # recorded, and the sweep goes on
        return status_frame(task.config, "error", last_line(exc), **meta)


def run_stack(task: StackTask, registry=None) -> list:
    """Train a stack's cells together (``harness.learning.stacked``); one frame per cell, never raises.

    If the stack fails as a whole (a refusal, a plugin raising), each cell runs
    alone instead, so that every cell gets its own record and its own reason.
    """
    registry = registry if registry is not None else _worker_registry()
    try:
        from harness.learning.stacked import train_stacked

        frames = train_stacked([t.config for t in task.cells], registry=registry)
        return [cell_frame(frame, t.config, sweep=t.sweep, cell_id=t.cell_id, phase=t.phase,
                           reference=t.reference) for frame, t in zip(frames, task.cells)]
    except Exception:  # each cell is rerun alone and records its own fault
        return [run_cell(t, registry) for t in task.cells]


def _stacks(tasks: list) -> list:
    """Tuning tasks that differ in ``lr`` alone, grouped into stacks (a lone task stays a CellTask)."""
    by_key: dict = {}
    for task in tasks:
        by_key.setdefault((task.phase, replace(task.config, lr=0.0)), []).append(task)
    return [StackTask(tuple(group)) if len(group) > 1 else group[0] for group in by_key.values()]


def run_reference(task: ReferenceTask, registry=None) -> tuple:
    """``(convex optimum of the training loss, None)`` or ``(nan, error line)``."""
    try:
        from harness.learning.split import load_split
        from harness.learning.reference import convex_optimum

        registry = registry if registry is not None else _worker_registry()
        split = load_split(task.dataset, seed=task.seed, registry=registry, **dict(task.dataset_params))
        return float(convex_optimum(split, task.loss, dict(task.loss_params), registry=registry)), None
    except Exception as exc:
        return math.nan, last_line(exc)


def _run_task(task, registry=None):
    """The worker's entry point: a cell, or a stack of tuning cells."""
    return run_stack(task, registry) if isinstance(task, StackTask) else run_cell(task, registry)


def _cell_fault(task: CellTask, status: str, reason: str):
    """The record of a cell the worker could not finish: it died (``error``) or hung (``timeout``)."""
    return status_frame(task.config, status, reason, sweep=task.sweep, cell_id=task.cell_id, phase=task.phase,
                        reference=task.reference)


def _reference_fault(task: ReferenceTask, status: str, reason: str) -> tuple:
    return math.nan, f"{status}: {reason}"


def _on_fault(task, status: str, reason: str):
    if isinstance(task, StackTask):
        return [_cell_fault(t, status, reason) for t in task.cells]
    return _cell_fault(task, status, reason) if isinstance(task, CellTask) else _reference_fault(task, status, reason)


def _reference_task(config: RunConfig) -> ReferenceTask:
    return ReferenceTask(config.dataset, config.seed, config.dataset_params, config.loss, config.loss_params)


# --------------------------------------------------------------------------- main process
@dataclass
class SweepOutcome:
    """Where a finished sweep went: its folder, its results (None if unreadable) and manifest."""

    sweep_dir: Path
    counts: dict
    seconds: float
    results: object = None
    manifest: dict | None = None


class _Runner:
    """Runs batches of cells on the configured backend and stores each one as it lands."""

    def __init__(self, config: SweepConfig, registry, sweep_dir: Path, *, force: bool, quiet: bool,
                 log: Callable[[str], None], client=None, crashed: dict | None = None,
                 on_crash: Callable[[], None] = lambda: None, planned=()):
        self.config = config
        self.client = client
        self.registry = registry
        self.sweep_dir = sweep_dir
        self.force = force
        self.quiet = quiet
        self.log = log
        self.crashed = crashed if crashed is not None else {}   # cell id -> times its worker died
        self.on_crash = on_crash
        self.timeout = float(getattr(config, "timeout", DEFAULT_TIMEOUT) or 0)
        self.written: set = set()          # cells written by this process
        self.faulted: set = set()          # cells whose worker died or hung in this process
        self.stored = set() if force else verify_stored(sweep_dir, planned, log) - self._retry(sweep_dir)
        self.references: dict = {}
        # tuning frames written by this process, kept so that choosing rates and reusing a tuning run
        # need not read them back from disk (reading a stored cell costs tens of milliseconds)
        self.tune_frames: dict = {}
        # stacked tuning (one task per group and seed) only when no final run reuses a tuning run, so
        # that every stored final run was trained and timed alone
        self.stack_tuning = config.held_out_tuning
        local = config.backend == "loky"
        # local workers are forked and inherit this (possibly test-injected) registry; dask workers load their own
        self.cell_fn = functools.partial(_run_task, registry=registry) if local else _run_task
        self.ref_fn = functools.partial(run_reference, registry=registry) if local else run_reference

    def _retry(self, sweep_dir: Path) -> set:
        """Stored cells whose worker died fewer than MAX_CRASHES times: a resume runs them again."""
        retry = {cid for cid, n in self.crashed.items() if n < MAX_CRASHES}
        if retry:
            self.log(f"retrying {len(retry)} cell(s) whose worker died last time (once more, then the "
                     "error record is kept)")
        return retry

    def has(self, cell_id: str) -> bool:
        return cell_id in self.written or cell_id in self.stored

    def _run(self, fn, tasks, desc: str):
        """Results as they finish; an executor breakdown becomes a one-line error (cells so far are kept)."""
        c = self.config
        try:
            yield from run_tasks(fn, tasks, jobs=c.jobs, backend=c.backend, scheduler=c.scheduler,
                                 key=lambda t: getattr(t, "cell_id", None) or f"ref-{abs(hash(t))}",
                                 client=self.client, timeout=self.timeout, on_fault=self._fault)
        except HarnessError:
            raise
        except Exception as exc:   # e.g. a dask worker lost twice
            raise HarnessError(f"{desc} phase stopped: the {c.backend} executor failed ({last_line(exc)}); "
                               f"finished cells are stored, rerun the same command to resume") from None

    def _fault(self, task, status: str, reason: str):
        """A task its worker could not finish: count a crash (so a resume retries it once) and record it."""
        cells = task.cells if isinstance(task, StackTask) else (task,) if isinstance(task, CellTask) else ()
        for cell in cells:
            self.faulted.add(cell.cell_id)
            if status == "error":
                self.crashed[cell.cell_id] = self.crashed.get(cell.cell_id, 0) + 1
        if cells and status == "error":
            self.on_crash()
        return _on_fault(task, status, reason)

    def record_skips(self, cells: list) -> None:
        for cell in cells:
            if cell.skip is not None and not self.has(cell.id):
                write_cell(self.sweep_dir, status_frame(cell.config, "skipped", cell.skip,
                                                        sweep=self.config.name, cell_id=cell.id,
                                                        phase=cell.phase))
                self.written.add(cell.id)

    def compute_references(self, cells: list) -> None:
        """Convex optima for the pending cells without a hidden layer, each computed once."""
        needed = []
        for cell in cells:
            if cell.skip is None and cell.config.hidden == () and not self.has(cell.id):
                key = _reference_task(cell.config)
                if key not in self.references and key not in needed:
                    needed.append(key)
        if not needed:
            return
        self.log(f"reference optima: {len(needed)} convex problems (each loss's optimum_logits)")
        bar = progress_bar(len(needed), "reference", self.quiet)
        try:
            for task, (value, error) in self._run(self.ref_fn, needed, "reference"):
                self.references[task] = value
                if error:
                    self.log(f"warning: no reference optimum for {task.dataset}/{task.loss} seed {task.seed}: {error}")
                bar.update(1)
        finally:
            bar.close()

    def run_cells(self, cells: list, desc: str) -> dict:
        """Run the cells not yet stored; return {status: count} of what ran."""
        self.record_skips(cells)
        pending = [c for c in cells if c.skip is None and not self.has(c.id)]
        self.log(f"{desc} phase: {len(pending)} cells to run, "
                 f"{sum(1 for c in cells if c.skip is None) - len(pending)} already stored, "
                 f"{sum(1 for c in cells if c.skip is not None)} skipped")
        self.compute_references(pending)
        tasks = [CellTask(c.id, c.config, c.phase, self.config.name,
                          self.references.get(_reference_task(c.config)) if c.config.hidden == () else None)
                 for c in pending]
        counts: dict = {}
        bar = progress_bar(len(tasks), desc, self.quiet)
        bar.set_postfix({"failed": 0, "diverged": 0}, refresh=False)
        if self.stack_tuning and all(t.phase == "tune" for t in tasks):
            tasks = _stacks(tasks)
        try:
            for task, result in self._run(self.cell_fn, tasks, desc):
                done = zip(task.cells, result) if isinstance(task, StackTask) else ((task, result),)
                for cell, frame in done:
                    self._store(cell, frame, counts)
                    bar.update(1)
                bar.set_postfix({"failed": counts.get("error", 0), "diverged": counts.get("diverged", 0)},
                                refresh=False)
        finally:
            bar.close()
        return counts

    def _store(self, task: CellTask, frame, counts: dict) -> None:
        write_cell(self.sweep_dir, frame)
        self.written.add(task.cell_id)
        if task.phase == "tune":
            self.tune_frames[task.cell_id] = frame
        if task.cell_id not in self.faulted and self.crashed.pop(task.cell_id, None) is not None:
            self.on_crash()    # a retried cell finished: forget its crash
        status = str(frame["status"].iloc[-1])
        counts[status] = counts.get(status, 0) + 1

    def frame(self, cell_id: str):
        """A stored cell's records: from memory when this process ran it, else from the store."""
        frame = self.tune_frames.get(cell_id)
        return frame if frame is not None else read_cell(self.sweep_dir, cell_id)

    def reuse(self, cell: Cell, source: Cell) -> bool:
        """Store ``cell`` as a copy of the identical tuning run ``source``; False if unavailable."""
        if self.has(cell.id):
            return True
        frame = self.frame(source.id)
        if frame is None or str(frame["status"].iloc[-1]) in ("error", "timeout", "skipped"):
            return False
        write_cell(self.sweep_dir, relabel_cell(frame, cell_id=cell.id, phase=cell.phase))
        self.written.add(cell.id)
        return True


def _tune_outcomes(runner: _Runner, cells: list, objectives) -> dict:
    """{group key: {(lr, seed): (status, {objective: value})}} read back from the store."""
    outcomes: dict = {}
    for cell in cells:
        frame = runner.frame(cell.id)
        if frame is None:
            continue
        base = replace(cell.config, lr=0.0, seed=0)
        outcomes.setdefault(base, {})[(cell.config.lr, cell.config.seed)] = objective_values(frame, objectives)
    return outcomes


def _isnan(value) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def _describe_datasets(config: SweepConfig, registry) -> dict:
    """Load each dataset once (checks availability before anything runs) and describe it."""
    from harness.learning.split import describe
    from harness.sweep.plan import _own_grids, _product

    out = {}
    for name in config.datasets:
        spec = registry.datasets[name]
        for point in _product(_own_grids(config, "dataset", spec)) or [{}]:
            label = name if not point else f"{name} {point}"
            try:
                out[label] = describe(spec.load(**point))
            except DatasetUnavailable as exc:
                raise HarnessError(f"dataset {name!r} is not available: {exc}") from None
    return out


def _counts(results) -> dict:
    if results is None or results.empty:
        return {"cells": 0, "by_status": {}, "by_phase": {}}
    last = results.groupby("cell_id", sort=False).tail(1)
    by_phase = {phase: {str(k): int(v) for k, v in grp["status"].value_counts().items()}
                for phase, grp in last.groupby("phase")}
    return {"cells": int(len(last)),
            "by_status": {str(k): int(v) for k, v in last["status"].value_counts().items()},
            "by_phase": by_phase}


def run_sweep(config: SweepConfig, *, registry=None, argv=None, quiet: bool = False, dry_run: bool = False,
              force: bool = False, csv: bool = False,
              echo: Callable[[str], None] = print) -> SweepOutcome | None:
    """Run (or with ``dry_run`` only print) the sweep; returns where everything went (the caller builds
    the report from ``SweepOutcome.results`` and ``.manifest``)."""
    if registry is None:
        from harness.plugin.loader import load_registry

        registry = load_registry()
    plan: Plan = build_plan(config, registry)
    if dry_run:
        echo(format_plan(plan, read_manifest(config.sweep_dir)))
        return None

    _refuse_another_sweep(config, force)
    client = connect(config.scheduler) if config.backend == "dask" else None   # fail before writing
    try:
        datasets = _describe_datasets(config, registry)
        return _run(config, plan, registry, datasets, client, argv=argv, quiet=quiet, force=force, csv=csv,
                    echo=echo)
    finally:
        if client is not None:
            client.close()


def sweep_identity(config: dict) -> dict:
    """What makes two sweeps the same sweep: the config without where and how it runs."""
    return {k: v for k, v in config.items() if k not in EXECUTION_KEYS}


def _refuse_another_sweep(config: SweepConfig, force: bool) -> None:
    """One folder, one sweep: a different configuration needs --name (or --force to replace it)."""
    stored = read_manifest(config.sweep_dir)
    if force or not stored or not isinstance(stored.get("config"), dict):
        return
    old, new = sweep_identity(stored["config"]), sweep_identity(config.to_dict())
    if old == new:
        return
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    raise UsageError(f"{config.sweep_dir} holds another sweep (different {', '.join(changed)}); "
                     f"give this one its own folder with --name NAME, or replace that one with --force")


def _run(config: SweepConfig, plan: Plan, registry, datasets: dict, client, *, argv, quiet: bool,
         force: bool, csv: bool, echo) -> SweepOutcome:
    def log(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    sweep_dir = config.sweep_dir
    start = time.perf_counter()
    with SweepLock(sweep_dir):
        clean_temporaries(sweep_dir)
        previous = {} if force else (read_manifest(sweep_dir) or {})
        manifest = {
            "sweep": config.name,
            "status": "running",
            "command": command_line(argv),
            "argv": list(sys.argv[1:] if argv is None else argv),
            "cwd": str(Path.cwd()),
            "config": config.to_dict(),
            "seeds": list(config.seeds),
            "tune_seeds": list(config.tuning_seeds),   # every seed when tuning per seed
            "execution": {"backend": config.backend, "jobs": config.jobs, "scheduler": config.scheduler},
            "environment": environment(registry),
            "datasets": datasets,
            "started": now(),
            "finished": None,
            "tuning_protocol": {"objectives": list(config.tune_metrics), "per_seed": config.per_seed,
                                "seeds": list(config.tuning_seeds), "max_extensions": config.max_extensions,
                                # held out: no tuning seed is an evaluation seed, so no final run reuses a
                                # tuning run and one group's tuning rates train stacked
                                "held_out": config.held_out_tuning, "stacked": config.held_out_tuning},
            "tuning": [],
            "selection": {},
            # a resume keeps the cells the last run added (grid extensions, final cells): they count as stored
            "cells": sorted({c.id for c in plan.tune + plan.final} | set(previous.get("cells") or ())),
            "crashed": dict(previous.get("crashed") or {}),
        }
        if client is not None:
            manifest["execution"]["dask_workers"] = len(client.scheduler_info().get("workers", {}))
        write_manifest(sweep_dir, manifest)
        runner = _Runner(config, registry, sweep_dir, force=force, quiet=quiet, log=log, client=client,
                         crashed=manifest["crashed"], on_crash=lambda: write_manifest(sweep_dir, manifest),
                         planned=manifest["cells"])
        try:
            finals, reused = _tune(config, plan, registry, runner, manifest)
            # phase 2: the chosen rates on every seed
            log(f"final phase: {len(reused)} cells reuse their tuning run")
            runner.run_cells(finals, "final")
            manifest["status"] = "complete"
        except KeyboardInterrupt:
            manifest["status"] = "interrupted"
            raise
        except BaseException:
            manifest["status"] = "failed"
            raise
        finally:
            results = _finish(sweep_dir, manifest, start)
        if csv:
            echo(f"results CSV: {export_csv(sweep_dir, results)}")
    seconds = time.perf_counter() - start
    counts = manifest["counts"]
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts["by_status"].items()))
    echo(f"sweep {config.name!r}: {counts['cells']} cells ({summary}) in {seconds:.0f} s; "
         f"results in {sweep_dir / 'results'}")
    return SweepOutcome(sweep_dir, counts, seconds, results, manifest)


def _finish(sweep_dir: Path, manifest: dict, start: float):
    """Record how the sweep ended; returns the results when it completed.

    When the sweep is already failing (say, a read-only folder), a failure here is
    not allowed to replace the first error with a less telling one.
    """
    failing = manifest["status"] != "complete"
    manifest["finished"] = now()
    manifest["duration_seconds"] = round(time.perf_counter() - start, 3)
    try:
        results = read_results(sweep_dir)
        manifest["counts"] = _counts(results)
        write_manifest(sweep_dir, manifest)
    except (OSError, HarnessError):
        if failing:
            return None
        raise
    return results if not failing else None


# --------------------------------------------------------------------------- tuning rounds
def _tune(config: SweepConfig, plan: Plan, registry, runner: _Runner, manifest: dict) -> tuple[list, list]:
    """Run the tuning rounds, record every choice; returns (final cells to run, final cells reused)."""
    objectives, seeds = config.tune_metrics, config.tuning_seeds
    groups = [g for g in plan.groups if g.tuned and not g.skip]
    grids = {g.key: list(g.lr_grid) for g in groups}
    extensions = {g.key: {"low": 0, "high": 0} for g in groups}
    cells, batch, round_, outcomes = list(plan.tune), list(plan.tune), 0, {}
    while True:
        runner.run_cells(batch, "tune" if round_ == 0 else f"tune +{round_}")
        for key, found in _tune_outcomes(runner, batch, objectives).items():
            outcomes.setdefault(key, {}).update(found)
        batch = []
        for group in groups:
            grid = grids[group.key]
            picks = choose(grid, outcomes.get(group.key, {}), objectives, seeds, config.per_seed)
            for side in sorted(edge_sides(grid, picks)):
                if extensions[group.key][side] >= config.max_extensions:
                    continue
                lr = next_rate(grid, side)
                grid.insert(0 if side == "low" else len(grid), lr)
                extensions[group.key][side] += 1
                batch += tune_cells(group, [lr], seeds, registry)
        if not batch:
            break
        round_ += 1
        cells += batch
        manifest["cells"] = sorted(set(manifest["cells"]) | {c.id for c in batch})
        write_manifest(runner.sweep_dir, manifest)
        runner.log(f"grid extension {round_}: {len(batch) // max(1, len(seeds))} rate(s) past a grid edge")
    by_config = {c.config: c for c in cells}
    finals, reused = list(plan.final), []
    # plan.final: untuned groups and groups whose every tuning cell was refused; every objective has them
    selection = {o: [c.id for c in plan.final] for o in objectives}
    chosen_cells: dict = {}
    for group in groups:
        grid = grids[group.key]
        results = outcomes.get(group.key, {})
        picks = choose(grid, results, objectives, seeds, config.per_seed)
        manifest["tuning"].append(_tuning_entry(group, grid, extensions[group.key], picks, results, config))
        for objective, by_seed in picks.items():
            for seed in config.seeds:
                lr, why = by_seed[seed if config.per_seed else ONCE]
                cell = final_cells(group, lr, [seed], why, registry)[0]
                selection[objective].append(cell.id)
                chosen_cells.setdefault(cell.id, cell)
    for cell in chosen_cells.values():
        source = by_config.get(cell.config)
        if source is not None and cell.skip is None and runner.reuse(cell, source):
            reused.append(cell)
        else:
            finals.append(cell)
    manifest["selection"] = selection
    manifest["cells"] = sorted(set(manifest["cells"]) | {c.id for c in finals + reused})
    write_manifest(runner.sweep_dir, manifest)
    return finals, reused


def _tuning_entry(group: Group, grid: list, extended: dict, picks: dict, results: dict,
                  config: SweepConfig) -> dict:
    """The manifest's record of one group's tuning: grid run, choices per objective (and seed), edges."""
    seeds = config.tuning_seeds
    chosen, why, edges = {}, {}, []
    for objective, by_seed in picks.items():
        if config.per_seed:
            chosen[objective] = {str(s): lr for s, (lr, _) in by_seed.items()}
        else:
            chosen[objective], why[objective] = by_seed[ONCE]
        for seed, (lr, _) in by_seed.items():
            for side, edge in (("low", grid[0]), ("high", grid[-1])):
                if lr is not None and lr == edge:
                    edges.append({"objective": objective, "seed": seed, "side": side, "lr": lr})
    scores = {o: {f"{lr:g}": _finite(select_lr(grid, results, o, seeds)[2][lr]) for lr in grid}
              for o in config.tune_metrics}
    table = config.tune_metrics[0]
    return {
        "group": group.describe(), "dataset": group.base.dataset, "loss": group.base.loss,
        "optimizer": group.base.optimizer, "point": {k: v for k, v in group.point},
        "grid_source": group.grid_source, "default_grid": group.grid_source == "default",
        "base_grid": list(group.lr_grid), "lr_grid": list(grid), "extensions": dict(extended),
        "per_seed": config.per_seed, "seeds": list(seeds), "chosen": chosen, "why": why,
        "scores": scores, "edges": edges,
        # the first objective's single choice, for readers of the older one-rate record
        "metric": table, "chosen_lr": None if config.per_seed else chosen[table],
    }


def _finite(value):
    return None if value is None or _isnan(value) else float(value)
