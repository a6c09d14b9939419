"""Check what the lecture claims against this sweep's data, with stated rules.

Every claim compares *paired* runs: the same dataset, loss, model, schedule and
seed (so the same split and initial weights), differing only in what the
claim is about (the optimizer, or the loss), each at its own tuned learning
rate. A pair either supports the claim, contradicts it, or ties (equal values,
left out of the count). The verdict over all pairs of a claim:

* "holds" when it is supported in at least ``HOLD_SHARE`` of the untied pairs,
* "does not hold" when supported in at most ``FAIL_SHARE`` of them,
* "inconclusive" when in between (mixed), or fewer than ``MIN_PAIRS`` untied
  pairs exist (data missing).

A diverged run counts as an infinite loss (it lost); runs that errored or were
skipped have no data and form no pair.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.report.frames import OK_STATUSES, SECTION_COLUMNS, params_text

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
MIN_PAIRS = 3
HOLD_SHARE = 0.8
FAIL_SHARE = 0.2
VERDICT_RULE = (
    f"Each claim is checked on paired runs (same dataset, loss, model, schedule and seed, so the "
    f"same split and initial weights; each optimizer or loss at its own tuned learning rate). "
    f"Verdict: \"holds\" if the claim is true in at least {HOLD_SHARE:.0%} of the untied pairs, "
    f"\"does not hold\" if in at most {FAIL_SHARE:.0%}, otherwise \"inconclusive\" (mixed); also "
    f"\"inconclusive\" with fewer than {MIN_PAIRS} untied pairs (data missing). A diverged run "
    f"counts as an infinite loss; errored or skipped runs form no pair; exact ties are left out."
)
PAIR_KEY = SECTION_COLUMNS + ("schedule", "decay", "step_every", "seed")
FACE_PREFIX = "face-vs-background"


@dataclass
class Claim:
    """One lecture claim with its rule, the pairwise evidence and the verdict."""

    key: str
    title: str
    lecture: str
    rule: str
    verdict: str = INCONCLUSIVE
    summary: str = ""
    evidence: pd.DataFrame = field(default_factory=pd.DataFrame)


def decide(supported: int, pairs: int) -> tuple[str, str]:
    """The verdict for ``supported`` of ``pairs`` untied pairs, and a sentence saying why."""
    if pairs < MIN_PAIRS:
        return INCONCLUSIVE, f"only {pairs} untied paired run(s); at least {MIN_PAIRS} are needed"
    share = supported / pairs
    text = f"true in {supported} of {pairs} paired runs ({share:.0%})"
    if share >= HOLD_SHARE:
        return HOLDS, text
    if share <= FAIL_SHARE:
        return FAILS, text
    return INCONCLUSIVE, text + " (mixed)"


class Curves:
    """Per-run training-loss curves and final values, looked up by cell id."""

    def __init__(self, runs: pd.DataFrame, rows: pd.DataFrame):
        self.runs = runs.set_index("cell_id")
        self.loss = {cid: g.sort_values("epoch").set_index("epoch")["train_loss"]
                     for cid, g in rows[["cell_id", "epoch", "train_loss"]].groupby("cell_id")}

    def status(self, cid) -> str:
        return str(self.runs.at[cid, "status"])

    def usable(self, cid) -> bool:
        return cid in self.loss and (self.status(cid) in OK_STATUSES or self.status(cid) == "diverged")

    def at_epoch(self, cid, epoch: int) -> float:
        """Training loss after ``epoch``; inf when the run diverged before or at it."""
        if not self.usable(cid):
            return np.nan
        curve = self.loss[cid]
        if epoch in curve.index and np.isfinite(curve.loc[epoch]):
            return float(curve.loc[epoch])
        return np.inf if self.status(cid) == "diverged" else np.nan

    def final(self, cid) -> float:
        """Training loss at the end of the run; inf if it diverged."""
        if not self.usable(cid):
            return np.nan
        if self.status(cid) == "diverged":
            return np.inf
        value = float(self.loss[cid].iloc[-1])
        return value if np.isfinite(value) else np.inf

    def mean_over_common(self, a, b) -> tuple[float, float]:
        """Mean training loss over epochs 1..E, E the last epoch both runs recorded (area under the curve)."""
        if not (self.usable(a) and self.usable(b)):
            return np.nan, np.nan
        last = min(self.loss[a].index.max(), self.loss[b].index.max())
        out = []
        for cid in (a, b):
            curve = self.loss[cid].loc[1:last]
            if self.status(cid) == "diverged" or curve.empty or not np.all(np.isfinite(curve)):
                out.append(np.inf)
            else:
                out.append(float(curve.mean()))
        return out[0], out[1]


def pairs(runs: pd.DataFrame, column: str, a: str, b: str, key=PAIR_KEY, extra=None) -> pd.DataFrame:
    """Inner join of the runs with ``column == a`` and ``column == b`` on ``key``.

    Columns of the two sides get suffixes ``_a`` and ``_b``; ``extra`` is an
    optional function adding more key columns (e.g. the batch size) first.
    """
    frame = runs if extra is None else extra(runs.copy())
    key = [k for k in key if k != column and k in frame.columns] + (["extra_key"] if extra else [])
    side_a = frame[frame[column] == a]
    side_b = frame[frame[column] == b]
    if side_a.empty or side_b.empty:
        return pd.DataFrame()
    return side_a.merge(side_b, on=key, suffixes=("_a", "_b"))


def _tied(x: float, y: float) -> bool:
    if np.isinf(x) and np.isinf(y):
        return True
    return bool(np.isclose(x, y, rtol=1e-12, atol=0.0))


def _compare(table: pd.DataFrame, group_col: str, better) -> tuple[pd.DataFrame, int, int, int]:
    """Outcome per pair (value_a, value_b, supported or tie) and evidence per group."""
    table = table[table["value_a"].notna() & table["value_b"].notna()].copy()
    if table.empty:
        return pd.DataFrame(), 0, 0, 0
    table["tie"] = [_tied(x, y) for x, y in zip(table["value_a"], table["value_b"])]
    table["supported"] = [(not t) and better(x, y) for x, y, t in
                          zip(table["value_a"], table["value_b"], table["tie"])]
    rows = []
    for group, g in table.groupby(group_col, sort=True):
        untied = g[~g["tie"]]
        rows.append({"group": group, "pairs": len(g), "ties": int(g["tie"].sum()),
                     "supported": int(untied["supported"].sum()),
                     "mean_a": _finite_mean(g["value_a"]), "mean_b": _finite_mean(g["value_b"]),
                     "inf_a": int(np.isinf(g["value_a"]).sum()), "inf_b": int(np.isinf(g["value_b"]).sum())})
    untied = table[~table["tie"]]
    return pd.DataFrame(rows), int(untied["supported"].sum()), len(untied), int(table["tie"].sum())


def _finite_mean(values: pd.Series) -> float:
    v = values[np.isfinite(values)]
    return float(v.mean()) if len(v) else np.nan


def _finish(claim: Claim, evidence: pd.DataFrame, supported: int, untied: int, ties: int,
            names: tuple[str, str], missing: str = "") -> Claim:
    if evidence.empty:
        claim.verdict, claim.summary = INCONCLUSIVE, missing or "no paired runs in this sweep"
        return claim
    claim.verdict, claim.summary = decide(supported, untied)
    if ties:
        claim.summary += f"; {ties} tied pair(s) left out"
    claim.evidence = evidence.rename(columns={"mean_a": f"mean {names[0]}", "mean_b": f"mean {names[1]}",
                                              "inf_a": f"{names[0]} diverged", "inf_b": f"{names[1]} diverged"})
    return claim


def _optimizer_claim(claim: Claim, runs: pd.DataFrame, curves: Curves, a: str, b: str, value, better) -> Claim:
    table = pairs(runs, "optimizer", a, b)
    if table.empty:
        return _finish(claim, table, 0, 0, 0, (a, b), f"no paired {a} and {b} runs in this sweep")
    table["value_a"], table["value_b"] = zip(*[value(x, y) for x, y in zip(table["cell_id_a"], table["cell_id_b"])])
    table["group"] = table["section_a"]
    evidence, supported, untied, ties = _compare(table, "group", better)
    return _finish(claim, evidence, supported, untied, ties, (a, b),
                   f"no {a}/{b} pairs with data (all errored or skipped)")


def sgd_faster_early(runs, curves) -> Claim:
    claim = Claim("sgd-early", "SGD lowers the loss faster than BGD early",
                  "\"SGD converges fast\" (BGD vs SGD slide).",
                  "Training loss after epoch 1 — both optimizers have then seen every training sample "
                  "once (equal samples seen) — is lower for sgd than for bgd.")
    return _optimizer_claim(claim, runs, curves, "sgd", "bgd",
                            lambda x, y: (curves.at_epoch(x, 1), curves.at_epoch(y, 1)), lambda x, y: x < y)


def bgd_better_late(runs, curves) -> Claim:
    claim = Claim("bgd-late", "BGD reaches a lower loss after many epochs",
                  "\"BGD outperforms SGD after many iterations\" (BGD vs SGD slide).",
                  "Training loss at the end of the run (the sweep's epoch budget, or where a stopping "
                  "rule ended it) is lower for bgd than for sgd.")
    return _optimizer_claim(claim, runs, curves, "bgd", "sgd",
                            lambda x, y: (curves.final(x), curves.final(y)), lambda x, y: x < y)


def shuffled_beats_cyclic(runs, curves) -> Claim:
    claim = Claim("sgd-vs-point", "Shuffled SGD converges better than cyclic point GD",
                  "\"If we loop through the samples in the same order, we may get cyclic behavior; we "
                  "must go through them randomly to get more convergent behavior\" (SGD slide).",
                  "Training loss at the end of the run is lower for sgd (reshuffled every epoch) than "
                  "for point (the same fixed order every epoch).")
    return _optimizer_claim(claim, runs, curves, "sgd", "point",
                            lambda x, y: (curves.final(x), curves.final(y)), lambda x, y: x < y)


def minibatch_in_between(runs, curves) -> Claim:
    claim = Claim("minibatch-between", "Mini-batch GD lies between SGD and BGD",
                  "Mini-batch: quicker updates than batch, less noisy than one sample (Mini-Batch GD slide).",
                  "Training loss after epoch 1 (equal samples seen) of minibatch lies between those of "
                  "sgd and bgd (inclusive); every minibatch variant (batch size) is paired separately.")
    sb = pairs(runs, "optimizer", "sgd", "bgd")
    if sb.empty:
        return _finish(claim, sb, 0, 0, 0, ("minibatch", "sgd..bgd"), "no paired sgd and bgd runs in this sweep")
    mb = runs[runs["optimizer"] == "minibatch"]
    key = [k for k in PAIR_KEY if k in runs.columns]
    table = sb.merge(mb[key + ["cell_id", "method"]], on=key)
    if table.empty:
        return _finish(claim, table, 0, 0, 0, ("minibatch", "sgd..bgd"),
                       "no minibatch runs paired with sgd and bgd in this sweep")
    values = []
    for m, s, b in zip(table["cell_id"], table["cell_id_a"], table["cell_id_b"]):
        vm, vs, vb = curves.at_epoch(m, 1), curves.at_epoch(s, 1), curves.at_epoch(b, 1)
        inside = np.nan if np.isnan([vm, vs, vb]).any() else float(min(vs, vb) <= vm <= max(vs, vb))
        values.append((vm, inside))
    table["value_a"] = [v for v, _ in values]
    table["value_b"] = [i for _, i in values]   # 1.0 when inside the sgd..bgd interval
    table = table[table["value_b"].notna()]
    table["group"] = table["section_a"] + " · " + table["method"]
    if table.empty:
        return _finish(claim, table, 0, 0, 0, ("minibatch", "inside"), "no complete sgd/bgd/minibatch triples")
    rows = []
    for group, g in table.groupby("group", sort=True):
        rows.append({"group": group, "pairs": len(g), "ties": 0, "supported": int(g["value_b"].sum()),
                     "mean minibatch": _finite_mean(g["value_a"]),
                     "mean sgd": _finite_mean(pd.Series([curves.at_epoch(c, 1) for c in g["cell_id_a"]])),
                     "mean bgd": _finite_mean(pd.Series([curves.at_epoch(c, 1) for c in g["cell_id_b"]]))})
    claim.verdict, claim.summary = decide(int(table["value_b"].sum()), len(table))
    claim.evidence = pd.DataFrame(rows)
    return claim


def wce_raises_minority_recall(runs, curves) -> Claim:
    claim = Claim("wce-recall", "WCE raises the minority recall on face-vs-background over CE",
                  "Class weights C_n = M/m_i for unbalanced data, e.g. face detection with far more "
                  "background than faces (Special Cases: WCE slide).",
                  "Test recall of the minority class (fewest training samples: the faces) at the end of "
                  "the run is higher with wce than with ce, on face-vs-background datasets, for the same "
                  "optimizer and seed. Only runs that finished (done/stopped) are compared.")
    face = runs[runs["dataset"].str.startswith(FACE_PREFIX) & runs["status"].isin(OK_STATUSES)]
    key = [k for k in PAIR_KEY if k not in ("loss", "loss_params")] + ["optimizer", "optimizer_params"]
    table = pairs(face, "loss", "wce", "ce", key=key)
    if table.empty:
        return _finish(claim, table, 0, 0, 0, ("wce", "ce"),
                       "no finished ce and wce runs on a face-vs-background dataset in this sweep")
    table["value_a"] = table["test_minority_recall_a"].astype(float)
    table["value_b"] = table["test_minority_recall_b"].astype(float)
    table["group"] = table["family_a"] + " · " + table["method_a"]
    evidence, supported, untied, ties = _compare(table, "group", lambda x, y: x > y)
    return _finish(claim, evidence, supported, untied, ties, ("wce", "ce"), "no ce/wce pair has a minority recall")


def _batch_size_key(frame: pd.DataFrame) -> pd.DataFrame:
    frame["extra_key"] = frame["optimizer_params"].map(lambda p: params_text(p))
    frame["extra_key"] = frame["extra_key"].map(
        lambda t: next((part for part in t.split(", ") if part.startswith("batch_size=")), "batch_size=default"))
    return frame


def batch_norm_speeds_up(runs, curves) -> Claim:
    claim = Claim("batch-norm", "Batch normalisation speeds up mini-batch GD",
                  "Mini-Batch Normalization: normalise each batch to mean 0, variance 1 (slides).",
                  "Mean training loss over epochs 1..E (area under the loss curve per epoch; E = the "
                  "last epoch both runs recorded) is lower for minibatch-bn than for minibatch at the "
                  "same batch size.")
    table = pairs(runs, "optimizer", "minibatch-bn", "minibatch", extra=_batch_size_key)
    if table.empty:
        return _finish(claim, table, 0, 0, 0, ("minibatch-bn", "minibatch"),
                       "no paired minibatch-bn and minibatch runs (same batch size) in this sweep")
    table["value_a"], table["value_b"] = zip(*[curves.mean_over_common(x, y)
                                               for x, y in zip(table["cell_id_a"], table["cell_id_b"])])
    table["group"] = table["section_a"] + " · " + table["extra_key"]
    evidence, supported, untied, ties = _compare(table, "group", lambda x, y: x < y)
    return _finish(claim, evidence, supported, untied, ties, ("minibatch-bn", "minibatch"),
                   "no minibatch-bn/minibatch pair with data (all errored or skipped)")


CHECKS = (sgd_faster_early, bgd_better_late, shuffled_beats_cyclic, minibatch_in_between,
          wce_raises_minority_recall, batch_norm_speeds_up)


def evaluate(final_runs: pd.DataFrame, rows: pd.DataFrame) -> list[Claim]:
    """All lecture claims, checked on the final-phase runs and their per-epoch rows."""
    curves = Curves(final_runs, rows)
    return [check(final_runs, curves) for check in CHECKS]
