"""The report's interactive figures: plotly specs written beside the page, drawn offline.

Each figure is a plain plotly spec (``{"data": [...], "layout": {...}}``) built
here without importing plotly's Python package; ``write_assets`` stores them
all in ``figures/interactive.js`` and copies ``plotly.min.js`` from the
installed plotly package into the report folder once, so the page works with
no network. Traces are plain ``scatter`` (drawn as SVG, never WebGL). Every
text that may come from a plugin or a config (method, loss, dataset names) is
HTML-escaped before it reaches plotly, which renders a subset of HTML in
names, hover labels and titles. The page keeps each figure's PNG inside the
plot's ``div``: the renderer replaces it only when plotly is loaded.
"""
from __future__ import annotations

import hashlib
import html
import importlib.util
import json
import shutil
from math import isfinite
from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.frames import tuning_columns

PLOTLY_JS = "plotly.min.js"
DATA_JS = "figures/interactive.js"
X_CHOICES = (("epoch", "epochs"), ("samples_seen", "samples seen"), ("train_seconds", "training seconds"))
COLUMNS = 3
CONVERGENCE_COLUMNS = ("section", "method", "cell_id", "lr", "seed", "status", "epoch", "samples_seen",
                       "train_seconds")
PANEL_HEIGHT = 300
CONFIG = {"displaylogo": False, "responsive": True}
# draws every <div class="iplot" data-figure=KEY> from window.HARNESS_FIGURES; the PNG inside stays
# when plotly is missing
RENDERER = """
(function () {
  function draw() {
    if (!window.Plotly) { return; }
    document.querySelectorAll("div.iplot").forEach(function (div) {
      var spec = window.HARNESS_FIGURES[div.getAttribute("data-figure")];
      if (!spec) { return; }
      div.replaceChildren();
      Plotly.newPlot(div, spec.data, spec.layout, CONFIG);
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
"""


def esc(text) -> str:
    """Plugin/config text as plotly shows it literally (plotly renders a subset of HTML)."""
    return html.escape(str(text), quote=False)   # plotly decodes &lt; &gt; &amp; but shows &quot; as is


def literal(text: str) -> str:
    """Escaped text made safe inside a hovertemplate, where ``%{...}`` would be substituted."""
    return text.replace("%", "&#37;")


def plotly_js_source() -> Path | None:
    """``plotly.min.js`` of the installed plotly package (found without importing it), or None."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "package_data" / PLOTLY_JS
    return path if path.is_file() else None


def _values(series) -> list:
    """A JSON-safe list: non-finite numbers become null (a gap in the line)."""
    arr = np.asarray(series, dtype=float)
    return [v if isfinite(v) else None for v in arr.tolist()]   # Python floats: math.isfinite, not numpy per value


def _grid(n: int) -> tuple[int, int]:
    cols = min(COLUMNS, max(n, 1))
    return cols, int(np.ceil(n / cols))


def _axes_layout(titles: list, xlabel: str, ylabel: str, xlog: bool, ylog: bool, title: str) -> dict:
    """A layout with one panel per title in a grid (plotly's ``xaxis``, ``xaxis2``, ...), titles above."""
    cols, nrows = _grid(len(titles))
    gap_x, gap_y = 0.07, 0.16 / max(nrows, 1)
    width, height = (1 - gap_x * (cols - 1)) / cols, (1 - gap_y * (nrows - 1)) / nrows
    layout = {"title": {"text": esc(title), "font": {"size": 14}, "x": 0.01, "xanchor": "left",
                        "y": 0.995, "yref": "container", "yanchor": "top"},
              "height": PANEL_HEIGHT * nrows + 170,
              "margin": {"l": 60, "r": 20, "t": 110, "b": 60}, "hovermode": "closest",
              "legend": {"orientation": "h", "y": -0.08 if nrows > 1 else -0.2, "yanchor": "top"},
              "annotations": []}
    for i, text in enumerate(titles):
        r, c = divmod(i, cols)
        n = "" if i == 0 else str(i + 1)
        x0, y1 = c * (width + gap_x), 1 - r * (height + gap_y)
        layout[f"xaxis{n}"] = {"domain": [x0, x0 + width], "anchor": f"y{n}", "type": "log" if xlog else "linear",
                               "title": {"text": esc(xlabel)}, "automargin": True}
        layout[f"yaxis{n}"] = {"domain": [y1 - height, y1], "anchor": f"x{n}", "type": "log" if ylog else "linear",
                               "title": {"text": esc(ylabel)}, "automargin": True, "exponentformat": "power"}
        layout["annotations"].append({"text": esc(text), "x": x0 + width / 2, "y": y1, "xref": "paper",
                                      "yref": "paper", "xanchor": "center", "yanchor": "bottom",
                                      "showarrow": False, "font": {"size": 12}})
    return layout


def _scale_menus(layout: dict, count: int, x_menu: list | None = None) -> None:
    """Buttons: the x-axis measure (when given), and linear/log for the x and y axes of every panel."""
    names = ["" if i == 0 else str(i + 1) for i in range(count)]
    menus = []

    def toggle(axis: str, label: str, x: float) -> dict:
        start = layout[f"{axis}axis"]["type"]
        buttons = [{"label": f"{label} {kind}", "method": "relayout",
                    "args": [{f"{axis}axis{n}.type": kind for n in names}]} for kind in (start, "log" if start != "log" else "linear")]
        return {"type": "buttons", "direction": "right", "buttons": buttons, "showactive": True, "active": 0,
                "x": x, "xanchor": "left", "y": row, "yanchor": "bottom", "pad": {"t": 0, "r": 0}}

    # one row of buttons between the title and the panels, left of plotly's own toolbar
    row = 1.0 + 45 / (layout["height"] - 170)
    if x_menu:
        menus.append({"type": "buttons", "direction": "right", "buttons": x_menu, "showactive": True, "active": 0,
                      "x": 0.0, "xanchor": "left", "y": row, "yanchor": "bottom", "pad": {"t": 0, "r": 0}})
    menus.append(toggle("x", "x", 0.36 if x_menu else 0.0))
    menus.append(toggle("y", "y", 0.52 if x_menu else 0.16))
    layout["updatemenus"] = menus


def _axis_ref(i: int) -> tuple[str, str]:
    return ("x", "y") if i == 0 else (f"x{i + 1}", f"y{i + 1}")


def _run_texts(frame: pd.DataFrame, extra=None) -> list[str]:
    """Per row: the run it belongs to (optimizer, section, learning rate, seed), escaped.

    Built from whole columns: scalar access on pandas' Arrow-backed strings is slow.
    """
    return _texts(frame["method"].tolist(), frame["section"].tolist(), frame["lr"].astype(float).tolist(),
                  frame["seed"].tolist(), extra)


def _texts(methods: list, sections: list, lrs: list, seeds: list, extra=None) -> list[str]:
    """``_run_texts`` from lists of the columns' values."""
    extra = [""] * len(methods) if extra is None else [f"<br>{e}" for e in extra]
    return [f"<b>{esc(m)}</b> · {esc(s)}<br>lr {lr:g} · seed {int(seed)}{e}" for m, s, lr, seed, e in
            zip(methods, sections, lrs, seeds, extra)]


def _sorted_by(values: np.ndarray) -> np.ndarray:
    """The order ``DataFrame.sort_values`` gives a float column (its default quicksort, NaN last)."""
    finite = np.flatnonzero(~np.isnan(values))
    return np.r_[finite[np.argsort(values[finite], kind="quicksort")], np.flatnonzero(np.isnan(values))]


def convergence(rows: pd.DataFrame, sections: list, colors: dict, metric: str, title: str,
                ylabel: str | None = None) -> dict | None:
    """One line per run (seed), one panel per section; the x axis switches between epochs, samples, seconds.

    Hover names the run (optimizer, section, learning rate, seed) and the value
    at that point; clicking a legend entry hides every seed of that optimizer.
    """
    rows = rows[[c for c in dict.fromkeys(CONVERGENCE_COLUMNS + (metric,)) if c in rows.columns]]   # less to copy
    rows = rows[(rows["status"] != "diverged") & rows[metric].notna()]
    sections = [s for s in sections if (rows["section"] == s).any()]
    if not sections:
        return None
    ylabel = ylabel or metric.replace("_", " ")
    data, shown = [], set()
    positive = bool((rows[metric] > 0).all())
    firsts = rows.drop_duplicates("cell_id")
    text_of = dict(zip(firsts["cell_id"].tolist(), _run_texts(firsts)))
    runs_x = []   # per trace: its x values under each X_CHOICES column, for the x-axis menu below
    for i, section in enumerate(sections):
        xa, ya = _axis_ref(i)
        srows = rows[rows["section"] == section].sort_values(["method", "cell_id", "epoch"], kind="stable")
        # whole columns converted once, then sliced per run (a pandas group per run cost most of the figure)
        methods, cells = srows["method"].tolist(), srows["cell_id"].tolist()
        values = {c: _values(srows[c]) for c in dict.fromkeys([metric, *(c for c, _ in X_CHOICES)])}
        custom = np.column_stack([srows["epoch"].to_numpy(float), srows["samples_seen"].fillna(0).to_numpy(float),
                                  srows["train_seconds"].fillna(0).to_numpy(float)]).tolist()
        starts = [k for k in range(len(cells)) if k == 0 or (methods[k], cells[k]) != (methods[k - 1], cells[k - 1])]
        for a, b in zip(starts, starts[1:] + [len(cells)]):
            method, cell = methods[a], cells[a]
            data.append({
                "type": "scatter", "mode": "lines", "xaxis": xa, "yaxis": ya,
                "name": esc(method), "legendgroup": esc(method), "showlegend": method not in shown,
                "line": {"color": colors.get(method, "#444"), "width": 1.4}, "opacity": 0.85,
                "x": values["epoch"][a:b], "y": values[metric][a:b],
                "customdata": custom[a:b],
                "hovertemplate": (literal(text_of[cell]) + "<br>epoch %{customdata[0]} · %{customdata[1]:,.0f} samples · "
                                  "%{customdata[2]:.3g} s<br>" + esc(ylabel) + " %{y:.4g}<extra></extra>"),
            })
            runs_x.append({column: values[column][a:b] for column, _ in X_CHOICES})
            shown.add(method)
    layout = _axes_layout(sections, X_CHOICES[0][1], ylabel, False, positive, title)
    menu = []
    for column, label in X_CHOICES:
        xs = [run[column] for run in runs_x]
        titles = {f"xaxis{'' if i == 0 else i + 1}.title.text": label for i in range(len(sections))}
        autorange = {f"xaxis{'' if i == 0 else i + 1}.autorange": True for i in range(len(sections))}
        menu.append({"label": label, "method": "update", "args": [{"x": xs}, {**titles, **autorange}]})
    _scale_menus(layout, len(sections), menu)
    return {"data": data, "layout": layout}


def lr_sensitivity(tune_runs: pd.DataFrame, chosen: pd.DataFrame, sections: list, colors: dict,
                   title: str) -> dict | None:
    """Final validation loss of every tuning run against its learning rate; a line through the means.

    A ring marks the rate the sweep chose; a cross at the top a diverged run.
    """
    sections = [s for s in sections if (tune_runs["section"] == s).any()]
    if not sections:
        return None
    # the means stay pandas' groupby mean, over the rows in the same order as a per-method frame had them
    section, method, lr, val, seed, drawn, failed, c_section, c_method, c_lr = tuning_columns(tune_runs, chosen)
    data, shown = [], set()
    positive = bool(drawn.any()) and bool((val[drawn] > 0).all())
    for i, name in enumerate(sections):
        xa, ya = _axis_ref(i)
        here = section == name
        finite = val[here & drawn]
        top = float(finite.max()) * 1.5 if len(finite) else 10.0
        for m in sorted(set(method[here].tolist())):
            c = colors.get(m, "#444")
            mine = here & (method == m)
            ok = np.flatnonzero(mine & drawn)
            ok = ok[_sorted_by(lr[ok])]
            bad = np.flatnonzero(mine & failed)
            common = {"xaxis": xa, "yaxis": ya, "legendgroup": esc(m), "name": esc(m)}
            mean = pd.Series(val[ok]).groupby(lr[ok]).mean().sort_index()
            if len(mean):
                data.append({**common, "type": "scatter", "mode": "lines", "showlegend": m not in shown,
                             "x": _values(mean.index), "y": _values(mean), "line": {"color": c, "width": 1.4},
                             "hoverinfo": "skip"})
                shown.add(m)
            points = np.r_[ok, bad]
            if len(points):
                what = ["validation loss"] * len(ok) + ["diverged"] * len(bad)
                data.append({**common, "type": "scatter", "mode": "markers", "showlegend": False,
                             "x": _values(lr[points]), "y": _values(np.r_[val[ok], np.full(len(bad), top)]),
                             "marker": {"color": c, "size": 6,
                                        "symbol": ["x" if w == "diverged" else "circle" for w in what]},
                             "text": _texts(method[points].tolist(), section[points].tolist(),
                                            lr[points].tolist(), seed[points].tolist(), what),
                             "hovertemplate": "%{text}<br>final validation loss %{y:.4g}<extra></extra>"})
            pick = c_lr[(c_section == name) & (c_method == m)]
            pick = [x for x in pd.unique(pick[~np.isnan(pick)]) if x in mean.index]
            if pick:
                data.append({**common, "type": "scatter", "mode": "markers", "showlegend": False,
                             "x": _values(pick), "y": _values(mean.loc[pick]), "hoverinfo": "skip",
                             "marker": {"size": 14, "color": "rgba(0,0,0,0)", "line": {"color": c, "width": 2}}})
    layout = _axes_layout(sections, "learning rate", "final validation loss", True, positive, title)
    _scale_menus(layout, len(sections))
    return {"data": data, "layout": layout}


def performance_profiles(profiles: dict, colors: dict, tau_max_of) -> dict | None:
    """One panel per work measure: the share of sections within tau of the best, per optimizer (steps)."""
    profiles = {k: v for k, v in profiles.items() if not v.empty}
    if not profiles:
        return None
    from harness.report.profile import profile_curve

    data, shown = [], set()
    titles = [f"{label} to target ({len(ratio)} sections)" for label, ratio in profiles.items()]
    for i, (label, ratio) in enumerate(profiles.items()):
        xa, ya = _axis_ref(i)
        for method in ratio.columns:
            taus, rho = profile_curve(ratio[method].to_numpy(), tau_max_of(ratio))
            data.append({"type": "scatter", "mode": "lines", "line": {"shape": "hv", "color": colors.get(method, "#444"),
                                                                      "width": 2},
                         "xaxis": xa, "yaxis": ya, "name": esc(method), "legendgroup": esc(method),
                         "showlegend": method not in shown, "x": _values(taus), "y": _values(rho),
                         "hovertemplate": literal(f"<b>{esc(method)}</b> · {esc(label)}") + "<br>tau %{x:.3g}: share %{y:.2f}<extra></extra>"})
            shown.add(method)
    layout = _axes_layout(titles, "tau (ratio to the best)", "share of dataset/loss sections", True, False,
                          "Performance profiles")
    _scale_menus(layout, len(titles))
    return {"data": data, "layout": layout}


def fixed_target(pairs: pd.DataFrame, final_runs: pd.DataFrame, colors: dict) -> dict | None:
    """Fixed-target view (IOHanalyzer's ECDF of time to target), one panel per section: the share of an
    optimizer's (run, target) pairs reached within x samples, seconds or epochs; each step is one pair.

    ``pairs`` is ``tables.fixed_target_times``: the static figure reads the same interpolated crossings.
    """
    from harness.report.tables import ecdf

    if pairs.empty or not np.isfinite(pairs["epoch"]).any():
        return None
    sections = sorted(pairs["section"].unique())
    info = final_runs[["cell_id", "method", "section", "lr", "seed"]].drop_duplicates("cell_id")
    run_text = dict(zip(info["cell_id"].tolist(), _run_texts(info)))   # each run's hover text, built once
    choices = (("samples_seen", "samples seen"), ("train_seconds", "training seconds"), ("epoch", "epochs"))
    traces, per_column, shown = [], {column: [] for column, _ in choices}, set()
    for i, section in enumerate(sections):
        xa, ya = _axis_ref(i)
        for method, m in pairs[pairs["section"] == section].groupby("method", sort=True):
            for column, _label in choices:
                hit = m[np.isfinite(m[column].to_numpy(dtype=float))]
                hit = hit.iloc[np.argsort(hit[column].to_numpy(dtype=float), kind="stable")]
                x, share = ecdf(hit[column], len(m))
                texts = [f"{run_text[cid]}<br>target {s:.0%} of the best reduction (loss {t:.4g})"
                         for cid, s, t in zip(hit["cell_id"].tolist(), hit["share"], hit["target_loss"])]
                per_column[column].append((x, share, texts))
            x, share, texts = per_column[choices[0][0]][-1]
            traces.append({"type": "scatter", "mode": "lines", "line": {"shape": "hv", "width": 2,
                                                                        "color": colors.get(method, "#444")},
                           "xaxis": xa, "yaxis": ya, "name": esc(method), "legendgroup": esc(method),
                           "showlegend": method not in shown, "x": _values(x), "y": _values(share), "text": texts,
                           "hovertemplate": "%{text}<br>reached at %{x:.4g}: %{y:.0%} of the pairs<extra></extra>"})
            shown.add(method)
    layout = _axes_layout(sections, choices[0][1], "share of (run, target) pairs", True, False,
                          "Fixed-target view: (run, target) pairs reached")
    names = ["" if i == 0 else str(i + 1) for i in range(len(sections))]
    menu = [{"label": label, "method": "update",
             "args": [{"x": [_values(x) for x, _s, _t in per_column[column]],
                       "y": [_values(s) for _x, s, _t in per_column[column]],
                       "text": [t for _x, _s, t in per_column[column]]},
                      {**{f"xaxis{n}.title.text": label for n in names},
                       **{f"xaxis{n}.autorange": True for n in names}}]}
             for column, label in choices]
    _scale_menus(layout, len(sections), menu)
    return {"data": traces, "layout": layout}


def write_assets(sweep_dir: Path, specs: dict) -> str | None:
    """Write ``figures/interactive.js`` and copy ``plotly.min.js`` once; return the plotly path used by the page.

    None when plotly is not installed: the page then shows the PNGs only.
    """
    source = plotly_js_source()
    data_path = sweep_dir / DATA_JS
    if source is None or not specs:
        data_path.unlink(missing_ok=True)
        return None
    target = sweep_dir / PLOTLY_JS
    if not target.is_file() or _digest(target) != _digest(source):
        tmp = target.with_suffix(".tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(target)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(specs, allow_nan=False, separators=(",", ":"))
    data_path.write_text(f"window.HARNESS_FIGURES = {payload};\nvar CONFIG = {json.dumps(CONFIG)};\n{RENDERER}",
                         encoding="utf-8")
    return PLOTLY_JS


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()
