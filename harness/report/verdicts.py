"""The page's statistics: average ranks with their critical-difference diagrams, and the claims' verdicts.

They are the only parts of the report that need ``scipy.stats`` (and
scikit-posthocs, which imports it): importing it costs nearly a second, and
the claims take as long again. So ``statistics`` runs them as one job in a
figure worker (``plots.FigurePool.submit_call``), beside the tables,
interactive figures and page the main process builds, which then never
imports scipy.stats. The job writes its own table files with
``files.write_table`` and returns what the page shows of them.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.report import claims as claims_mod
from harness.report import html, plots, stats, tables
from harness.report.files import slug, write_table

VERDICT_CSS = {stats.HOLDS: "holds", stats.FAILS: "fails", stats.INCONCLUSIVE: "inconclusive"}


def statistics(specs, table_runs: pd.DataFrame, all_final: pd.DataFrame, final_df: pd.DataFrame,
               manifest: dict, tab_dir: Path, fig_dir: Path, formats) -> dict:
    """Rank tables and critical-difference diagrams of ``table_runs``, then the claims ``specs``.

    ``all_final`` are the final runs of every tuning objective and ``final_df``
    their per-epoch rows (``claims.evaluate_sweep``). Returns the page's parts:
    ``ranks`` and ``rank_notes`` (tables and notes), ``diagrams`` (per drawn
    diagram: its figure entry's alt text, caption and PNG path), ``verdict_table``
    and ``claims`` (each claim's block).
    """
    rank_tables, rank_notes, diagrams = _rank_tables(table_runs, tab_dir)
    drawn = []
    for d in diagrams:
        path = plots.critical_difference(d["ranks"], d["matrix"], d["alpha"], d["cd"], d["heading"],
                                         fig_dir / f"critical-difference-{d['metric']}.png", formats)
        if path is not None:
            drawn.append({"path": path, "alt": f"critical-difference diagram by {d['label']}",
                          "caption": _cd_caption(d)})
    found = claims_mod.evaluate_sweep(specs, all_final, final_df, manifest)
    verdicts = claims_mod.verdict_table(found)
    claims_csv, claims_md = write_table(verdicts, tab_dir, "claims")
    verdict_table = html.table(verdicts, "Verdicts at each claim's headline budget", claims_csv, claims_md,
                               digits=3) if len(verdicts) else None
    return {"ranks": rank_tables, "rank_notes": rank_notes, "diagrams": drawn, "verdict_table": verdict_table,
            "claims": _claim_context(found, tab_dir)}


def _cd_caption(diagram: dict) -> str:
    return (f"Critical-difference diagram by {diagram['label']} (Demsar 2006, drawn with scikit-posthocs): each "
            f"method at its average rank over the sections (1 = best; the numbers are the table's). Friedman test "
            f"over the sections, then Nemenyi's pairwise test at alpha {diagram['alpha']:g}: a horizontal bar joins "
            f"methods whose ranks do not differ significantly (their difference is below the critical difference).")


def _claim_context(found, tab_dir: Path) -> list[dict]:
    out = []
    for c in found:
        spec, head = c.spec, c.headline
        per_budget = claims_mod.budget_rows(c)
        per_section = claims_mod.section_rows(c)
        csv, md = write_table(per_budget, tab_dir, f"claim-{slug(spec.name)}-budgets")
        section_table = None
        if len(per_section):
            scsv, smd = write_table(per_section, tab_dir, f"claim-{slug(spec.name)}-sections")
            section_table = html.table(per_section, f"Per section at the headline budget ({head.budget.label})",
                                       scsv, smd, digits=3)
        out.append({"key": spec.name, "title": spec.title, "lecture": spec.lecture,
                    "measure": claims_mod.describe(spec) + (f" Runs tuned for {c.tuned_for}." if c.tuned_for else ""),
                    "rule": spec.rule, "verdict": head.verdict,
                    "css": VERDICT_CSS[head.verdict], "summary": head.reason, "budget": head.budget.label,
                    "budgets": html.table(per_budget, "Verdict by budget", csv, md, digits=3),
                    "sections": section_table})
    return out


def _rank_tables(final_runs: pd.DataFrame, tab_dir: Path) -> tuple[list, list, list]:
    """Average ranks over the sections with Friedman's test and the Nemenyi critical difference, per metric.

    Also returns, per metric ranked, what its critical-difference diagram draws (the same ranks and heading).
    """
    out, notes, diagrams = [], [], []
    for metric, label in tables.RANK_METRICS:
        matrix = tables.rank_matrix(final_runs, metric)
        if matrix.shape[0] < 2 or matrix.shape[1] < 2:
            notes.append(f"By {label}: fewer than two sections with every method; no ranks.")
            continue
        ranks = pd.DataFrame({"method": matrix.columns, "average rank": stats.average_ranks(matrix.to_numpy())})
        ranks = ranks.sort_values("average rank", kind="stable").reset_index(drop=True)
        chi2, p = stats.friedman(matrix.to_numpy())
        cd = stats.nemenyi_cd(matrix.shape[1], matrix.shape[0])
        c, m = write_table(ranks, tab_dir, f"ranks-{metric}")
        title = (f"Average rank by {label} over {matrix.shape[0]} sections: Friedman chi2 {tables.fmt(chi2, 3)}, "
                 f"p {tables.fmt(p, 3)}; Nemenyi critical difference {tables.fmt(cd, 3)}")
        out.append(html.table(ranks, title, c, m, digits=3))
        if matrix.shape[1] >= 3:   # the Friedman test and the diagram need three methods or more
            diagrams.append({"metric": metric, "label": label, "ranks": ranks.set_index("method")["average rank"],
                             "matrix": matrix, "alpha": stats.ALPHA, "cd": cd,
                             "heading": (f"By {label}, {matrix.shape[0]} sections: Friedman p {tables.fmt(p, 3)}, "
                                         f"Nemenyi CD {tables.fmt(cd, 3)} at alpha {stats.ALPHA:g}")})
    return out, notes, diagrams
