"""The report's static figures (matplotlib, Agg backend; PNG, and SVG/PDF on request).

Drawing is kept cheap because the report renders a dozen figures with up to 30
panels each: fixed margins instead of a layout engine, major log ticks only,
one line per method. Curves show the mean over seeds with a shaded band from the lowest to the
highest seed; non-finite values (a diverged run) are left out of both.
Every function writes one figure (``path``, plus the same name in each of
``formats``) and returns its path, or None when there is nothing to draw.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.frames import tuning_columns
from harness.report.ticks import plain_ticks

X_AXES = (("epoch", "epochs", False), ("samples_seen", "samples seen (gradient evaluations)", True),
          ("train_seconds", "training seconds", True))
DPI = 100


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 9, "axes.grid": True, "grid.alpha": 0.3,
                         "legend.fontsize": 8, "figure.dpi": DPI,
                         "axes.titley": 1.0, "axes.titlepad": 4.0,   # a fixed title place: no measuring per panel
                         "text.parse_math": False})  # plugin names may contain "$"
    return plt


def method_colors(methods) -> dict:
    """A fixed colour per method, the same in every figure of the report."""
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
               "#17becf", "#7f7f7f", "#bcbd22"]
    return {m: palette[i % len(palette)] for i, m in enumerate(sorted(set(methods)))}


def _y_band(epoch: np.ndarray, ys: np.ndarray) -> tuple | None:
    """The y part of a method's curve and band, which the three x axes of a convergence row share: the
    records with a finite y (mask), their epoch group, and per epoch the count of runs and the mean, min and
    max of y over them (None: no finite y). Numpy, not a frame per panel: called ~100 times a report."""
    ok = np.isfinite(ys)
    if not ok.any():
        return None
    _epochs, group = np.unique(epoch[ok], return_inverse=True)
    return (ok, group, *_group_stats(group, ys[ok]))


def _group_stats(group: np.ndarray, values: np.ndarray) -> tuple:
    """Per group (``np.unique``'s inverse): the count, mean, min and max of ``values``."""
    n = np.bincount(group)
    low, high = np.full(len(n), np.inf), np.full(len(n), -np.inf)
    np.minimum.at(low, group, values)
    np.maximum.at(high, group, values)
    return n, np.bincount(group, weights=values) / n, low, high


def _x_mean(xs: np.ndarray, ok: np.ndarray, group: np.ndarray, size: int) -> np.ndarray:
    """The x part of a curve on one axis: per epoch group of ``_y_band``, the mean of the finite x of the
    records its mask ``ok`` keeps."""
    xs = xs[ok]
    finite_x = np.isfinite(xs)
    x_count = np.bincount(group, weights=finite_x, minlength=size)
    x_sum = np.bincount(group, weights=np.where(finite_x, xs, 0.0), minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return x_sum / x_count


def _loss_limits(frames) -> tuple[float, float] | None:
    """Log-scale y-limits that keep diverging curves from flattening the rest."""
    starts, values = [], []
    for f in frames:
        m = np.asarray(f["mean"])
        m = m[np.isfinite(m) & (m > 0)]
        v = np.concatenate([m, np.asarray(f["low"]), np.asarray(f["high"])])
        v = v[np.isfinite(v) & (v > 0)]
        if m.size:
            starts.append(m[0])
            values.append(v)
    if not values:
        return None
    allv = np.concatenate(values)
    top = min(allv.max(), 20 * max(starts)) * 1.3
    bottom = max(allv.min() * 0.7, top * 1e-12)
    return bottom, top


def _legend(fig, colors: dict, extra=()) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=2, label=m) for m, c in colors.items()] + list(extra)
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False)


def _log(axis) -> None:
    """Log scale with plain labels at 1, 2, 5 x 10^k, or only 10^k over wide ranges (readable, cheap)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    lo, hi = sorted(axis.get_view_interval())
    wide = lo > 0 and np.log10(hi / lo) > 2.2
    axis.set_major_locator(LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0), numticks=6))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(NullLocator())   # minor log ticks cost more to place than they help to read


def _linear(axis) -> None:
    """At most five major ticks on a linear axis: each tick is four artists to place and draw."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(nbins=5))


# fixed margins in inches (left, right, top, bottom incl. the legend row, gaps): a layout engine
# measures every tick label of every panel and was half the report's time
MARGINS = {"left": 0.75, "right": 0.2, "top": 0.55, "bottom": 0.95, "wspace": 0.75, "hspace": 0.75}


def _figure(plt, nrows: int, ncols: int, width: float, height: float):
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows + 0.8), squeeze=False)
    _margins(fig, nrows, ncols)
    return fig, axes


def _margins(fig, nrows: int, ncols: int, **inches) -> None:
    """Place the panels with fixed margins (inches), the same for every figure size."""
    m = {**MARGINS, **inches}
    w, h = fig.get_size_inches()
    panel_w = (w - m["left"] - m["right"] - m["wspace"] * (ncols - 1)) / ncols
    panel_h = (h - m["top"] - m["bottom"] - m["hspace"] * (nrows - 1)) / nrows
    fig.subplots_adjust(left=m["left"] / w, right=1 - m["right"] / w, top=1 - m["top"] / h,
                        bottom=m["bottom"] / h, wspace=m["wspace"] / max(panel_w, 0.1),
                        hspace=m["hspace"] / max(panel_h, 0.1))


def _suptitle(fig, title: str, fontsize: float) -> None:
    """The figure's title a fixed 0.19 inch from its top (a fraction would reach into the panels of a tall figure)."""
    fig.suptitle(title, fontsize=fontsize, y=1 - 0.19 / fig.get_size_inches()[1])


def _save(fig, path: Path, formats=(), metadata: dict | None = None) -> Path:
    """Write ``path`` and the same figure as each extra format (``svg``, ``pdf``) beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        _write_png(fig, path, metadata)
    else:
        fig.savefig(path, dpi=DPI, metadata=metadata)
    for fmt in formats:
        if fmt != path.suffix.lstrip("."):
            fig.savefig(path.with_suffix(f".{fmt}"), dpi=DPI)
    _pyplot().close(fig)
    return path


def _write_png(fig, path: Path, metadata: dict | None) -> None:
    """The figure as an RGB PNG, with the text chunks ``savefig`` writes (``Software``, then ``metadata``).

    ``savefig`` keeps the Agg canvas's alpha channel, which is all opaque on
    these figures (white background): the same pixels without it take 45% less
    encoding time (the largest single cost of a figure after the drawing) and
    10% fewer bytes. zlib level 3 instead of 6: a third less encoding time for
    files 4% larger.
    """
    import matplotlib
    from PIL import Image, PngImagePlugin

    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    info = PngImagePlugin.PngInfo()
    for key, value in {"Software": f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/",
                       **(metadata or {})}.items():
        if value is not None:
            info.add_text(key, value)
    Image.fromarray(np.ascontiguousarray(rgba[..., :3])).save(path, format="png", pnginfo=info, dpi=(DPI, DPI),
                                                              compress_level=3)


def _collections(ax, lines: list, line_colors: list, bands: list, band_colors: list) -> None:
    """Every mean curve of a panel as one LineCollection and every band as one PolyCollection (two artists, not 2 per method)."""
    from matplotlib.collections import LineCollection, PolyCollection

    if bands:
        ax.add_collection(PolyCollection(bands, facecolors=band_colors, alpha=0.18, linewidths=0))
    if lines:
        ax.add_collection(LineCollection(lines, colors=line_colors, linewidths=1.6))
    ax.autoscale_view()


def convergence(rows: pd.DataFrame, sections: list, colors: dict, metric: str, path: Path,
                title: str, transform=None, ylabel: str | None = None, formats=()) -> Path | None:
    """Grid: one row per section (loss), one column per x-axis; optimizers overlaid.

    ``metric`` is a column (``train_loss``, ``test_loss``); ``transform(frame)``
    may replace it first (the suboptimality plot subtracts the optimum).
    """
    plt = _pyplot()
    rows = rows[rows["status"] != "diverged"]   # counted in the tables; drawn they would only show the blow-up
    sections = [s for s in sections if (rows["section"] == s).any()]
    if not sections:
        return None
    fig, axes = _figure(plt, len(sections), len(X_AXES), 4.3, 2.9)
    for i, section in enumerate(sections):
        srows = rows[rows["section"] == section]
        if transform is not None:
            srows = transform(srows)
        # per method, the y part of the bands once for the row's three x axes (arrays, not a frame per panel)
        groups = [(method, _y_band(mrows["epoch"].to_numpy(), mrows[metric].to_numpy(dtype=float)),
                   {x: mrows[x].to_numpy(dtype=float) for x, _, _ in X_AXES})
                  for method, mrows in srows.groupby("method", sort=True)]
        row_drawn = []
        for j, (x, xlabel, logx) in enumerate(X_AXES):
            ax = axes[i, j]
            drawn, lines, line_colors, bands, band_colors = [], [], [], [], []
            for method, parts, xcols in groups:
                if parts is None:
                    continue
                ok, group, n, mean, low, high = parts
                xs = _x_mean(xcols[x], ok, group, len(n))
                if logx:
                    keep = xs > 0
                    xs, mean, low, high, n = xs[keep], mean[keep], low[keep], high[keep], n[keep]
                if not len(xs):
                    continue
                c = colors.get(method, "k")
                lines.append(np.column_stack([xs, mean]))
                line_colors.append(c)
                if (n > 1).any():
                    bands.append(np.concatenate([np.column_stack([xs, low]), np.column_stack([xs[::-1], high[::-1]])]))
                    band_colors.append(c)
                drawn.append({"mean": mean, "low": low, "high": high})
            _collections(ax, lines, line_colors, bands, band_colors)
            row_drawn.extend(drawn)
        # the three panels of a row show the same values against three x measures: one y range,
        # labelled once on the left (fewer texts to draw, and the panels compare at a glance)
        limits = _loss_limits(row_drawn)
        for j, (x, xlabel, logx) in enumerate(X_AXES):
            ax = axes[i, j]
            if limits:
                ax.set_yscale("log")
                ax.set_ylim(*limits)
                _log(ax.yaxis)
            if logx:
                ax.set_xscale("log")
                ax.autoscale_view(scaley=not limits)
                _log(ax.xaxis)
            else:
                _linear(ax.xaxis)
            ax.set_xlabel(xlabel)
            if j == 0:
                ax.set_ylabel(ylabel or metric.replace("_", " "))
            ax.set_title(section)
            plain_ticks(ax, y_labels=j == 0)
    _suptitle(fig, title, 11)
    _legend(fig, {m: c for m, c in colors.items() if (rows["method"] == m).any()})
    return _save(fig, path, formats)


def suboptimality(rows: pd.DataFrame, sections: list, colors: dict, path: Path, title: str,
                  formats=()) -> Path | None:
    """Train loss minus the convex optimum (the loss's own ``optimum_logits`` solver), log scale."""
    conv = rows[np.isfinite(rows["reference_train_loss"])]
    if conv.empty:
        return None

    def gap(frame):
        frame = frame.copy()
        # a gap at or below zero means "at the optimum up to the reference's tolerance"
        frame["suboptimality"] = np.maximum(frame["train_loss"] - frame["reference_train_loss"], 1e-12)
        return frame

    return convergence(conv, sections, colors, "suboptimality", path, title, transform=gap,
                       ylabel="train loss − optimum", formats=formats)


def lr_sensitivity(tune_runs: pd.DataFrame, chosen: pd.DataFrame, sections: list, colors: dict,
                   path: Path, title: str, formats=()) -> Path | None:
    """Final validation loss against learning rate per optimizer (tune phase), one panel per section.

    Crosses at the top mark learning rates where a run diverged; a ring marks
    the learning rate the sweep chose. Per panel, the mean lines, the range
    bars, the crosses and the rings are one artist each (numpy, not a pandas
    filter and a plot call per optimizer: those were most of the figure's time).
    """
    plt = _pyplot()
    sections = [s for s in sections if (tune_runs["section"] == s).any()]
    if not sections:
        return None
    from matplotlib.collections import LineCollection

    section, method, lr, val, _seed, drawn_ok, failed, c_section, c_method, c_lr = tuning_columns(tune_runs, chosen)
    cols = min(3, len(sections))
    nrows = int(np.ceil(len(sections) / cols))
    fig, axes = _figure(plt, nrows, cols, 4.3, 3.0)
    for ax in axes.flat[len(sections):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, sections):
        here = section == name
        finite = val[here & drawn_ok]
        top = float(finite.max()) * 1.5 if len(finite) else 10.0
        lines, line_colors, bars, bar_colors, crosses, cross_colors, rings, ring_colors = ([] for _ in range(8))
        for m in sorted(set(method[here])):
            c = colors.get(m, "k")
            mine = here & (method == m)
            ok = mine & drawn_ok
            grid, group = np.unique(lr[ok], return_inverse=True)
            if len(grid):
                _n, mean, low, high = _group_stats(group, val[ok])
                lines.append(np.column_stack([grid, mean]))
                line_colors.append(c)
                bars.extend(((x, lo), (x, hi)) for x, lo, hi in zip(grid, low, high))
                bar_colors.extend([c] * len(grid))
                picked = np.unique(c_lr[(c_section == name) & (c_method == m)])
                for x in picked[np.isin(picked, grid)]:
                    rings.append((x, mean[np.searchsorted(grid, x)]))
                    ring_colors.append(c)
            for x in np.unique(lr[mine & failed]):
                crosses.append((x, top))
                cross_colors.append(c)
        if bars:
            ax.add_collection(LineCollection(bars, colors=bar_colors, linewidths=1))
            ax.add_collection(LineCollection(lines, colors=line_colors, linewidths=1.4))
        if crosses:
            ax.scatter(*np.transpose(crosses), marker="x", c=cross_colors, s=49, linewidths=2)
        if rings:
            ax.scatter(*np.transpose(rings), marker="o", facecolors="none", edgecolors=ring_colors, s=100,
                       linewidths=1.5)
        ax.set_xscale("log")
        if len(finite) and (finite > 0).all():
            ax.set_yscale("log")
        ax.autoscale_view()
        _log(ax.xaxis)
        if len(finite) and (finite > 0).all():
            _log(ax.yaxis)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("final validation loss")
        ax.set_title(name)
        plain_ticks(ax)
    from matplotlib.lines import Line2D

    extra = [Line2D([], [], ls="", marker="x", color="k", mew=2, label="diverged"),
             Line2D([], [], ls="", marker="o", mfc="none", mec="k", ms=9, label="chosen")]
    _suptitle(fig, title, 11)
    _legend(fig, {m: c for m, c in colors.items() if (tune_runs["method"] == m).any()}, extra)
    return _save(fig, path, formats)


def minority_recall(final_runs: pd.DataFrame, colors: dict, path: Path, title: str, formats=()) -> Path | None:
    """Grouped bars: test minority recall per optimizer and loss (mean, with each seed as a dot)."""
    plt = _pyplot()
    ok = final_runs[final_runs["status"].isin(("done", "stopped"))]
    if ok.empty:
        return None
    losses = sorted(ok["section"].unique())
    methods = sorted(ok["method"].unique())
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(methods) * len(losses) + 2.5), 3.4))
    _margins(fig, 1, 1, right=1.9, top=0.35, bottom=0.7)
    width = 0.8 / len(losses)
    hatches = ["", "//", "..", "xx", "\\\\"]
    for k, section in enumerate(losses):
        for i, method in enumerate(methods):
            v = ok[(ok["section"] == section) & (ok["method"] == method)]["test_minority_recall"].dropna()
            if v.empty:
                continue
            xpos = i + (k - (len(losses) - 1) / 2) * width
            ax.bar(xpos, v.mean(), width * 0.92, color=colors.get(method, "k"), alpha=0.35 + 0.5 * k / max(1, len(losses) - 1),
                   hatch=hatches[k % len(hatches)], edgecolor="k", lw=0.5)
            ax.plot(np.full(len(v), xpos), v, "k.", ms=3)
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods, rotation=15)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test minority recall")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(facecolor="#bbbbbb", edgecolor="k", hatch=hatches[k % len(hatches)],
                             label=s.split(" / ", 1)[-1]) for k, s in enumerate(losses)],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title(title)
    return _save(fig, path, formats)


def confusion(final_runs: pd.DataFrame, class_names: list | None, path: Path, title: str,
              formats=()) -> Path | None:
    """Test confusion matrices summed over seeds: one row per loss, one column per optimizer.

    Colour is the row-normalised share (recall per true class); the counts are written in.
    """
    plt = _pyplot()
    ok = final_runs[final_runs["status"].isin(("done", "stopped")) & (final_runs["test_confusion"].astype(str) != "")]
    if ok.empty:
        return None
    sections = sorted(ok["section"].unique())
    methods = sorted(ok["method"].unique())
    k = len(json.loads(next(c for c in ok["test_confusion"] if c)))
    names = [n[:12] for n in (class_names if class_names and len(class_names) == k else map(str, range(k)))]
    # the class names label the rows once, left of the first column, beside the loss and "true class"
    # (about 0.055 inch a character at 7 points, 0.45 inch for the two-line label)
    left = max(0.75, 0.055 * max(map(len, names)) + 0.55) if k <= 4 else 0.75
    fig, axes = plt.subplots(len(sections), len(methods),
                             figsize=(2.3 * len(methods) + left - 0.15, 2.3 * len(sections) + 0.6), squeeze=False)
    _margins(fig, len(sections), len(methods), left=left, right=0.1, top=0.6, bottom=0.4, wspace=0.25, hspace=0.4)
    for i, section in enumerate(sections):
        for j, method in enumerate(methods):
            ax = axes[i, j]
            ax.grid(False)
            cells = ok[(ok["section"] == section) & (ok["method"] == method)]["test_confusion"]
            mats = [np.asarray(json.loads(c), dtype=float) for c in cells if c]
            ax.set_xticks([])
            ax.set_yticks([])
            if not mats:
                ax.set_visible(False)
                continue
            total = np.sum(mats, axis=0)
            share = total / np.maximum(total.sum(axis=1, keepdims=True), 1)
            ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
            if k <= 4:
                for r in range(k):
                    for c in range(k):
                        ax.text(c, r, f"{int(total[r, c])}", ha="center", va="center", fontsize=9,
                                color="white" if share[r, c] > 0.6 else "black")
                ax.set_xticks(range(k))
                ax.set_yticks(range(k))
                ax.set_xticklabels(names, fontsize=7)
                ax.set_yticklabels(names if j == 0 else [], fontsize=7)
            if i == 0:
                ax.set_title(method, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{section.split(' / ', 1)[-1]}\ntrue class", fontsize=8)
            if i == len(sections) - 1:
                ax.set_xlabel("predicted", fontsize=8)
    _suptitle(fig, title, 10)
    return _save(fig, path, formats)


def performance_profiles(profiles: dict, colors: dict, path: Path, formats=()) -> Path | None:
    """One panel per work measure: the share of sections within tau of the best, per optimizer."""
    from harness.report.profile import profile_curve, tau_max as profile_tau_max

    plt = _pyplot()
    profiles = {k: v for k, v in profiles.items() if not v.empty}
    if not profiles:
        return None
    fig, axes = plt.subplots(1, len(profiles), figsize=(5.2 * len(profiles), 3.6), squeeze=False)
    _margins(fig, 1, len(profiles), top=0.35, bottom=0.95)
    for ax, (label, ratio) in zip(axes.flat, profiles.items()):
        tau_max = profile_tau_max(ratio)
        for k, method in enumerate(ratio.columns):
            taus, rho = profile_curve(ratio[method].to_numpy(), tau_max)
            # a small vertical offset per method keeps coinciding curves visible
            offset = 0.008 * (k - (len(ratio.columns) - 1) / 2)
            ax.step(taus, rho + offset, where="post", color=colors.get(method, "k"), lw=1.8, label=method)
        ax.set_xscale("log", base=2)
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlim(1, tau_max)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"tau (ratio to the best {label})")
        ax.set_ylabel("share of dataset/loss sections")
        ax.set_title(f"Performance profile: {label} to target ({len(ratio)} sections)")
        plain_ticks(ax)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), frameon=False)
    return _save(fig, path, formats)


FIXED_TARGET_AXES = (("samples_seen", "samples seen"), ("train_seconds", "training seconds"))


def _post_steps(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The vertices ``ax.step(x, y, where="post")`` draws: flat to the next x, then up (for a LineCollection)."""
    return np.column_stack([np.repeat(x, 2)[1:], np.repeat(y, 2)[:-1]])


def fixed_target(pairs: pd.DataFrame, colors: dict, path: Path, title: str, formats=()) -> Path | None:
    """ECDF of time to target: per section (row) and axis (column), the share of an optimizer's (run, target) pairs
    reached within x. ``pairs`` is ``tables.fixed_target_times`` (the interpolation the interactive view uses too)."""
    from harness.report.tables import ecdf

    plt = _pyplot()
    if pairs.empty or not np.isfinite(pairs[FIXED_TARGET_AXES[0][0]]).any():
        return None
    from matplotlib.ticker import FixedLocator

    sections = sorted(pairs["section"].unique())
    fig, axes = _figure(plt, len(sections), len(FIXED_TARGET_AXES), 4.3, 2.6)
    for i, section in enumerate(sections):
        spairs = pairs[pairs["section"] == section]
        for j, (column, label) in enumerate(FIXED_TARGET_AXES):
            ax = axes[i, j]
            lines, line_colors = [], []
            for method, m in spairs.groupby("method", sort=True):
                x, y = ecdf(m[column], len(m))
                x = x[x > 0] if len(x) else x
                if not len(x):
                    continue
                y = y[-len(x):]
                # start at zero just left of the first reach, end flat at the right edge (drawn below)
                lines.append(_post_steps(np.r_[x[0], x], np.r_[0.0, y]))
                line_colors.append(colors.get(method, "k"))
            _collections(ax, lines, line_colors, [], [])
            ax.set_xscale("log")
            ax.autoscale_view()
            _log(ax.xaxis)
            ax.set_ylim(-0.02, 1.02)
            ax.yaxis.set_major_locator(FixedLocator([0.0, 0.25, 0.5, 0.75, 1.0]))
            ax.set_xlabel(label)
            if j == 0:   # the panels of a row share the y range: its labels once, on the left
                ax.set_ylabel("share of (run, target) pairs")
            ax.set_title(section)
            plain_ticks(ax, y_labels=j == 0)
    _suptitle(fig, title, 11)
    _legend(fig, {m: c for m, c in colors.items() if (pairs["method"] == m).any()})
    return _save(fig, path, formats)


CD_LABEL = "{label} ({rank:.3g})"


def critical_difference(ranks: pd.Series, matrix: pd.DataFrame, alpha: float, cd: float, heading: str, path: Path,
                        formats=()) -> Path | None:
    """A critical-difference diagram (Demsar 2006) drawn by scikit-posthocs.

    ``ranks`` are the average ranks the page's table shows (method -> rank),
    ``matrix`` the sections x methods values they came from: scikit-posthocs
    computes the pairwise Nemenyi p-values from it and joins with a bar the
    methods no pair of which differs at ``alpha``; ``cd`` is drawn as the
    critical-difference segment. What was drawn (labels, heading, the methods
    each bar joins) is stored in the PNG's ``Description``, so a test can
    compare the picture with the table.
    """
    import scikit_posthocs as sp

    plt = _pyplot()
    if len(ranks) < 2 or matrix.shape[0] < 2:
        return None
    pvalues = sp.posthoc_nemenyi_friedman(matrix.to_numpy(dtype=float))
    pvalues.index = pvalues.columns = list(matrix.columns)
    fig, ax = plt.subplots(figsize=(8.5, 1.6 + 0.3 * len(ranks)))
    _margins(fig, 1, 1, left=1.9, right=1.9, top=1.0, bottom=0.15)   # the labels sit outside the axes
    artists = sp.critical_difference_diagram(ranks, pvalues, ax=ax, alpha=alpha, cd=cd if np.isfinite(cd) else None,
                                             label_fmt_left=CD_LABEL, label_fmt_right=CD_LABEL)
    ax.set_title(heading, fontsize=9, pad=24)   # above the rank ticks and the CD segment
    bars = []
    for drawn in artists["crossbars"]:
        xs = np.concatenate([np.asarray(line.get_xdata(), dtype=float) for line in drawn])
        bars.append(sorted(str(m) for m, r in ranks.items() if xs.min() <= r <= xs.max()))
    record = {"labels": [t.get_text() for t in artists["labels"]], "heading": heading, "bars": bars}
    return _save(fig, path, formats, metadata={"Description": json.dumps(record)})


# --------------------------------------------------------------------------- rendering in parallel
PROCESSES = 2
# the figures drawn as jobs of their own (the critical-difference diagrams are drawn by the statistics job)
FUNCTIONS = {f.__name__: f for f in (convergence, suboptimality, lr_sensitivity, minority_recall, confusion,
                                     performance_profiles, fixed_target)}


def _run(job: tuple) -> tuple[Path | None, float]:
    """Draw one figure; returns its path and the CPU seconds it took (the benchmark prints them per kind)."""
    name, kwargs = job
    start = time.process_time()
    path = FUNCTIONS[name](**kwargs)
    return path, time.process_time() - start


def _worker_start() -> None:
    """A figure worker runs without the cyclic garbage collector.

    A figure is tens of thousands of matplotlib objects in reference cycles:
    the collector's repeated passes over them (and over the inherited modules)
    took 15% of the drawing time. A worker lives for one report, so its
    garbage is left until it exits (about 60 MB for all of the default sweep's figures).
    """
    import gc

    _pyplot()      # imported here, not in the parent: two workers import it while the parent works on
    gc.freeze()    # what the worker inherited or imported is never scanned again
    gc.disable()


_INHERITED: dict = {}   # values forked workers find in their copy of this module (FigurePool's ``inherit``)


def _run_call(function, kwargs: dict, inherit: tuple) -> tuple:
    """Run a ``submit_call`` job in a worker, adding the inherited values; its value and CPU seconds."""
    start = time.process_time()
    value = function(**kwargs, **{name: _INHERITED[name] for name in inherit})
    return value, time.process_time() - start


class FigurePool:
    """Draws figures (and the statistics job) in worker processes while the caller goes on with tables and the page.

    Figures are independent and matplotlib holds the GIL while drawing, so
    threads would not help; ``processes`` workers (forked: they inherit the
    imported pandas; each imports matplotlib itself, beside the caller's work)
    start on the first ``submit``, or at once when given ``inherit``: values
    that ``submit_call`` jobs receive through fork instead of pickled (claim
    specs hold the plugins' own callables, which do not pickle), so that the
    workers import matplotlib while the caller is still reading the results.
    With one process, or without fork for a job that needs inherited values,
    the jobs run in ``results`` instead.
    """

    def __init__(self, processes: int = PROCESSES, inherit: dict | None = None):
        import multiprocessing

        self.processes, self.jobs, self.calls, self.futures, self.pool = processes, {}, {}, {}, None
        self.inherit, self.cpu_seconds = dict(inherit or {}), {}
        self.forks = processes > 1 and "fork" in multiprocessing.get_all_start_methods()
        if self.inherit and self.forks:
            _INHERITED.update(self.inherit)
            self._start()
            self.pool.submit(int)   # the executor forks its workers on a first job, not when it is made

    def submit(self, key: str, function: str, kwargs: dict) -> None:
        self.jobs[key] = (function, kwargs)
        if self.processes > 1:
            self._start()
            self.futures[key] = self.pool.submit(_run, self.jobs[key])

    def submit_call(self, key: str, kind: str, function, kwargs: dict, inherit=()) -> None:
        """Run ``function(**kwargs)`` (a module-level function) in a worker, with the ``inherit`` values named.

        Its value (which must pickle) is in ``results()[key]``; its CPU seconds count under ``kind``.
        """
        self.calls[key] = (kind, function, kwargs, tuple(inherit))
        if self.processes > 1 and (self.forks or not inherit):
            self._start()
            self.futures[key] = self.pool.submit(_run_call, function, kwargs, tuple(inherit))

    def _start(self) -> None:
        if self.pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("fork" if self.forks else None)
            self.pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=context, initializer=_worker_start)

    def results(self) -> dict:
        """``{key: path or None}`` for every submitted figure, and each ``submit_call`` job's value, once all are done.

        ``cpu_seconds`` then holds the CPU seconds spent per kind (figure function name, or a call's kind).
        """
        try:
            done = {key: self.futures[key].result() if key in self.futures else _run(job)
                    for key, job in self.jobs.items()}
            kinds = {key: job[0] for key, job in self.jobs.items()}
            for key, (kind, function, kwargs, inherit) in self.calls.items():
                if key in self.futures:
                    done[key] = self.futures[key].result()
                else:
                    start = time.process_time()
                    value = function(**kwargs, **{name: self.inherit[name] for name in inherit})
                    done[key] = value, time.process_time() - start
                kinds[key] = kind
        finally:
            self.close()
        self.cpu_seconds = {}
        for key, (_value, seconds) in done.items():
            self.cpu_seconds[kinds[key]] = self.cpu_seconds.get(kinds[key], 0.0) + seconds
        return {key: value for key, (value, _seconds) in done.items()}

    def close(self) -> None:
        for name in self.inherit:
            _INHERITED.pop(name, None)
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def __del__(self):   # an exception between submit and results: do not leave workers behind
        for name in getattr(self, "inherit", ()):
            _INHERITED.pop(name, None)
        if getattr(self, "pool", None) is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
