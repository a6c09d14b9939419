"""Speed may not change the page: tables, figures and the page drawn by two worker processes equal the serial build.

In the parallel build the statistics job (ranks, critical-difference diagrams, claims) writes its tables
from a worker; in the serial one the main process does.
"""
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
    # the statistics job's tables (written by a worker in the parallel build, by the main process in the serial one)
    assert "tables/claims.csv" in tables and any(t.startswith("tables/claim-") for t in tables)
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


@pytest.mark.slow
def test_main_process_leaves_scipy_stats_and_matplotlib_to_the_workers(tmp_path):
    """The statistics job (ranks, diagrams, claims) runs in a worker: the main process never imports scipy.stats."""
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    code = (f"import sys; sys.path.insert(0, {str(tests)!r})\n"
            "from harness.report.build import build_report\n"
            "from report_sample import synthetic_results\n"
            "results = synthetic_results(optimizers=('bgd', 'sgd', 'minibatch'), seeds=(0, 1), epochs=4)\n"
            f"page = build_report({str(tmp_path)!r}, results=results, manifest={{'sweep': 'x'}}, processes=2)\n"
            "print(sorted(m for m in ('scipy.stats', 'matplotlib', 'scikit_posthocs') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "tables" / "claims.csv").is_file() and (tmp_path / "tables" / "ranks-train_loss.csv").is_file()
    assert (tmp_path / "figures" / "critical-difference-train_loss.png").is_file()


@pytest.mark.parametrize("processes", [1, 2])
def test_a_call_job_receives_inherited_values_that_do_not_pickle(processes):
    """Claim specs hold plugin callables: FigurePool hands them to a job through fork, not pickle."""
    import pickle

    from harness.report.plots import FigurePool

    def applies(section):   # a local function, as a plugin's lambda: pickle refuses it
        return True

    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(applies)
    pool = FigurePool(processes, inherit={"spec": applies})
    pool.submit_call("job", "a call", "{x} {spec.__name__}".format, {"x": 3}, inherit=("spec",))
    assert pool.results() == {"job": "3 applies"}
    assert set(pool.cpu_seconds) == {"a call"}
