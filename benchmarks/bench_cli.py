"""Time the command line's quick commands against a bare interpreter, with the machine's load.

    python benchmarks/bench_cli.py              # median of 5 runs of each command
    python benchmarks/bench_cli.py --repeat 9

Each command runs in a fresh interpreter (``python -m harness ...``, output
discarded), the wall clock measured around the whole process. The anchor
``python -c pass`` is what any Python command costs on this machine at this
moment: the column ``- anchor`` is what harness adds to it. The target
(issue 10) is <= 0.5 s for each command. Commands are interleaved round by
round, so a burst of load from other processes hits every command alike.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

from machine_load import uptime

COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "harness --help": ["-m", "harness", "--help"],
    "harness list optimizers": ["-m", "harness", "list", "optimizers"],
    "harness plugins": ["-m", "harness", "plugins"],
}
TARGET = 0.5


def wall(args: list) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (the median is shown)")
    args = parser.parse_args()
    print(f"# bench_cli: wall of a fresh process per command, median of {args.repeat} (interleaved)")
    print(f"# machine: {platform.machine()}, {os.cpu_count()} cores; uptime at start: {uptime()}")
    print(f"# python {platform.python_version()} at {sys.executable}")
    for argv in COMMANDS.values():   # warm the file cache and bytecode once, untimed
        wall(argv)
    times: dict = {name: [] for name in COMMANDS}
    for _ in range(args.repeat):
        for name, argv in COMMANDS.items():
            times[name].append(wall(argv))
    anchor = statistics.median(times["python -c pass"])
    print(f"{'command':28s}{'median s':>10s}{'min s':>8s}{'max s':>8s}{'- anchor':>10s}  target")
    for name, values in times.items():
        med = statistics.median(values)
        verdict = "" if name.startswith("python") else ("ok" if med <= TARGET else f"over {TARGET:g} s")
        print(f"{name:28s}{med:10.3f}{min(values):8.3f}{max(values):8.3f}{med - anchor:10.3f}  {verdict}")
    print(f"# uptime at end: {uptime()} (other processes on the machine inflate every row, the anchor too)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
