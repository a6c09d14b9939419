"""Speed may not change the page: tables, figures and the page drawn by two worker processes equal the serial build."""
from __future__ import annotations

import re

import pytest

from harness.report.build import build_report
from report_sample import synthetic_results


@pytest.mark.slow
def test_tables_figures_and_page_from_the_parallel_path_equal_the_serial_one(tmp_path):
    results = synthetic_results(optimizers=("bgd", "sgd", "minibatch"), seeds=(0, 1), epochs=4)
    one = build_report(tmp_path / "one", results=results, manifest={"sweep": "same"}, processes=1).parent
    two = build_report(tmp_path / "two", results=results, manifest={"sweep": "same"}, processes=2).parent
    tables = sorted(p.relative_to(one).as_posix() for p in (one / "tables").iterdir())
    assert any(t.endswith("summary.csv") for t in tables) and any("ranks-" in t for t in tables)
    assert tables == sorted(p.relative_to(two).as_posix() for p in (two / "tables").iterdir())
    for name in tables:   # bit-identical, not approximately equal
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    figures = sorted(p.name for p in (one / "figures").iterdir())
    assert "fixed-target.png" in figures and "critical-difference-train_loss.png" in figures
    assert figures == sorted(p.name for p in (two / "figures").iterdir())
    for name in figures:
        assert (one / "figures" / name).read_bytes() == (two / "figures" / name).read_bytes(), name
    built = re.compile(r"Built \d{4}-\d\d-\d\d \d\d:\d\d UTC")   # the only line that may differ: the build time
    # ... and the folder in the rebuild command
    page_one, page_two = (built.sub("", (d / "index.html").read_text()).replace(str(d), "DIR") for d in (one, two))
    assert page_one == page_two
