"""Cheap axis decoration for the static figures: grid lines as one collection, tick labels as plain texts.

Why: in a report figure with 9 to 18 small panels, matplotlib's tick machinery
(a ``Tick`` per label, each with three ``Line2D`` and two ``Text`` artists,
created, positioned and measured at every draw) took more than half of the
drawing time (benchmarks/README.md, Report). ``plain_ticks`` reads the ticks
the axis would show (its locator and formatter, after the limits are final),
draws their grid lines as one ``LineCollection`` per axis and their labels as
``Text`` beside the spine, and turns matplotlib's own ticks off. The picture
shows the same tick values and labels, without the short tick marks.
"""
from __future__ import annotations

# matplotlib is imported inside the functions: the module is imported by plots, which the
# report imports in processes that never draw

PAD = 3.5          # points between the spine and a tick label (matplotlib's default tick pad)
DIGIT = 0.62       # width of a label character in ems (DejaVu Sans digits are 0.636)
GRID = {"colors": "#b0b0b0", "linewidths": 0.8, "alpha": 0.3}


def _ticks(axis) -> tuple[list, list] | None:
    """The tick values inside the view and their labels, or None when the labels need an offset text."""
    lo, hi = sorted(axis.get_view_interval())
    values = [float(v) for v in axis.get_major_locator().tick_values(lo, hi)]
    # the same tolerance matplotlib uses to keep a tick that sits on a limit
    tol = (hi - lo) * 1e-10 if axis.get_scale() == "linear" else 0.0
    values = [v for v in values if lo - tol <= v <= hi + tol and (axis.get_scale() != "log" or v > 0)]
    from matplotlib.ticker import ScalarFormatter

    formatter = axis.get_major_formatter()
    formatter.set_locs(values)
    if isinstance(formatter, ScalarFormatter) and formatter.get_offset():
        return None   # "1e6" above the axis: leave such an axis to matplotlib
    return values, [formatter(v, i) for i, v in enumerate(values)]


def plain_ticks(ax, fontsize: float = 9.0, grid: bool = True, y_labels: bool = True) -> None:
    """Replace ``ax``'s ticks by grid lines (one collection per axis) and plain label texts.

    Call it once the panel's limits, scales, locators and formatters are final.
    The axis labels (``set_xlabel``/``set_ylabel``) are moved clear of the new
    tick labels. An axis whose labels would need an offset text keeps its ticks.
    ``y_labels=False`` draws the y grid lines without labels (a panel right of
    one with the same y range).
    """
    from matplotlib.collections import LineCollection
    from matplotlib.ticker import NullLocator
    from matplotlib.transforms import ScaledTranslation

    fig = ax.figure
    for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
        found = _ticks(axis)
        if found is None:
            continue
        values, labels = found
        axis.set_major_locator(NullLocator())
        axis.set_minor_locator(NullLocator())
        if name == "x":
            transform = ax.get_xaxis_transform()
            segments = [((v, 0.0), (v, 1.0)) for v in values]
            shift = ScaledTranslation(0, -PAD / 72, fig.dpi_scale_trans)
            place = {"ha": "center", "va": "top"}
            axis.labelpad = PAD + 1.2 * fontsize     # one text line below the labels
        else:
            transform = ax.get_yaxis_transform()
            segments = [((0.0, v), (1.0, v)) for v in values]
            shift = ScaledTranslation(-PAD / 72, 0, fig.dpi_scale_trans)
            place = {"ha": "right", "va": "center"}
            widest = max((len(t) for t in labels), default=0)
            axis.labelpad = PAD + 2.0 + DIGIT * fontsize * widest
        ax.grid(False, axis=name)
        if grid and segments:
            ax.add_collection(LineCollection(segments, transform=transform, zorder=0.5, **GRID), autolim=False)
        if name == "y" and not y_labels:
            continue
        shifted = transform + shift   # one transform for all labels of the axis (each sum is a new node)
        for value, label in zip(values, labels):
            if label:
                point = (value, 0.0) if name == "x" else (0.0, value)
                ax.text(*point, label, transform=shifted, fontsize=fontsize, clip_on=False, **place)
