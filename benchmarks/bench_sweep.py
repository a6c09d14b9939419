"""Time the default sweep phase by phase, per cell, at --jobs 1 and 2 and on a dask LocalCluster.

    python benchmarks/bench_sweep.py                    # the default sweep (8 seeds, 20 epochs), four times over
    python benchmarks/bench_sweep.py --quick            # the same with --set seeds=2 run.epochs=5 datasets=digits
    python benchmarks/bench_sweep.py --runs jobs1,jobs2 # only some of the four runs
    python benchmarks/bench_sweep.py --set datasets=digits --cells 2

Each run (``jobs1``, ``jobs2``, ``dask1``, ``dask2``) is the same sweep in a
fresh temporary folder, in a fresh child process of this script (so no run
inherits another's warm caches but the shared numba cache on disk). Phase times
come from the runner's own phase messages, timestamped as they reach stderr:
``tune`` runs from the first tuning message to the "final phase: N cells reuse
their tuning run" message (grid extension rounds included), ``final`` from there
to the end of ``run_sweep``; ``report`` is ``harness.report.build_report`` on
the stored results. The runner is not changed for this.

The per-cell breakdown runs a sample of the sweep's tuning cells (``--cells``
per optimizer per dataset) in this process with BLAS pinned to one thread, the
way a worker runs them: load (``load_split``), train (the records'
``train_seconds``), evaluate (the trainer's per-epoch evaluation, timed by
wrapping it), frame (``cell_frame``), store (``write_cell``) and overhead (the
rest of the cell's wall: building the model, plugin factories, the records
frame). One warm-up cell per optimizer and dataset runs first (numba kernels,
the raw-data cache), as a worker would have done before. ``eval floor`` times
the evaluations' matrix products alone (one product per layer over the
stacked train, val and test rows, as many times as the cell evaluated): what
any per-epoch evaluation of every split must compute, so the evaluation's
share cannot fall below the floor's without evaluating fewer rows or epochs.

The load average is printed at start and end: on a shared machine every number
here is inflated, ratios within one run less so.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from machine_load import uptime

QUICK_SETS = ("seeds=2", "run.epochs=5", "datasets=digits")
RUNS = {"jobs1": ("loky", 1), "jobs2": ("loky", 2), "dask1": ("dask", 1), "dask2": ("dask", 2)}
PARTS = ("load", "train", "evaluate", "frame", "store", "overhead")


def versions() -> str:
    out = [f"python {platform.python_version()}"]
    for name in ("numpy", "numba", "pandas", "pyarrow", "dask", "distributed"):
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} -")
    return ", ".join(out)


def sweep_sets(args) -> list:
    return (list(QUICK_SETS) if args.quick else []) + list(args.set)


# --------------------------------------------------------------------------- one sweep (child process)
class _StampedStderr:
    """Stands in for sys.stderr: keeps each line with the time it was written, echoes nothing."""

    def __init__(self):
        self.lines: list = []
        self._partial = ""

    def write(self, text: str) -> int:
        now = time.perf_counter()
        self._partial += text
        *done, self._partial = self._partial.split("\n")
        self.lines += [(now, line) for line in done if line.strip()]
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:   # no progress bars
        return False


def _first(lines: list, prefix: str):
    return next((t for t, line in lines if line.startswith(prefix)), None)


def run_one(run: str, sets: list, out: Path) -> dict:
    """Run the sweep once (``run`` names the backend and jobs) and time its phases; a JSON-able dict."""
    t_import = time.perf_counter()
    from harness.plugin.loader import load_registry
    from harness.report import build_report
    from harness.sweep.config import load_config
    from harness.sweep.runner import run_sweep
    imports = time.perf_counter() - t_import

    backend, jobs = RUNS[run]
    registry = load_registry()
    cluster, extra = None, {}
    if backend == "dask":
        from distributed import LocalCluster

        t = time.perf_counter()
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None)
        extra["cluster_start_s"] = time.perf_counter() - t
        extra["scheduler"] = cluster.scheduler_address
    overrides = {"out": str(out), "name": run, "jobs": str(jobs), "backend": backend,
                 "scheduler": extra.get("scheduler")}
    config = load_config(None, sets=sets, overrides=overrides, registry=registry)
    stamped = _StampedStderr()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stderr(stamped):
            outcome = run_sweep(config, registry=registry, quiet=False, echo=lambda _: None)
        swept = time.perf_counter()
        report_timings: dict = {}
        build_report(outcome.sweep_dir, timings=report_timings)
        done = time.perf_counter()
    finally:
        if cluster is not None:
            cluster.close()
    lines = stamped.lines
    tune_start = _first(lines, "tune phase") or start
    final_start = _first(lines, "final phase") or swept
    manifest = outcome.manifest or {}
    counts = manifest.get("counts", {}).get("by_phase", {})
    cells = {phase: sum(by.values()) for phase, by in counts.items()}
    rounds = sum(1 for _, line in lines if line.startswith("grid extension"))
    return {
        "run": run, "backend": backend, "jobs": jobs, "imports_s": imports,
        "setup_s": tune_start - start, "tune_s": final_start - tune_start, "final_s": swept - final_start,
        "sweep_s": swept - start, "report_s": done - swept, "total_s": done - start,
        "tune_cells": cells.get("tune", 0), "final_cells": cells.get("final", 0), "extension_rounds": rounds,
        "report_phases": {k: round(v, 3) for k, v in report_timings.items()},
        "messages": [f"{t - start:8.2f}s {line}" for t, line in lines],
        **extra,
    }


def spawn(run: str, args, folder: Path) -> dict:
    """``run_one`` in a fresh interpreter; its wall includes the interpreter's start and imports."""
    cmd = [sys.executable, __file__, "--child", run, "--out", str(folder)]
    for s in sweep_sets(args):
        cmd += ["--set", s]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"run": run, "error": tail}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_s"] = wall
    return result


# --------------------------------------------------------------------------- per-cell breakdown
@contextlib.contextmanager
def _timed_evaluation(clock: list):
    """Add the wall of every per-epoch evaluation to ``clock[0]`` (wraps the trainer's evaluator).

    ``clock[1]`` counts the evaluations, ``clock[2]`` keeps the last evaluator (for its floor).
    """
    from harness.learning import trainer

    evaluator = getattr(trainer, "_Evaluator", None)
    if evaluator is None:   # the trainer changed: evaluation is then counted in overhead
        yield False
        return
    original = evaluator.__call__

    def timed(self, *a, **k):
        t = time.perf_counter()
        try:
            return original(self, *a, **k)
        finally:
            clock[0] += time.perf_counter() - t
            clock[1] += 1
            clock[2] = self

    evaluator.__call__ = timed
    try:
        yield True
    finally:
        evaluator.__call__ = original


def _sample(plan_cells: list, per_group: int) -> tuple:
    """(warm-up cells, sampled cells): per (optimizer, dataset), one to warm up and ``per_group`` spread out."""
    by_key: dict = {}
    for cell in plan_cells:
        if cell.skip is None:
            by_key.setdefault((cell.config.optimizer, cell.config.dataset), []).append(cell)
    warm, sample = [], []
    for cells in by_key.values():
        warm.append(cells[0])
        step = max(1, len(cells) // max(1, per_group))
        sample += cells[1::step][:per_group]
    return warm, sample


def evaluation_floor(evaluator, count: int, repeats: int = 3) -> float:
    """Seconds of ``count`` evaluations' matrix products alone: one product per layer over the stacked
    train, val and test rows, as every evaluation must compute (the rest of an evaluation is per-row work).

    The best of ``repeats``; NaN when the evaluator is not the trainer's (no model or rows to read).
    """
    model, rows = getattr(evaluator, "model", None), getattr(evaluator, "rows", None)
    if model is None or rows is None or not count:
        return float("nan")
    import numpy as np

    weights = list(model.W)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(count):
            a = rows.X
            for W in weights:
                a = np.matmul(a, W)
        best = min(best, time.perf_counter() - t)
    return best


def time_cell(cell, registry, folder: Path, sweep: str) -> dict:
    from harness.learning.split import load_split
    from harness.learning.trainer import train
    from harness.results.store import cell_frame, write_cell

    config = cell.config
    evaluation = [0.0, 0, None]
    with _timed_evaluation(evaluation) as evaluated:
        t0 = time.perf_counter()
        split = load_split(config.dataset, seed=config.seed, registry=registry, **dict(config.dataset_params))
        t1 = time.perf_counter()
        records = train(config, split=split, registry=registry)
        t2 = time.perf_counter()
        frame = cell_frame(records, config, sweep=sweep, cell_id=cell.id, phase=cell.phase, reference=None)
        t3 = time.perf_counter()
        write_cell(folder, frame)
        t4 = time.perf_counter()
    train_s = float(records["train_seconds"].max())
    times = {"load": t1 - t0, "train": train_s, "evaluate": evaluation[0] if evaluated else float("nan"),
             "frame": t3 - t2, "store": t4 - t3}
    times["overhead"] = (t4 - t0) - sum(v for v in times.values() if v == v)
    times["wall"] = t4 - t0
    times["eval floor"] = evaluation_floor(evaluation[2], evaluation[1]) if evaluated else float("nan")
    return {"optimizer": config.optimizer, "dataset": config.dataset, **times}


def cell_breakdown(args, folder: Path) -> list:
    from harness.learning.trainer import single_thread_blas
    from harness.plugin.loader import load_registry
    from harness.sweep.config import load_config
    from harness.sweep.plan import build_plan

    registry = load_registry()
    config = load_config(None, sets=sweep_sets(args), overrides={"out": str(folder), "name": "cells"},
                         registry=registry)
    warm, sample = _sample(build_plan(config, registry).tune, args.cells)
    with single_thread_blas():
        for cell in warm:
            time_cell(cell, registry, folder, config.name)
        return [time_cell(cell, registry, folder, config.name) for cell in sample]


def _ms(values: list) -> str:
    values = [v for v in values if v == v]
    return f"{1000 * statistics.median(values):9.1f}" if values else "      n/a"


def print_breakdown(rows: list) -> None:
    print(f"\n# per-cell breakdown: {len(rows)} sampled tuning cells run in-process, BLAS pinned to 1 thread; "
          "medians in ms (and % of the median cell wall)")
    head = (f"{'optimizer':14s}{'dataset':20s}{'n':>3s}" + "".join(f"{p:>10s}" for p in PARTS) + f"{'wall':>10s}"
            + f"{'eval floor':>11s}")
    print(head)
    print("-" * len(head))
    groups: dict = {}
    for row in rows:
        groups.setdefault((row["optimizer"], row["dataset"]), []).append(row)
    for (opt, ds), rs in sorted(groups.items()):
        print(f"{opt:14s}{ds:20s}{len(rs):3d}" + "".join(_ms([r[p] for r in rs]) + " " for p in PARTS)[:-1]
              + _ms([r["wall"] for r in rs]) + "  " + _ms([r["eval floor"] for r in rs]))
    wall = statistics.median(r["wall"] for r in rows)
    line = f"{'all':34s}{len(rows):3d}"
    shares = []
    for p in PARTS:
        values = [r[p] for r in rows if r[p] == r[p]]
        med = statistics.median(values) if values else float("nan")
        line += _ms(values) + " "
        shares.append(f"{p} {100 * med / wall:.0f}%" if med == med else f"{p} n/a")
    print(line[:-1] + _ms([r["wall"] for r in rows]) + "  " + _ms([r["eval floor"] for r in rows]))
    # the shares of the summed time say what the sweep's cells spend, long cells weighing more
    total = sum(r["wall"] for r in rows)
    summed = ", ".join(f"{p} {100 * sum(r[p] for r in rows if r[p] == r[p]) / total:.0f}%" for p in PARTS)
    print(f"# median cell {1000 * wall:.1f} ms: {', '.join(shares)} (medians of each part over the median wall)")
    print(f"# summed over the sample ({total:.2f} s): {summed}")
    out_of_loop = [r["wall"] - r["train"] - (r["evaluate"] if r["evaluate"] == r["evaluate"] else 0) for r in rows]
    print(f"# per-cell time outside training and evaluation: median {1000 * statistics.median(out_of_loop):.1f} ms "
          f"(target <= 20 ms); evaluation share of the summed cell wall "
          f"{100 * sum(r['evaluate'] for r in rows if r['evaluate'] == r['evaluate']) / total:.0f}% (target <= 10%)")
    floor = [r for r in rows if r["eval floor"] == r["eval floor"] and r["evaluate"] == r["evaluate"]]
    if floor:
        spent = sum(r["evaluate"] for r in floor)
        least = sum(r["eval floor"] for r in floor)
        print(f"# eval floor: the evaluations' matrix products alone (one per layer over the train, val and test "
              f"rows, every epoch), {100 * least / sum(r['wall'] for r in floor):.0f}% of the summed cell wall; "
              f"the evaluation takes {spent / least:.2f}x its floor")


# --------------------------------------------------------------------------- the summary table
def print_runs(results: list, args) -> None:
    print("\n# the sweep's phases, wall seconds (cells per second); each run in a fresh process and folder")
    head = (f"{'run':7s}{'tune s':>9s}{'final s':>9s}{'report s':>9s}{'total s':>9s}{'proc s':>8s}"
            f"{'tune c/s':>10s}{'final c/s':>10s}{'cells':>7s}{'ext':>4s}{'vs jobs1':>9s}{'eff':>6s}")
    print(head)
    print("-" * len(head))
    by_run = {r["run"]: r for r in results}
    base = by_run.get("jobs1")
    for r in results:
        if "error" in r or "skipped" in r:
            print(f"{r['run']:7s} {'skipped' if 'skipped' in r else 'failed'}: {r.get('skipped') or r['error']}")
            continue
        speedup = f"{base['sweep_s'] / r['sweep_s']:9.2f}" if base and "sweep_s" in base else f"{'':9s}"
        eff = (f"{base['sweep_s'] / (r['jobs'] * r['sweep_s']):6.2f}"
               if base and "sweep_s" in base and r["backend"] == "loky" else f"{'':6s}")
        tune_rate = r["tune_cells"] / r["tune_s"] if r["tune_s"] > 0 else float("nan")
        final_rate = r["final_cells"] / r["final_s"] if r["final_s"] > 0 else float("nan")
        print(f"{r['run']:7s}{r['tune_s']:9.1f}{r['final_s']:9.1f}{r['report_s']:9.1f}{r['total_s']:9.1f}"
              f"{r['process_s']:8.1f}{tune_rate:10.1f}{final_rate:10.1f}{r['tune_cells'] + r['final_cells']:7d}"
              f"{r['extension_rounds']:4d}{speedup}{eff}")
    print("# tune includes the grid-extension rounds (ext); final = the final phase's cells still to train (most reuse "
          "their tuning run); report = build_report on the stored results; total = run_sweep + report (excludes "
          "imports and dask cluster start); proc = the child process's whole wall")
    print("# vs jobs1 = jobs1 sweep seconds / this run's (tune + final); eff = T1 / (jobs x Tjobs), loky runs only")
    for r in results:
        if "cluster_start_s" in r:
            print(f"# {r['run']}: LocalCluster({r['jobs']} workers, threads_per_worker=1) started in "
                  f"{r['cluster_start_s']:.1f} s (not in total)")
        if r.get("report_phases"):
            phases = ", ".join(f"{k} {v:.1f}" for k, v in r["report_phases"].items())
            print(f"# {r['run']} report phases (s): {phases}")
    if args.verbose:
        for r in results:
            print(f"\n# {r['run']} runner messages:")
            for line in r.get("messages", []):
                print(f"#   {line}")


def dask_available() -> str:
    try:
        import distributed  # noqa: F401  (optional extra)
    except ImportError as exc:
        return f"dask.distributed is not importable ({exc}); pip install 'harness-gd[dask]'"
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"scale the sweep down: --set {' '.join(QUICK_SETS)}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUES",
                        help="a sweep setting, as `harness sweep --set` takes it (repeatable)")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"which runs, comma list of {', '.join(RUNS)}")
    parser.add_argument("--cells", type=int, default=3, help="sampled cells per optimizer per dataset (0: none)")
    parser.add_argument("--verbose", action="store_true", help="also print each run's timestamped runner messages")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.set, Path(args.out))))
        return 0

    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in runs if r not in RUNS]
    if unknown:
        parser.error(f"unknown run(s) {', '.join(unknown)}; valid: {', '.join(RUNS)}")
    sets = sweep_sets(args)
    print(f"# bench_sweep: the default sweep (harness/sweep/presets/default.toml)"
          + (f" with --set {' '.join(sets)}" if sets else "") + (" [--quick: scaled down]" if args.quick else ""))
    print(f"# machine: {platform.machine()}, {os.cpu_count()} cores; uptime at start: {uptime()}")
    print(f"# {versions()}")
    t0 = time.perf_counter()
    no_dask = dask_available()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        for run in runs:
            if RUNS[run][0] == "dask" and no_dask:
                results.append({"run": run, "skipped": no_dask})
                continue
            results.append(spawn(run, args, Path(tmp) / run))
            print(f"# {run} done after {time.perf_counter() - t0:.0f} s; {uptime()}", flush=True)
        print_runs(results, args)
        if args.cells > 0:
            folder = Path(tmp) / "cells"
            print_breakdown(cell_breakdown(args, folder))
    print(f"\n# uptime at end: {uptime()} (other processes on the machine inflate times); "
          f"bench wall {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
