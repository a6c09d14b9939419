"""The report page renders in headless Chromium without console errors and is not blank.

Skipped (with the reason shown by ``-ra``) where Chromium is not installed;
.ci/run installs Debian's ``chromium`` so CI runs it.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness.report.build import build_report
from harness_plugins.claims import CLAIMS
from report_sample import synthetic_results

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
# what Chromium writes to stderr for page problems: console messages (the page has no script, so any
# is unexpected), blocked or missing local files
PROBLEMS = ("CONSOLE", "Not allowed to load local resource", "ERR_FILE_NOT_FOUND", "Uncaught")


def _render(page: Path, shot: Path, size=(1300, 2200)) -> list[str]:
    """Screenshot ``page``; return the stderr lines that report a page problem."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
                               f"--screenshot={shot}", page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=120)
    assert shot.exists(), f"no screenshot; chromium exited {proc.returncode}: {proc.stderr[-500:]}"
    return [line for line in proc.stderr.splitlines() if any(p in line for p in PROBLEMS)]


def _variance(shot: Path) -> float:
    from PIL import Image, ImageStat

    with Image.open(shot) as img:
        return float(sum(ImageStat.Stat(img.convert("L")).var))


@pytest.mark.slow
def test_problem_detector_sees_console_errors(tmp_path):
    # the check below is only meaningful if this Chromium reports console errors the way we scan for
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><p>x</p><script>console.error("boom")</script></body></html>')
    problems = _render(page, tmp_path / "bad.png", size=(400, 300))
    assert any("boom" in line for line in problems), problems


@pytest.mark.slow
def test_report_renders_without_console_errors_and_is_not_blank(tmp_path):
    results = synthetic_results(datasets=("face-vs-background",), losses=("ce", "wce"), seeds=(0, 1), epochs=4)
    page = build_report(tmp_path / "sweep", results=results, manifest={"sweep": "browser test"},
                        claims=CLAIMS)
    shot = tmp_path / "page.png"
    problems = _render(page, shot)
    assert problems == []
    assert _variance(shot) > 100.0, "the screenshot is (nearly) a single colour"
    # and a blank page really scores low, so the threshold means something
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    assert _render(blank, tmp_path / "blank.png", size=(400, 300)) == []
    assert _variance(tmp_path / "blank.png") < 1.0
