"""Time `harness report` on a stored sweep, phase by phase, with the machine's load.

    python benchmarks/bench_report.py reports/default            # a sweep stored by `harness sweep`
    python benchmarks/bench_report.py --synthetic                # tests/report_sample.py's data
    python benchmarks/bench_report.py reports/default --processes 1,2 --repeat 2

The sweep folder is copied to a temporary folder first, so the stored report is
left alone. The store is read once without its combined cache (timed apart, not in the
wall), which writes the cache; the timed build then reads the cache, as a rebuild does. Wall seconds per phase come from build_report(timings=...); the
CPU line counts this process and its workers: matplotlib, which each worker imports as it
starts, counts there but under no job kind; scipy.stats with scikit-posthocs count under the
statistics job, which imports them (as under `harness report`). Numbers mean little when
the load average is above the core count: it is printed so the reader can judge.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _load() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", nargs="?", default="reports/default")
    parser.add_argument("--synthetic", action="store_true", help="use tests/report_sample.py instead of a folder")
    parser.add_argument("--processes", default="1,2", help="figure worker counts to time (comma list)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--format", default="png")
    args = parser.parse_args()

    # only what `harness report` imports in its main process: matplotlib, and scipy.stats with
    # scikit-posthocs, load in the workers, so their import time shows in the jobs' CPU seconds
    t0 = time.perf_counter()
    import harness
    from harness.report.build import build_report
    from harness.results.store import CACHE_NAME, read_results
    import_seconds = time.perf_counter() - t0
    from importlib.metadata import version

    if args.synthetic:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from report_sample import synthetic_results  # the tests' helper, not part of the package

        source, results = None, synthetic_results()
    else:
        source = Path(args.sweep)
        if not (source / "results").is_dir():
            sys.exit(f"bench_report: no stored results in {source}/results (run `python -m harness sweep` first)")
        results = None
    print(f"# harness report benchmark, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"python {platform.python_version()}, pandas {version('pandas')}, matplotlib {version('matplotlib')}, "
          f"scikit-posthocs {version('scikit-posthocs')}, "
          f"harness {getattr(harness, '__version__', '?')}; {platform.machine()}, {os.cpu_count()} cores")
    print(f"sweep: {'synthetic (tests/report_sample.py)' if source is None else source}; figure formats: {args.format}")
    print(f"imports: {import_seconds:.2f} s")
    for processes in [int(p) for p in args.processes.split(",")]:
        for rep in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp) / "sweep"
                if source is not None:
                    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("figures", "tables", "*.html",
                                                                                  "plotly.min.js"))
                timings = {}
                if source is not None:   # the first read after a change: every cell file, then the cache is written
                    (folder / CACHE_NAME).unlink(missing_ok=True)
                    t = time.perf_counter()
                    read_results(folder)
                    timings["[not in wall] read results, no cache (writes it)"] = time.perf_counter() - t
                load_before, cpu0, wall0 = _load(), _cpu(), time.perf_counter()
                data = results
                if data is None:
                    t = time.perf_counter()
                    data = read_results(folder)
                    timings["read results (store)"] = time.perf_counter() - t
                build_report(folder, results=data, formats=args.format.split(","), processes=processes,
                             timings=timings)
                wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
                size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and "results" not in p.parts)
            phases = ", ".join(f"{k} {v:.2f}" for k, v in timings.items() if not k.startswith("cpu: "))
            figures = ", ".join(f"{k[len('cpu: figure '):]} {v:.2f}" for k, v in timings.items()
                                if k.startswith("cpu: figure "))
            print(f"processes {processes}, run {rep + 1}: wall {wall:.2f} s, cpu {cpu:.2f} s "
                  f"(report files {size / 1e6:.1f} MB); load before: {load_before}")
            print(f"  phases, wall (s): {phases}")
            print(f"  worker jobs by kind, cpu (s): {figures}")
    print(f"load after: {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
