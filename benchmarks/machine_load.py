"""The machine's load, printed by every benchmark beside its timings (these machines are shared and noisy).

Imported by the scripts in this folder (run as ``python benchmarks/<script>.py``, so the folder is on the path).
"""
from __future__ import annotations

import os
import subprocess


def uptime() -> str:
    """``uptime``'s line, or the load averages when the command is missing."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        one, five, fifteen = os.getloadavg()
        return f"load average: {one:.2f}, {five:.2f}, {fifteen:.2f}"
