"""Test the claims plugins register (``ClaimSpec``) against a sweep's stored runs.

The report names no optimizer, loss or dataset: it evaluates whatever claims
it is given. For each claim:

1. **Pairs** join final-phase runs that differ in the claim's factor alone:
   every other stored setting (dataset and its params, loss, model, dtype,
   schedule, decay, step_every, epochs, tol, patience, time_budget,
   lecture_stop, the other plugin params, the seed) is equal. Each side runs
   at its own tuned learning rate, so ``lr`` is not part of the key. When the
   factor is a plugin (``optimizer``), params both plugins have must be equal;
   params only one has (a batch size) name a variant and form their own stratum.
   When the factor is ``schedule``, its parameters (``decay``, ``step_every``)
   belong to each side's schedule: they leave the key and name a variant too.
2. **Strata** (the sections of the claim): the pair key without the seed.
3. **Budgets**: each pair is read at matched budgets on an axis (epochs,
   updates, samples seen, training seconds), interpolating between records.
4. **Effects** (positive = supports the claim) go to :mod:`harness.report.stats`.

Each claim is judged on the final runs tuned for its ``tuned_for`` objective
(the sweep records which final runs each objective chose; ``evaluate`` takes
that choice as ``runs_for``), and the page says which objective that was.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.plugin.claims import Budget, ClaimSpec
from harness.report import stats
from typing import Callable

from harness.report.frames import OK_STATUSES, SECTION_COLUMNS, imbalance, labelled_rows, params_text, tuned_for

PARAM_COLUMNS = ("optimizer_params", "loss_params", "dataset_params")
PLUGIN_PARAMS = {"optimizer": "optimizer_params", "loss": "loss_params", "dataset": "dataset_params"}
SETTING_PARAMS = {"schedule": ("decay", "step_every")}   # a setting's own parameters: part of each side's value
SECTION_SETTINGS = ("dataset", "loss", "optimizer", "schedule")   # what applies() sees (None when the factor)
KEY_COLUMNS = ("dataset", "dataset_params", "hidden", "activation", "dtype", "loss", "loss_params",
               "optimizer", "optimizer_params", "schedule", "decay", "step_every", "epochs", "tol",
               "lecture_stop", "patience", "time_budget", "seed")
SECTION_LABELLED = set(SECTION_COLUMNS)     # already named by the run's family/section label
TINY = 1e-300                               # log of a non-positive metric value: treated as this
# derived per-epoch metric: the training loss's excess over the stored convex optimum (NaN without one),
# floored where the optimum's own accuracy (the built-in losses' solver: tol 1e-10) can no longer tell them apart
EXCESS_METRIC, EXCESS_FLOOR = "train_loss_excess", 1e-10
VERDICT_RULE = (
    f"Each claim compares paired runs that differ only in what the claim is about (every other setting and "
    f"the seed are equal; each side at its own tuned learning rate). Per pair, the effect is the difference "
    f"of the measure (log values for losses), signed so that a positive effect supports the claim; "
    f"|effect| at or below the claim's tie tolerance is a tie (counted, left out of the test). Test: exact "
    f"two-sided sign test on the untied pairs, alpha {stats.ALPHA:g}, Holm's correction across the claims "
    f"of this page (per section: across the claims tested on that section). \"holds\" / \"does not hold\" "
    f"when the Holm-adjusted p is at most alpha; otherwise \"inconclusive\" with its reason: too few pairs "
    f"(the number needed is stated), no significant majority, or the sections disagree (significant in "
    f"opposite directions, or a section goes against the pooled result significantly or in every one of at "
    f"least {stats.MIN_AGAINST} untied pairs). Effect: median over pairs (an observed value), with a "
    f"{stats.LEVEL:.0%} paired bootstrap interval ({stats.RESAMPLES} resamples of the pairs within each "
    f"section, fixed seed {stats.BOOTSTRAP_SEED}). A diverged run counts as the worst value (infinite loss); "
    f"errored or skipped runs form no pair. Each claim is read at several budgets; the first is its "
    f"headline; the others show how the verdict moves with the budget and are not corrected for "
    f"looking at several budgets."
)


@dataclass
class BudgetResult:
    """One claim at one budget: the evidence, the adjusted p, the verdicts pooled and per section."""

    budget: Budget
    evidence: stats.Evidence | None = None
    unobserved: int = 0
    p_adj: float = float("nan")
    verdict: str = stats.INCONCLUSIVE
    reason: str = ""
    sections: dict = field(default_factory=dict)     # label -> (verdict, reason, adjusted p)


@dataclass
class ClaimResult:
    """A claim with its pairs and a result per budget (the first is the headline)."""

    spec: ClaimSpec
    pairs: pd.DataFrame
    note: str = ""
    budgets: list = field(default_factory=list)
    tuned_for: str = ""     # the objective its runs' learning rates were chosen for ("" when not recorded)

    @property
    def headline(self) -> BudgetResult:
        return self.budgets[0]


# --------------------------------------------------------------------------- pairing
def _factor(spec: ClaimSpec) -> tuple[str, str | None]:
    """(column, params key): ``optimizer`` -> ("optimizer", None); ``optimizer_params.b`` -> (col, "b")."""
    head, _, key = spec.factor.partition(".")
    if head in PARAM_COLUMNS and key:
        return head, key
    return spec.factor, None


def _load(text) -> dict:
    try:
        value = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _same(stored, wanted) -> bool:
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
        try:
            return float(stored) == float(wanted)
        except (TypeError, ValueError):
            return False
    return str(stored) == str(wanted)


def _side(runs: pd.DataFrame, column: str, key: str | None, value) -> pd.DataFrame:
    if key is None:
        mask = runs[column].map(lambda v: _same(v, value))
    else:
        mask = runs[column].map(lambda p: key in _load(p) and _same(_load(p)[key], value))
    side = runs[mask.astype(bool)].copy()
    if key is not None:    # the compared param leaves the key; the others stay in it
        side[column] = side[column].map(lambda p: json.dumps({k: v for k, v in _load(p).items() if k != key},
                                                             sort_keys=True))
    return side


def _key_text(frame: pd.DataFrame, columns) -> pd.Series:
    """Each row's values of ``columns`` as text, joined by a unit separator (whole columns, not row by row)."""
    columns = list(columns)
    if not columns or frame.empty:
        return pd.Series([""] * len(frame), index=frame.index, dtype=object)
    parts = [frame[c].astype(str).to_numpy(dtype=object) for c in columns]
    text = parts[0]
    for part in parts[1:]:
        text = text + "\x1f" + part
    return pd.Series(text, index=frame.index, dtype=object)


def pair_table(runs: pd.DataFrame, spec: ClaimSpec) -> tuple[pd.DataFrame, str]:
    """One row per pair (or triple) of runs, with ``cell_<i>``, ``stratum`` and the side-0 run's labels.

    The second value explains an empty table. A key with more than one run on
    a side (e.g. a final phase that grids the learning rate) is ambiguous and
    forms no pair.
    """
    column, key = _factor(spec)
    if column not in runs.columns:
        return pd.DataFrame(), f"the results have no column {column!r}"
    plugin_params = PLUGIN_PARAMS.get(column) if key is None else None
    own = [c for c in (SETTING_PARAMS.get(column, ()) if key is None else ()) if c in runs.columns]
    keys = [c for c in KEY_COLUMNS if c in runs.columns and c != column and c != plugin_params and c not in own]
    variant = ([plugin_params] if plugin_params else []) + own
    sides, ambiguous = [], 0
    for i, value in enumerate(spec.sides):
        side = _side(runs, column, key, value)
        if side.empty:
            return pd.DataFrame(), f"no runs with {spec.factor} = {value} in this sweep"
        side["_key"] = _key_text(side, keys)
        # a side's own params (a batch size, a schedule's decay) name a variant, not a duplicate
        dup = (side["_key"] + _key_text(side, variant) if variant else side["_key"]).duplicated(keep=False)
        ambiguous += int(dup.sum())
        side = side[~dup]
        keep = {"cell_id": f"cell_{i}", "status": f"status_{i}"}
        if plugin_params:
            keep[plugin_params] = f"params_{i}"
        keep.update({c: f"{c}_{i}" for c in own})
        if i == 0:
            keep.update({c: c for c in keys + ["family", "section"] if c in side.columns})
        sides.append(side[["_key", *keep]].rename(columns=keep))
    table = sides[0]
    for side in sides[1:]:
        table = table.merge(side, on="_key")
    if plugin_params:      # params both plugins define must agree
        params = zip(*(table[f"params_{i}"].tolist() for i in range(len(sides))))   # columns, not iterrows
        agree = [all(_shared_equal(p[i], p[j]) for i in range(len(p)) for j in range(i + 1, len(p))) for p in params]
        table = table[np.asarray(agree, dtype=bool)] if len(table) else table
    if table.empty:
        note = f"no runs of {spec.factor} = {' / '.join(map(str, spec.sides))} that differ in it alone"
        return pd.DataFrame(), note + (f" ({ambiguous} runs share a key with another run)" if ambiguous else "")
    table = table.drop(columns="_key").reset_index(drop=True)
    table["stratum"] = _strata(table, keys, column, plugin_params, spec.sides, own)
    return table, ""


def _shared_equal(p, q) -> bool:
    a, b = _load(p), _load(q)
    return all(a[k] == b[k] for k in set(a) & set(b))


def _strata(table: pd.DataFrame, keys, column: str, plugin_params: str | None, sides: tuple, own=()) -> list[str]:
    """A readable label per pair: its section, plus every key setting that varies across this claim's pairs."""
    base = table["family"] if column == "loss" else table["section"]
    parts = [base.astype(str)]
    for col in keys:
        if col == "seed" or col in SECTION_LABELLED or table[col].astype(str).nunique() < 2:
            continue
        shown = table[col].map(params_text) if col in PARAM_COLUMNS else table[col].astype(str)
        parts.append(f"{col}=" + shown if col not in PARAM_COLUMNS else shown)
    if plugin_params:
        for i in range(len(sides)):
            col = f"params_{i}"
            if table[col].nunique() > 1:
                parts.append(table[col].map(params_text))
    for i, value in enumerate(sides):     # a setting's own params, e.g. "inverse decay=0.01"
        for name in own:
            col = f"{name}_{i}"
            if table[col].astype(str).nunique() > 1:
                parts.append(f"{value} {name}=" + table[col].astype(str))
    return [" · ".join(p for p in row if p) for row in zip(*[list(p) for p in parts])]


# --------------------------------------------------------------------------- curves
def with_excess(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with the derived ``train_loss_excess`` = max(train_loss - reference_train_loss, EXCESS_FLOOR)."""
    if "train_loss" not in rows.columns or "reference_train_loss" not in rows.columns or EXCESS_METRIC in rows:
        return rows
    loss = pd.to_numeric(rows["train_loss"], errors="coerce").to_numpy(float)
    ref = pd.to_numeric(rows["reference_train_loss"], errors="coerce").to_numpy(float)
    with np.errstate(invalid="ignore"):
        excess = np.where(np.isfinite(ref), np.maximum(loss - ref, EXCESS_FLOOR), np.nan)
    return rows.assign(**{EXCESS_METRIC: excess})


class Curves:
    """Per-run curves (axis values and metrics by epoch), looked up by cell id."""

    def __init__(self, runs: pd.DataFrame, rows: pd.DataFrame):
        rows = with_excess(rows)
        self.status = runs.set_index("cell_id")["status"].astype(str).to_dict()
        # one sort by (cell, epoch) and a slice per run, instead of a pandas frame per run
        order = np.lexsort((rows["epoch"].to_numpy(), rows["cell_id"].to_numpy(dtype=object)))
        self._rows = rows.iloc[order].reset_index(drop=True)
        ids = self._rows["cell_id"].to_numpy(dtype=object)
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], dtype=int)
        stops = np.r_[starts[1:], len(ids)]
        self.frames = {ids[a]: slice(int(a), int(b)) for a, b in zip(starts, stops)}
        self._columns: dict = {}
        self._cache: dict = {}

    def _column(self, name: str) -> np.ndarray | None:
        """A column of the sorted rows as floats (None when the rows lack it), converted once."""
        if name not in self._columns:
            self._columns[name] = (pd.to_numeric(self._rows[name], errors="coerce").to_numpy(float)
                                   if name in self._rows.columns else None)
        return self._columns[name]

    def usable(self, cid) -> bool:
        return cid in self.frames and (self.status.get(cid) in OK_STATUSES or self.diverged(cid))

    def diverged(self, cid) -> bool:
        return self.status.get(cid) == "diverged"

    def points(self, cid, axis: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """The finite (axis, metric) points of a run, in epoch order."""
        key = (cid, axis, metric)
        if key not in self._cache:
            span = self.frames[cid]
            xs, ys = self._column(axis), self._column(metric)
            if xs is None or ys is None:
                x = y = np.array([])
            else:
                x, y = xs[span], ys[span]
                ok = np.isfinite(x) & np.isfinite(y)
                x, y = x[ok], y[ok]
            self._cache[key] = (x, y)
        return self._cache[key]

    def records(self, cid, metric: str) -> bool:
        """Whether the run has any finite value of ``metric`` (a column it lacks, or all NaN: none)."""
        return self.points(cid, "epoch", metric)[1].size > 0

    def last(self, cid, axis: str, metric: str) -> float:
        x, _ = self.points(cid, axis, metric)
        return float(x[-1]) if x.size else np.nan

    def read(self, cid, spec: ClaimSpec, axis: str, at: float, worst: float) -> float | None:
        """The claim's measure of a run at ``at`` on ``axis``; ``worst`` past a divergence; None if unobserved."""
        x, y = self.points(cid, axis, spec.metric)
        if x.size == 0 or at > x[-1] * (1 + 1e-9):
            return worst if self.diverged(cid) else None
        later = x[x > 0]
        if at < (later[0] if later.size else 0.0) * (1 - 1e-9):
            return None            # before the first record after the start: nothing measured there
        if spec.statistic == "value":
            return float(np.interp(at, x, y))
        if spec.statistic == "fluctuation":
            return fluctuation(x, y, at, spec.window, spec.scale == "log")
        inside = x < at
        xs = np.append(x[inside], at)
        ys = np.append(y[inside], np.interp(at, x, y))
        if xs.size < 2 or at <= 0:
            return float(ys[-1])
        return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2) / (xs[-1] - xs[0]))


def fluctuation(x: np.ndarray, y: np.ndarray, at: float, window: float, log: bool) -> float | None:
    """How much a curve still moves at the end of [0, at]: the mean |change| between consecutive records
    whose axis value lies in [(1 - window) at, at], of log values when ``log``; None with fewer than two."""
    inside = (x >= (1 - window) * at * (1 - 1e-9)) & (x <= at * (1 + 1e-9))
    ys = y[inside]
    if ys.size < 2:
        return None
    if log:
        ys = np.log(np.where(ys > 0, ys, TINY))
    return float(np.mean(np.abs(np.diff(ys))))


# --------------------------------------------------------------------------- effects
def _worst(spec: ClaimSpec) -> float:
    return -np.inf if spec.direction == "higher" else np.inf


def _transform(values: np.ndarray, spec: ClaimSpec) -> np.ndarray:
    # a fluctuation is already on the claim's scale (changes of log values): compared as a difference
    if spec.scale == "log" and spec.statistic != "fluctuation":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(np.where(values > 0, values, TINY))
    return values


def effect(values, spec: ClaimSpec) -> float:
    """The signed effect of one pair (positive supports the claim); both sides at the worst value is a tie (0)."""
    t = _transform(np.asarray(values, dtype=float), spec)
    with np.errstate(invalid="ignore"):
        if spec.direction == "lower":
            e = t[1] - t[0]
        elif spec.direction == "higher":
            e = t[0] - t[1]
        else:
            lo, hi = min(t[1], t[2]), max(t[1], t[2])
            e = min(t[0] - lo, hi - t[0])
    return 0.0 if np.isnan(e) else float(e)


def budget_point(curves: Curves, cells, spec: ClaimSpec, budget: Budget) -> float:
    """The matched budget of one pair: the absolute value, or a fraction of the smallest last record of its
    runs that did not diverge (NaN when all diverged)."""
    if budget.value is not None:
        return float(budget.value)
    ends = [curves.last(c, budget.axis, spec.metric) for c in cells if not curves.diverged(c)]
    ends = [e for e in ends if np.isfinite(e)]
    return budget.fraction * min(ends) if ends else np.nan


def effects_at(curves: Curves, table: pd.DataFrame, spec: ClaimSpec, budget: Budget) -> tuple[np.ndarray, list, int]:
    """Effects and strata of the pairs observable at ``budget``, and how many were not observable."""
    cols = [c for c in table.columns if c.startswith("cell_")]
    worst = _worst(spec)
    out, strata, unobserved = [], [], 0
    for cells, stratum in zip(table[cols].itertuples(index=False, name=None), table["stratum"]):
        at = budget_point(curves, cells, spec, budget)
        if np.isnan(at) and not all(curves.diverged(c) for c in cells):
            unobserved += 1          # a run that did not diverge has no record of the metric on this axis
            continue
        if np.isnan(at):
            values = [worst] * len(cells)
        else:
            values = [curves.read(c, spec, budget.axis, at, worst) for c in cells]
        if any(v is None for v in values):
            unobserved += 1
            continue
        out.append(effect(values, spec))
        strata.append(stratum)
    return np.asarray(out, dtype=float), strata, unobserved


# --------------------------------------------------------------------------- applicability
def section_info(row, factor: str, ratios: dict) -> dict:
    """What ``ClaimSpec.applies`` sees of a pair's section (no names chosen by the engine).

    ``factor`` is the compared column: that setting is None (and a plugin's params empty), since
    the sides differ in it.
    """
    hidden = _load_list(row.get("hidden"))
    info = {"hidden": hidden, "convex": not hidden, "activation": row.get("activation"),
            "dtype": row.get("dtype"), "imbalance": ratios.get(row.get("family"), 1.0)}
    for name in SECTION_SETTINGS:
        info[name] = None if name == factor else row.get(name)
        if name in PLUGIN_PARAMS:
            info[PLUGIN_PARAMS[name]] = {} if name == factor else _load(row.get(PLUGIN_PARAMS[name]))
    return info


def _load_list(text) -> list:
    try:
        value = json.loads(text) if isinstance(text, str) else list(text or [])
    except (TypeError, ValueError):
        return []
    return list(value) if isinstance(value, list) else []


def _applicable(runs: pd.DataFrame, table: pd.DataFrame, spec: ClaimSpec) -> pd.DataFrame:
    if spec.applies is None or table.empty:
        return table
    ratios = {fam: imbalance(g) for fam, g in runs.groupby("family")}
    column, key = _factor(spec)
    factor = column if key is None else ""
    # plain dicts, not iterrows' Series per pair: section_info reads each with get()
    keep = [bool(spec.applies(section_info(row, factor, ratios))) for row in table.to_dict("records")]
    return table[np.asarray(keep, dtype=bool)].reset_index(drop=True)


# --------------------------------------------------------------------------- evaluation
def evaluate(specs, final_runs: pd.DataFrame, rows: pd.DataFrame, alpha: float = stats.ALPHA,
             runs_for: Callable[[str], tuple] | None = None) -> list[ClaimResult]:
    """Every claim in ``specs`` checked on the final-phase runs and their per-epoch rows.

    ``runs_for(objective) -> (runs, objective used)`` picks the final runs tuned for
    a claim's ``tuned_for`` (``harness.report.frames.tuned_for``); without it
    every final run takes part.
    """
    specs = list(specs)
    curves = Curves(final_runs, rows)
    results = []
    for spec in specs:
        chosen, objective = runs_for(spec.tuned_for) if runs_for is not None else (final_runs, "")
        usable = chosen[chosen["cell_id"].map(curves.usable).astype(bool)] if len(chosen) else chosen
        table, note = pair_table(usable, spec) if len(usable) else (pd.DataFrame(), "no usable runs")
        if not table.empty:
            table = _applicable(usable, table, spec)
            if table.empty:
                note = "no pair in a section this claim applies to"
            elif not _recorded(curves, table, spec.metric):
                note = (f"not observable: no paired run records a finite {spec.metric} (runs stored before the "
                        f"column existed, or a model it is not defined for)")
        result = ClaimResult(spec, table, note, tuned_for=objective)
        for budget in spec.budgets:
            br = BudgetResult(budget)
            if not table.empty:
                values, strata, br.unobserved = effects_at(curves, table, spec, budget)
                if values.size:
                    br.evidence = stats.evidence(values, spec.tie, strata)
            result.budgets.append(br)
        results.append(result)
    _judge(results, alpha)
    return results


def evaluate_sweep(specs, final_runs: pd.DataFrame, final_df: pd.DataFrame, manifest: dict | None,
                   alpha: float = stats.ALPHA) -> list[ClaimResult]:
    """The claims of a stored sweep, each on the final runs tuned for its objective (the page and the API)."""
    return evaluate(specs, final_runs, labelled_rows(final_df, final_runs), alpha,
                    runs_for=lambda objective: tuned_for(final_runs, manifest, objective))


def _recorded(curves: Curves, table: pd.DataFrame, metric: str) -> bool:
    cols = [c for c in table.columns if c.startswith("cell_")]
    return any(curves.records(cid, metric) for col in cols for cid in table[col])


def _judge(results: list[ClaimResult], alpha: float) -> None:
    """Holm across the page's claims (headline budgets), then the verdicts and their reasons.

    The family is the claims with a headline p: a claim with no pair (nothing of it in this
    sweep) is not tested, so it neither enters Holm nor raises the pairs the others need.
    """
    headline_p = [r.headline.evidence.p if r.headline.evidence else np.nan for r in results]
    m = max(1, int(np.sum(~np.isnan(np.asarray(headline_p, dtype=float)))))
    section_p: dict = {}
    for r in results:
        if r.headline.evidence:
            for label, ev in r.headline.evidence.sections.items():
                section_p.setdefault(label, []).append((id(r), ev.p))
    for i, r in enumerate(results):
        others = [p for j, p in enumerate(headline_p) if j != i]
        for br in r.budgets:
            ev = br.evidence
            if ev is None:
                br.reason = _missing(r, br)
                continue
            br.p_adj = stats.holm_within(ev.p, others)
            sections = {}
            for label, sev in ev.sections.items():
                rivals = [p for owner, p in section_p.get(label, []) if owner != id(r)]
                q = stats.holm_within(sev.p, rivals)
                verdict, reason = stats.decide_section(sev, q, alpha, len(rivals) + 1)
                br.sections[label] = (verdict, reason, q)
                sections[label] = (sev, q)
            br.verdict, br.reason = stats.decide(ev, br.p_adj, alpha, m, sections)
            if br.unobserved:
                br.reason += f"; {br.unobserved} pair(s) not observable at this budget"


def _missing(result: ClaimResult, br: BudgetResult) -> str:
    """Why a budget has no evidence, and where runs that test the claim come from when the claim says."""
    if result.note:
        reason = result.note
    elif br.unobserved:
        reason = (f"no pair is observable at this budget ({br.unobserved} pair(s) lack a record there: a run "
                  f"stopped before it, or it falls before a run's first record): no budget of this kind where "
                  f"the claim can be checked exists in this sweep")
    else:
        reason = "no pairs"
    where = result.spec.tested_by.strip()
    return f"{reason}; not tested here: runs that test it come from {where}" if where else reason


# --------------------------------------------------------------------------- description and tables
def describe(spec: ClaimSpec) -> str:
    """The claim's measure and effect in one sentence, from its spec."""
    what = spec.metric.replace("_", " ")
    unit = "log" if spec.scale == "log" else "difference of"
    if spec.statistic == "area":
        what = f"mean {what} over [0, budget] (area under its curve / budget)"
    elif spec.statistic == "fluctuation":
        values = "log values" if spec.scale == "log" else "values"
        what = (f"fluctuation of the {what}: the mean absolute change of its {values} between consecutive "
                f"records in the last {spec.window:.0%} of [0, budget] (0 = settled)")
        unit = "fluctuation of"
    a, b = spec.a, spec.b
    if spec.direction == "between":
        body = (f"{a} lies between {b} and {spec.c}: effect = the smaller of the {unit} distances of {a} "
                f"from the nearer end, inside the interval (negative outside)")
    elif spec.direction == "lower":
        body = f"{a} is lower than {b}: effect = {unit} {b} minus {unit} {a}"
    else:
        body = f"{a} is higher than {b}: effect = {unit} {a} minus {unit} {b}"
    budgets = "; ".join(b_.label for b_ in spec.budgets)
    return (f"Compared: {spec.factor} = {' / '.join(map(str, spec.sides))}. Measure: {what}. True per pair when "
            f"{body} (tie when |effect| <= {spec.tie:g}). Budgets: {budgets} (the first is the headline).")


def _num(value) -> float:
    return float(value) if value is not None else np.nan


def budget_rows(result: ClaimResult) -> pd.DataFrame:
    """One row per budget of a claim: evidence, p, Holm p, verdict, reason."""
    rows = []
    for br in result.budgets:
        ev = br.evidence or stats.Evidence()
        rows.append({"budget": br.budget.label, "verdict": br.verdict, "pairs": ev.pairs, "ties": ev.ties,
                     "support": ev.support, "against": ev.against, "not observable": br.unobserved,
                     "median effect": _num(ev.median), "CI low": _num(ev.ci[0]), "CI high": _num(ev.ci[1]),
                     "p": _num(ev.p) if ev.pairs else np.nan, "Holm p": _num(br.p_adj), "reason": br.reason})
    return pd.DataFrame(rows)


def section_rows(result: ClaimResult) -> pd.DataFrame:
    """One row per section at the headline budget: evidence, p, Holm p (within the section), verdict, reason."""
    br = result.headline
    if br.evidence is None:
        return pd.DataFrame()
    rows = []
    for label, ev in br.evidence.sections.items():
        verdict, reason, q = br.sections[label]
        rows.append({"section": label, "verdict": verdict, "pairs": ev.pairs, "ties": ev.ties,
                     "support": ev.support, "against": ev.against, "median effect": ev.median,
                     "CI low": ev.ci[0], "CI high": ev.ci[1], "p": ev.p, "Holm p": q, "reason": reason})
    return pd.DataFrame(rows)


def verdict_table(results) -> pd.DataFrame:
    """The page's summary: per claim, its headline budget with pooled and per-section verdicts."""
    rows = []
    for r in results:
        br = r.headline
        ev = br.evidence or stats.Evidence()
        per_section = "; ".join(f"{label}: {v}" for label, (v, _, _) in br.sections.items())
        rows.append({"claim": r.spec.title, "tuned for": r.tuned_for or "-", "budget": br.budget.label,
                     "verdict": br.verdict,
                     "sections": per_section, "median effect": _num(ev.median), "CI low": _num(ev.ci[0]),
                     "CI high": _num(ev.ci[1]), "pairs": ev.pairs, "ties": ev.ties,
                     "p": _num(ev.p) if ev.pairs else np.nan, "Holm p": _num(br.p_adj), "reason": br.reason})
    return pd.DataFrame(rows)
