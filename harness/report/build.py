"""Build ``index.html`` with its figures and tables from a sweep's stored results."""
from __future__ import annotations

import json
import shlex
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import HarnessError, UsageError
from harness.plugin.loader import load_registry
from harness.report import claims as claims_mod
from harness.report import html, interactive, plots, profile, tables, verdicts
from harness.report.files import TABLES, slug, write_table
from harness.report.frames import (TABLE_OBJECTIVE, imbalance, labelled_rows, normalise, run_tables,
                                   tuned_for)

FIGURES = "figures"
IMBALANCE_RATIO = 2.0
PROFILE_MEASURES = (("train_seconds", "training seconds"), ("samples_seen", "samples seen"))
FIGURE_FORMATS = ("png", "svg", "pdf")
# the figure jobs from the longest to the shortest (CPU seconds each on the default sweep: 0.3, 0, 0.5, 0.4,
# 0.15, 0.1, 0.1); the first two need nothing but the runs
FIGURE_ORDER = ("convergence", "suboptimality", "fixed_target", "confusion", "lr_sensitivity", "minority_recall",
                "performance_profiles")
LONG_FIGURES = FIGURE_ORDER[:2]
# the per-epoch columns the static loss figures read (pickled to the figure workers)
PLOT_ROW_COLUMNS = ("cell_id", "epoch", "status", "section", "method", "samples_seen", "train_seconds",
                    "train_loss", "test_loss", "reference_train_loss")
FIXED_TARGET_CAPTION = ("Fixed-target view: per section, the share of an optimizer's (final run, target) pairs "
                        "that reached the target within x samples seen or training seconds, for five targets per "
                        "section (50% to 99% of the best loss reduction, rule above); the time to a target is "
                        "interpolated between the epoch records around the crossing. Interactive: a switch adds "
                        "epochs; hover names the run and target.")


def _clear(folder: Path, patterns) -> None:
    """Remove this builder's own outputs from a previous build (nothing else)."""
    if folder.is_dir():
        for pattern in patterns:
            for path in folder.glob(pattern):
                path.unlink(missing_ok=True)


def check_formats(formats) -> tuple:
    """The figure formats asked for, PNG always among them (the page shows it); others are a usage error."""
    asked = [str(f).strip().lower().lstrip(".") for f in formats if str(f).strip()]
    unknown = sorted(set(asked) - set(FIGURE_FORMATS))
    if unknown:
        raise UsageError(f"unknown figure format(s) {', '.join(unknown)}; choose from {', '.join(FIGURE_FORMATS)}")
    return tuple(dict.fromkeys(["png", *asked]))


def _read_manifest(sweep_dir: Path) -> dict:
    path = sweep_dir / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _class_names(manifest: dict, dataset: str) -> list | None:
    info = (manifest.get("datasets") or {}).get(dataset) if isinstance(manifest.get("datasets"), dict) else None
    counts = info.get("class_counts") if isinstance(info, dict) else None
    return list(counts) if isinstance(counts, dict) else None


def _grid_edges(tune_runs: pd.DataFrame, final_runs: pd.DataFrame) -> list[str]:
    """Sections/methods whose chosen learning rate is the smallest or largest one tried.

    The best value may then lie outside the grid: worth widening it.
    """
    notes = []
    chosen = final_runs.groupby(["section", "method"])["lr"].first()
    for (section, method), group in tune_runs.groupby(["section", "method"], sort=True):
        grid = sorted(group["lr"].dropna().unique())
        lr = chosen.get((section, method), np.nan)
        if len(grid) > 1 and np.isfinite(lr) and lr in (grid[0], grid[-1]):
            side = "largest" if lr == grid[-1] else "smallest"
            notes.append(f"{section} · {method}: lr {lr:g} (the {side} tried)")
    return notes


def _tuning_block(manifest: dict, tab_dir: Path, table_objective: str) -> dict | None:
    """The tuning table from the manifest's record (None for a sweep that recorded none)."""
    entries = [e for e in manifest.get("tuning") or () if isinstance(e, dict) and "chosen" in e]
    if not entries:
        return None
    rows = []
    for e in entries:
        ext = e.get("extensions") or {}
        grid = ", ".join(f"{x:g}" for x in e["lr_grid"])
        row = {"group": e["group"], "grid": e["grid_source"] + (" (flagged: no grid declared)"
                                                                 if e.get("default_grid") else ""),
               "rates run": grid + "".join(f" (+{n} {side})" for side, n in ext.items() if n)}
        for objective, chosen in e["chosen"].items():
            picks = list(chosen.values()) if isinstance(chosen, dict) else [chosen]
            counts = pd.Series([f"{x:g}" if x is not None else "none" for x in picks]).value_counts()
            row[f"lr for {objective}"] = ", ".join(f"{k} ({v})" if len(picks) > 1 else k for k, v in counts.items())
        row["at an edge"] = len(e.get("edges") or ())
        rows.append(row)
    frame = pd.DataFrame(rows)
    csv, md = write_table(frame, tab_dir, "tuning")
    protocol = manifest.get("tuning_protocol") or {}
    if protocol.get("per_seed"):
        how = "each seed chose its own rates on its own validation split"
    elif protocol.get("held_out"):
        how = (f"held-out tuning seed(s) {protocol.get('seeds')}, not among the evaluation seeds, chose one rate "
               f"for every seed"
               + ("; the tuning runs of one group trained stacked (their training seconds are the stack's, "
                  "shared out evenly; every final run, whose seconds the page compares, trained alone)"
                  if protocol.get("stacked") else ""))
    else:
        how = (f"seed(s) {protocol.get('seeds')} chose one rate for every seed (those seeds' own pairs were "
               f"selected on)")
    defaults = sorted({e["optimizer"] for e in entries if e.get("default_grid")})
    return {"table": html.table(frame, "Learning-rate tuning per group (per seed: rate (number of seeds))", csv, md),
            "text": (f"Objectives: {', '.join(protocol.get('objectives') or [])}; {how}. A choice at a grid edge "
                     f"extended the grid one log step that way, at most {protocol.get('max_extensions')} per side. "
                     f"Tables use the runs tuned for {table_objective or 'the only objective'}; each claim those "
                     f"tuned for its objective (claims table, 'tuned for')."),
            "defaults": defaults, "edges": sum(len(e.get("edges") or ()) for e in entries)}


def _flagged_edges(manifest: dict, fam_runs: pd.DataFrame) -> list[str]:
    """The family's choices the sweep left at a grid edge after its extension limit."""
    datasets = set(fam_runs["dataset"].astype(str))
    entries = [e for e in manifest.get("tuning") or () if isinstance(e, dict) and e.get("dataset") in datasets]
    out = []
    for e in entries:
        for flag in e.get("edges") or ():
            seed = "" if flag.get("seed") in (None, "all") else f" seed {flag['seed']}"
            out.append(f"{e['group']}: {flag['objective']}{seed} chose lr {flag['lr']:g}, the "
                       f"{'smallest' if flag['side'] == 'low' else 'largest'} rate run")
    return out


def registered_claims() -> list:
    """The claims the installed plugins register (an empty list until a plugin registers one)."""
    return list(getattr(load_registry(), "claims", {}).values())


def _family_figures(final_runs: pd.DataFrame, rows: pd.DataFrame, tune_runs: pd.DataFrame, colors: dict,
                    manifest: dict) -> dict:
    """Per dataset family: its figures (key, drawing function, alt text, caption, arguments), its note,
    its sections and its tuning runs (the page's family block reads the same).

    Listed apart from the page so that the static versions can be drawn
    from the start of the build; the page shows them in this order.
    """
    out = {}
    for family, fam_runs in final_runs.groupby("family", sort=True):
        sections = sorted(fam_runs["section"].unique())
        key = slug(family)
        fam_rows = rows[rows["family"] == family]
        figures = []

        def add(name: str, function: str, alt: str, caption: str, **kwargs) -> None:
            figures.append({"key": name, "function": function, "alt": alt, "caption": caption, "kwargs": kwargs})

        for split in ("train", "test"):
            add(f"{key}-{split}-loss", "convergence", f"{family} {split} loss curves",
                f"{split.capitalize()} loss against epochs, samples seen and training seconds "
                "(log axes where useful). Static image: mean over seeds, band from the lowest to "
                "the highest seed; interactive: one line per seed (hover names the run).",
                rows=fam_rows, sections=sections, colors=colors, metric=f"{split}_loss",
                title=f"{family}: {split} loss")
        add(f"{key}-suboptimality", "suboptimality", f"{family} suboptimality",
            "Training loss minus the optimum of the convex model (from the loss's own solver, "
            "optimum_logits), log scale; gaps at or below 0 are drawn at 1e-12.",
            rows=fam_rows, sections=sections, colors=colors, title=f"{family}: suboptimality (convex model)")
        fam_tune = tune_runs[tune_runs["family"] == family]
        add(f"{key}-learning-rate", "lr_sensitivity", f"{family} learning-rate sensitivity",
            "Tuning phase: final validation loss against the learning rate (mean over tuning "
            "seeds, bar: their range). x: diverged; ring: the learning rate chosen.",
            tune_runs=fam_tune, chosen=fam_runs, sections=sorted(fam_tune["section"].unique()),
            colors=colors, title=f"{family}: learning-rate sensitivity")
        ratio = imbalance(fam_runs)
        info = ""
        if ratio >= IMBALANCE_RATIO:
            info = f"Imbalanced: the test split's largest class is {ratio:.1f}x its smallest."
            add(f"{key}-minority-recall", "minority_recall", f"{family} minority recall",
                "Test recall of the minority class (fewest training samples) per optimizer "
                "and loss: bar = mean over seeds, dots = seeds.",
                final_runs=fam_runs, colors=colors, title=f"{family}: test minority recall by loss")
            add(f"{key}-confusion", "confusion", f"{family} confusion matrices",
                "Rows: true class, columns: predicted; colour = share of the true class, "
                "numbers = counts summed over seeds.",
                final_runs=fam_runs, class_names=_class_names(manifest, str(fam_runs["dataset"].iloc[0])),
                title=f"{family}: test confusion matrices (summed over seeds)")
        out[family] = {"figures": figures, "info": info, "sections": sections, "tune": fam_tune}
    return out


def _figure(path: Path | None, sweep_dir: Path, alt: str, caption: str) -> dict | None:
    if path is None:
        return None
    return {"src": path.relative_to(sweep_dir).as_posix(), "alt": alt, "caption": caption, "interactive": None}


def build_report(sweep_dir, results: pd.DataFrame | None = None, manifest: dict | None = None,
                 claims=None, formats=("png",), processes: int = plots.PROCESSES,
                 timings: dict | None = None) -> Path:
    """Write ``index.html``, ``figures/*.png`` and ``tables/*.csv|md`` into ``sweep_dir``.

    ``results`` is the long-format frame (``harness.results.store.read_results``) and
    ``manifest`` the sweep's manifest; each is read from ``sweep_dir`` when
    None. ``claims`` are the ``ClaimSpec``s to test (default: those the
    installed plugins register). ``formats`` are the figure files to write
    besides the PNG the page shows (``svg``, ``pdf``); ``processes`` draw the
    figures in parallel; ``timings``, when given, receives the seconds of each
    phase (benchmarks/bench_report.py prints them). Returns the path of ``index.html``.
    """
    formats = check_formats(formats)
    timings = {} if timings is None else timings
    clock = [time.perf_counter()]

    def mark(phase: str) -> None:
        now = time.perf_counter()
        timings[phase] = timings.get(phase, 0.0) + now - clock[0]
        clock[0] = now

    sweep_dir = Path(sweep_dir)
    if results is None:
        from harness.results.store import read_results

        results = read_results(sweep_dir)
    if manifest is None:
        manifest = _read_manifest(sweep_dir)
    if results is None or len(results) == 0:
        raise HarnessError(f"no stored results in {sweep_dir} to report on")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    fig_dir, tab_dir = sweep_dir / FIGURES, sweep_dir / TABLES
    _clear(fig_dir, [f"*.{fmt}" for fmt in FIGURE_FORMATS])
    _clear(tab_dir, ["*.csv", "*.md", "*.tex"])
    # the workers fork now and import matplotlib while this process shapes the runs; they inherit the
    # claim specs (plugin callables, which do not pickle) for the statistics job
    pool = plots.FigurePool(processes, inherit={"specs": registered_claims() if claims is None else list(claims)})

    df = normalise(results)
    all_runs, final_df, final_runs = run_tables(df)
    tune_runs = all_runs[all_runs["phase"] == "tune"]
    # tuning: the tables read the runs tuned for val_loss, each claim those tuned for its objective
    all_final = final_runs
    final_runs, table_objective = tuned_for(all_final, manifest, TABLE_OBJECTIVE)
    rows = labelled_rows(final_df, final_runs)
    colors = plots.method_colors(all_runs["method"])
    notes = []
    if not (df["phase"] == "final").any():
        notes.append("This sweep has no final phase: every stored run is treated as final.")

    mark("read")
    # --- the statistics first (ranks, critical-difference diagrams, claims): the longest job, and the only
    # one that needs scipy.stats; then the figures that need only the runs, beside the tables
    pool.submit_call("statistics", "statistics (ranks, critical-difference diagrams, claims)", verdicts.statistics,
                     {"table_runs": final_runs, "all_final": all_final, "final_df": final_df, "manifest": manifest,
                      "tab_dir": tab_dir, "fig_dir": fig_dir, "formats": formats}, inherit=("specs",))
    family_figures = _family_figures(final_runs, rows, tune_runs, colors, manifest)
    jobs = []
    for fam in family_figures.values():
        for f in fam["figures"]:
            static = dict(f["kwargs"])
            if "rows" in static:   # the per-epoch frame is the big one: send the workers only what they draw
                static["rows"] = static["rows"][[c for c in PLOT_ROW_COLUMNS if c in static["rows"].columns]]
            jobs.append((f["key"], f["function"], {**static, "path": fig_dir / f"{f['key']}.png", "formats": formats}))
    # the longest jobs first, so that the two workers finish together: the workers take them in the order
    # submitted, so the loss curves go now, the fixed-target view as soon as the targets are known, and the
    # short figures after it
    for job in jobs:
        if job[1] in LONG_FIGURES:
            pool.submit(*job)
    mark("family figures submitted")
    # --- targets, then the figures that need them
    targets = tables.section_targets(final_runs)
    reach = tables.time_to_target(rows, final_runs, targets)
    pairs = tables.fixed_target_times(rows, final_runs, targets)
    pool.submit("fixed-target", "fixed_target",
                {"pairs": pairs, "colors": colors, "path": fig_dir / "fixed-target.png", "formats": formats,
                 "title": "Fixed-target view: (run, target) pairs reached"})
    for job in sorted((job for job in jobs if job[1] not in LONG_FIGURES), key=lambda j: FIGURE_ORDER.index(j[1])):
        pool.submit(*job)
    ratios = {label: profile.ratios(profile.work_matrix(final_runs, reach, measure))
              for measure, label in PROFILE_MEASURES}
    pool.submit("performance-profile", "performance_profiles",
                {"profiles": ratios, "colors": colors, "path": fig_dir / "performance-profile.png", "formats": formats})
    # --- tables (the tuning table after the jobs above: the workers need nothing of it)
    tuning = _tuning_block(manifest, tab_dir, table_objective)
    numeric, targets = tables.summary(final_runs, rows, targets, reach)
    csv, md = write_table(numeric, tab_dir, "summary",
                          "\n\n".join(f"### {s}\n\n" + tables.to_markdown(tables.formatted(g))
                                      for s, g in numeric.groupby("section", sort=True)))
    write_table(targets, tab_dir, "targets")

    # --- ranking
    ranking_tables = []
    for measure, label in PROFILE_MEASURES:
        rank = profile.ranking(ratios[label])
        if len(rank):
            c, m = write_table(rank, tab_dir, f"ranking-{measure}")
            ranking_tables.append(html.table(rank, f"Ranking by {label} to target", c, m, digits=3))
    ranking = {"tables": ranking_tables,
               "figure": {"alt": "performance profiles",
                          "caption": "Share of dataset/loss sections (y) in which an optimizer reached the target "
                                     "within tau times the best optimizer's work (x); higher and further left is "
                                     "better."}}

    mark("tables and ranking")

    # --- per dataset family: tables, and the figures' jobs (drawn together below, in parallel)
    families = []

    specs = {}   # the interactive versions (plotly), keyed like the PNGs they replace on screen

    for family, fam_runs in final_runs.groupby("family", sort=True):
        fam = family_figures[family]
        ftables = []
        for section in fam["sections"]:
            part = numeric[numeric["section"] == section]
            tgt = targets.set_index("section")["target_loss"].get(section, np.nan)
            title = f"{section} — target train loss {tables.fmt(tgt)}"
            ftables.append(html.table(tables.formatted(part), title, csv, md))
        for f in fam["figures"]:
            live = getattr(interactive, f["function"], None)
            if live is not None:
                spec = live(**{k: v for k, v in f["kwargs"].items() if k in live.__code__.co_varnames})
                if spec is not None:
                    specs[f["key"]] = spec
        families.append({"name": family, "anchor": f"ds-{slug(family)}", "info": fam["info"], "tables": ftables,
                         "edges": _flagged_edges(manifest, fam_runs) if tuning else _grid_edges(fam["tune"], fam_runs),
                         "figures": [{k: f[k] for k in ("key", "alt", "caption")} for f in fam["figures"]]})

    spec = interactive.performance_profiles(ratios, colors, profile.tau_max)
    if spec is not None:
        specs["performance-profile"] = spec
    spec = interactive.fixed_target(pairs, final_runs, colors)
    if spec is not None:
        specs["fixed-target"] = spec
    # what needs no worker's result is written before waiting for them: it is the critical path after that
    plotly_js = interactive.write_assets(sweep_dir, specs)
    live = set(specs) if plotly_js else set()
    # --- runs that did not finish
    bad = tables.problems_table(all_runs)
    problems = None
    if len(bad):
        c, m = write_table(bad, tab_dir, "problems")
        problems = html.table(bad, "", c, m)
    mark("family tables, interactive figures, problems (static figures and statistics in the workers meanwhile)")
    drawn = pool.results()
    mark("waiting for the static figures and the statistics")
    for kind, seconds in pool.cpu_seconds.items():
        timings[f"cpu: figure {kind}"] = seconds
    found = drawn.pop("statistics")

    def shown(key: str, path, alt: str, caption: str) -> dict | None:
        fig = _figure(path, sweep_dir, alt, caption)
        if key in live:
            fig = fig or {"src": None, "alt": alt, "caption": caption}
            fig["interactive"] = key
        return fig

    ranking["figure"] = shown("performance-profile", drawn.get("performance-profile"), ranking["figure"]["alt"],
                              ranking["figure"]["caption"])
    ranking["fixed_target"] = shown("fixed-target", drawn.get("fixed-target"), "fixed-target view",
                                    FIXED_TARGET_CAPTION)
    ranking["critical_difference"] = [_figure(d["path"], sweep_dir, d["alt"], d["caption"]) for d in found["diagrams"]]
    ranking["ranks"], ranking["rank_notes"] = found["ranks"], found["rank_notes"]
    for fam in families:
        fam["figures"] = [f for f in (shown(f["key"], drawn[f["key"]], f["alt"], f["caption"])
                                      for f in fam["figures"]) if f]


    status_counts = all_runs["status"].value_counts()
    name = manifest.get("sweep") or sweep_dir.name
    rules = [tables.TARGET_RULE, profile.PROFILE_RULE, tables.FIXED_TARGET_RULE, tables.RANK_RULE, claims_mod.VERDICT_RULE,
             "Tables: mean ± standard deviation over seeds of the final phase (the learning rate chosen on "
             "the validation split), read at each run's last epoch; diverged runs are counted, not averaged; "
             "'failed' counts errored and skipped runs. Minority class = the class with the fewest training samples.",
             "Curves: mean over seeds with a band from the lowest to the highest seed; values of a diverged run "
             "after it diverged are left out. Training seconds count only training steps, not evaluation.",
             f"Imbalance figures appear for datasets whose test split has a largest/smallest class ratio of at "
             f"least {IMBALANCE_RATIO:g}."]
    context = {
        "title": f"Convergence report: {name}",
        "subtitle": (f"{len(final_runs)} final runs over {final_runs['family'].nunique()} dataset(s), "
                     f"{final_runs['loss'].nunique()} loss(es) and {final_runs['optimizer'].nunique()} optimizer(s); "
                     f"{len(tune_runs)} tuning runs. Built {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC."),
        "counts": [(str(k), int(v)) for k, v in status_counts.items()],
        "notes": notes, "claims": found["claims"], "verdict_table": found["verdict_table"],
        "verdict_rule": claims_mod.VERDICT_RULE, "profile_rule": profile.PROFILE_RULE,
        "rank_rule": tables.RANK_RULE,
        "ranking": ranking, "families": families, "tuning": tuning, "problems": problems, "rules": rules,
        "footer": html.reproducibility(manifest),
        "rebuild": f"python -m harness report {shlex.quote(str(sweep_dir))}",
        "plotly_js": plotly_js, "figure_data": interactive.DATA_JS if plotly_js else None,
    }
    page = sweep_dir / "index.html"
    tmp = sweep_dir / ".index.html.tmp"
    tmp.write_text(html.render(context), encoding="utf-8")
    tmp.replace(page)
    mark("page")
    return page
