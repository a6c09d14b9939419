"""The report's figures across datasets: the critical-difference diagram draws the table's ranks, and the
fixed-target view's time to target is interpolated between epoch records (one function for both views)."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness.report import interactive, tables
from harness.report.build import build_report
from harness.report.stats import nemenyi_cd
from report_sample import synthetic_results


# --------------------------------------------------------------------------- the interpolation, by hand
def test_first_reach_interpolates_between_the_records_around_the_crossing():
    loss = np.array([1.0, 0.8, 0.4, 0.3])
    axes = {"samples_seen": np.array([0.0, 100.0, 200.0, 300.0]), "train_seconds": np.array([0.0, 0.1, 0.3, 0.6])}
    # 0.5 lies 3/4 of the way from 0.8 (record 1) to 0.4 (record 2): 100 + 0.75 * 100, 0.1 + 0.75 * 0.2
    at = tables.first_reach(loss, axes, 0.5)
    assert at["samples_seen"] == pytest.approx(175.0, abs=1e-12)
    assert at["train_seconds"] == pytest.approx(0.25, abs=1e-12)
    assert tables.first_reach(loss, axes, 0.4) == {"samples_seen": 200.0, "train_seconds": 0.3}   # on a record
    assert tables.first_reach(loss, axes, 1.5) == {"samples_seen": 0.0, "train_seconds": 0.0}     # at the start
    assert tables.first_reach(loss, axes, 0.25) is None                                           # never
    # the first crossing counts, not a later one after the loss went back up
    bumpy = np.array([1.0, 0.5, 0.9, 0.2])
    assert tables.first_reach(bumpy, {"x": np.arange(4.0)}, 0.6)["x"] == pytest.approx(0.8, abs=1e-12)


def test_ecdf_counts_never_reached_pairs_in_the_total():
    x, share = tables.ecdf([3.0, np.nan, 1.0, np.inf], total=4)
    assert x.tolist() == [1.0, 3.0] and share.tolist() == [0.25, 0.5]


def _two_runs() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = pd.DataFrame({"cell_id": ["a"] * 3 + ["b"] * 3, "epoch": [0, 1, 2] * 2,
                         "samples_seen": [0.0, 10.0, 20.0] * 2, "train_seconds": [0.0, 1.0, 2.0, 0.0, 2.0, 4.0],
                         "train_loss": [1.0, 0.6, 0.2, 1.0, 0.9, 0.8]})
    runs = pd.DataFrame({"cell_id": ["a", "b"], "section": ["s", "s"], "method": ["fast", "slow"],
                         "lr": [0.1, 0.1], "seed": [0, 0]})
    return rows, runs


def test_fixed_target_times_use_every_share_of_the_best_reduction():
    rows, runs = _two_runs()
    targets = pd.DataFrame({"section": ["s"], "initial_loss": [1.0], "best_loss": [0.2], "best_method": ["fast"],
                            "target_loss": [0.28]})
    pairs = tables.fixed_target_times(rows, runs, targets, shares=(0.5, 0.9))
    fast = pairs[pairs["method"] == "fast"].set_index("share")
    # target at 50%: 1 - 0.5 * 0.8 = 0.6, reached exactly at record 1; at 90%: 0.28, 80% of the way from 0.6 to 0.2
    assert fast.loc[0.5, "target_loss"] == pytest.approx(0.6)
    assert fast.loc[0.5, "samples_seen"] == pytest.approx(10.0)
    assert fast.loc[0.9, "target_loss"] == pytest.approx(0.28)
    assert fast.loc[0.9, "samples_seen"] == pytest.approx(18.0)
    assert fast.loc[0.9, "train_seconds"] == pytest.approx(1.8)
    assert pairs[pairs["method"] == "slow"]["samples_seen"].isna().all()   # 0.8 never reaches 0.6
    # the interactive view reads the same crossings
    spec = interactive.fixed_target(pairs, runs, {"fast": "#000", "slow": "#111"})
    by_name = {t["name"]: t for t in spec["data"]}
    assert by_name["fast"]["x"] == pytest.approx([10.0, 18.0]) and by_name["fast"]["y"] == pytest.approx([0.5, 1.0])
    assert by_name["slow"]["x"] == []
    seconds = next(b for b in spec["layout"]["updatemenus"][0]["buttons"] if b["label"] == "training seconds")
    assert seconds["args"][0]["x"][0] == pytest.approx([1.0, 1.8])


# --------------------------------------------------------------------------- built into a page
@pytest.fixture(scope="module")
def page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("figures")
    results = synthetic_results(optimizers=("bgd", "sgd", "minibatch", "point"), seeds=(0, 1), epochs=6,
                                extras=False)
    build_report(folder, results=results, manifest={}, claims=[], processes=1)
    return folder


def _drawn(png) -> dict:
    return json.loads(Image.open(png).text["Description"])


@pytest.mark.parametrize("metric", ["train_loss", "test_loss"])
def test_critical_difference_diagram_draws_the_tables_ranks(page, metric):
    png = page / "figures" / f"critical-difference-{metric}.png"
    assert png.is_file()
    drawn = _drawn(png)
    ranks = pd.read_csv(page / "tables" / f"ranks-{metric}.csv")
    assert sorted(drawn["labels"]) == sorted(f"{m} ({r:.3g})" for m, r in zip(ranks["method"], ranks["average rank"]))
    # the heading's Friedman p and critical difference are the table title's
    text = (page / "index.html").read_text()
    label = dict(tables.RANK_METRICS)[metric]
    title = re.search(rf"Average rank by {label} over (\d+) sections: Friedman chi2 [^,]+, p ([^;]+); "
                      rf"Nemenyi critical difference ([0-9.e-]+)", text)
    assert title, "rank table title missing"
    n_sections, p, cd = title.groups()
    assert f"Friedman p {p}," in drawn["heading"] and f"Nemenyi CD {cd} " in drawn["heading"]
    assert float(cd) == pytest.approx(nemenyi_cd(len(ranks), int(n_sections)), rel=5e-3)   # 3 digits
    assert png.relative_to(page).as_posix() in text


def test_critical_difference_bars_join_exactly_the_pairs_within_the_critical_difference(tmp_path):
    """scikit-posthocs' Nemenyi p-values and the table's critical difference agree on which ranks differ."""
    from harness.report import plots

    # 12 sections x 4 methods: a and b swap places every other section (indistinguishable), c and d always last
    matrix = pd.DataFrame(np.tile([1.0, 2.0, 3.0, 4.0], (12, 1)), columns=["a", "b", "c", "d"])
    matrix.iloc[::2, [0, 1]] = [2.0, 1.0]
    ranks = pd.Series(matrix.rank(axis=1).mean(axis=0).to_numpy(), index=matrix.columns)
    assert ranks.tolist() == [1.5, 1.5, 3.0, 4.0]
    cd = nemenyi_cd(4, 12)
    drawn = _drawn(plots.critical_difference(ranks, matrix, 0.05, cd, "x", tmp_path / "cd.png"))
    joined = {(i, j) for bar in drawn["bars"] for i in bar for j in bar if i < j}
    within = {(i, j) for i in ranks.index for j in ranks.index if i < j and abs(ranks[i] - ranks[j]) < cd}
    assert joined == within and ("a", "b") in joined and ("a", "d") not in joined


def test_fixed_target_png_is_on_the_page(page):
    png = page / "figures" / "fixed-target.png"
    assert png.is_file() and png.stat().st_size > 1000
    text = (page / "index.html").read_text()
    assert "figures/fixed-target.png" in text and "50%" in text and "interpolated" in text


# --------------------------------------------------------------------------- the PNG writer
def test_png_is_the_pixels_savefig_writes_without_the_opaque_alpha(tmp_path):
    """The report's PNGs drop the Agg canvas's alpha channel (all opaque): same pixels, same text chunks."""
    from harness.report import plots

    plt = plots._pyplot()
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1, 2, 3], [3, 1, 2], lw=2)
    ax.fill_between([1, 2, 3], [1, 0.5, 1], [3, 2, 2.5], alpha=0.2)   # translucent artists on the white figure
    ax.set_title("μ & $x$ <b>")
    fig.savefig(tmp_path / "savefig.png", dpi=plots.DPI, metadata={"Description": "drawn {\"bars\": []}"})
    plots._save(fig, tmp_path / "report.png", metadata={"Description": "drawn {\"bars\": []}"})
    with Image.open(tmp_path / "savefig.png") as a, Image.open(tmp_path / "report.png") as b:
        assert (a.mode, b.mode) == ("RGBA", "RGB")
        rgba, rgb = np.asarray(a), np.asarray(b)
        assert (rgba[..., 3] == 255).all()
        assert np.array_equal(rgba[..., :3], rgb)
        assert a.text == b.text and b.text["Description"] == "drawn {\"bars\": []}"
        assert a.info["dpi"] == b.info["dpi"]


# --------------------------------------------------------------------------- the interactive lr figure
def test_interactive_learning_rate_figure_reads_the_runs_as_pandas_does():
    """Means per learning rate (pandas' groupby mean), every drawn run sorted by rate, failed runs at the top."""
    nan, inf = float("nan"), float("inf")
    tune = pd.DataFrame({
        "section": ["s / ce"] * 9 + ["s / bce"] * 2,
        "method": ["sgd", "sgd", "sgd", "sgd", "bgd", "bgd", "bgd", "sgd", "sgd", "sgd", "bgd"],
        "lr": [0.1, 0.01, 0.1, 1.0, 0.1, 0.01, 1.0, 0.01, 0.3, 0.1, 0.1],
        "seed": [0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0],
        "status": ["done", "done", "done", "diverged", "done", "stopped", "error", "done", "done", "done", "done"],
        "val_loss": [0.5, 0.7, 0.25, inf, 0.4, 0.6, nan, 0.9, nan, 0.3, 0.2]})
    chosen = pd.DataFrame({"section": ["s / ce", "s / ce"], "method": ["sgd", "bgd"], "lr": [0.1, 0.3]})
    spec = interactive.lr_sensitivity(tune, chosen, ["s / bce", "s / ce"], {"sgd": "red", "bgd": "blue"}, "t")
    traces = {(t["xaxis"], t["name"], t["mode"], t.get("marker", {}).get("size")): t for t in spec["data"]}
    ce = tune[tune["section"] == "s / ce"]
    top = ce.loc[ce["status"] != "diverged", "val_loss"].dropna().max() * 1.5
    for name in ("sgd", "bgd"):
        m = ce[ce["method"] == name]
        ok = m[(m["status"] != "diverged") & np.isfinite(m["val_loss"])].sort_values("lr")
        mean = ok.groupby("lr")["val_loss"].mean()
        line = traces[("x2", name, "lines", None)]
        assert line["x"] == mean.index.tolist() and line["y"] == mean.tolist()
        failed = m[~m.index.isin(ok.index) & m["status"].isin(("diverged", "done", "stopped"))]
        points = traces[("x2", name, "markers", 6)]
        assert points["x"] == ok["lr"].tolist() + failed["lr"].tolist()
        assert points["y"] == ok["val_loss"].tolist() + [top] * len(failed)
        assert points["marker"]["symbol"] == ["circle"] * len(ok) + ["x"] * len(failed)
        assert [t.split("seed ")[1][0] for t in points["text"]] == [str(s) for s in ok["seed"].tolist() +
                                                                    failed["seed"].tolist()]
    assert traces[("x2", "sgd", "markers", 14)]["x"] == [0.1] and ("x2", "bgd", "markers", 14) not in traces
    assert traces[("x2", "sgd", "markers", 14)]["y"] == [pytest.approx((0.5 + 0.25) / 2)]
    assert traces[("x", "sgd", "lines", None)]["y"] == [0.3]   # the first section given, alone in its panel


# --------------------------------------------------------------------------- the confusion figure's labels
def test_confusion_labels_stay_inside_the_figure_and_clear_of_the_next_panel(monkeypatch):
    """Each row's loss and "true class", and the class names, sit left of the first column inside the figure;
    the other columns repeat no class names that could run into the panel on their left."""
    from harness.report import plots

    drawn = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path, formats=(), metadata=None: drawn.setdefault("fig", fig))
    confusion = json.dumps([[1790, 10], [30, 170]])
    runs = pd.DataFrame([{"status": "done", "test_confusion": confusion, "section": f"faces / {loss}",
                          "method": method} for loss in ("bce", "ce") for method in ("bgd", "sgd", "point")])
    plots.confusion(runs, ["background", "a face in the picture"], plots.Path("unused.png"), "title")
    fig = drawn["fig"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = np.array(fig.axes).reshape(2, 3)
    for row in axes:
        first = row[0]
        for text in [first.yaxis.label, *first.get_yticklabels()]:
            assert text.get_text() and text.get_window_extent(renderer).x0 >= 0, text.get_text()
        assert "ce" in first.get_ylabel() and "true class" in first.get_ylabel()
        for ax in row[1:]:
            assert [t.get_text() for t in ax.get_yticklabels()] == ["", ""]
        widest = max(t.get_window_extent(renderer).x1 for t in first.get_yticklabels())
        assert widest <= first.get_window_extent(renderer).x0
    plots._pyplot().close(fig)
