"""Speed may not change a verdict: the whole-column pair keys and the sliced run curves of
``harness.report.claims`` give byte-identical claim tables to the row-by-row code they replaced
(kept here, verbatim in effect, as the reference)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.report import claims as claims_mod
from harness.report.build import registered_claims
from harness.report.frames import normalise, run_tables
from report_sample import synthetic_results


def reference_key_text(frame: pd.DataFrame, columns) -> pd.Series:
    """The former key: every row's values as text, joined row by row."""
    return frame[list(columns)].astype(str).agg("\x1f".join, axis=1)


class ReferenceCurves(claims_mod.Curves):
    """The former curves: one pandas frame per run, columns converted at each lookup."""

    def __init__(self, runs: pd.DataFrame, rows: pd.DataFrame):
        rows = claims_mod.with_excess(rows)
        self.status = runs.set_index("cell_id")["status"].astype(str).to_dict()
        self.frames = {cid: g.sort_values("epoch") for cid, g in rows.groupby("cell_id")}
        self._cache = {}

    def points(self, cid, axis, metric):
        key = (cid, axis, metric)
        if key not in self._cache:
            frame = self.frames[cid]
            if axis not in frame.columns or metric not in frame.columns:
                x = y = np.array([])
            else:
                x = pd.to_numeric(frame[axis], errors="coerce").to_numpy(float)
                y = pd.to_numeric(frame[metric], errors="coerce").to_numpy(float)
                ok = np.isfinite(x) & np.isfinite(y)
                x, y = x[ok], y[ok]
            self._cache[key] = (x, y)
        return self._cache[key]


def claim_tables(results: pd.DataFrame) -> list[bytes]:
    _, final_df, final_runs = run_tables(normalise(results))
    found = claims_mod.evaluate_sweep(registered_claims(), final_runs, final_df, {"sweep": "same"})
    out = [claims_mod.verdict_table(found).to_csv(index=False).encode()]
    for result in found:
        out.append(claims_mod.budget_rows(result).to_csv(index=False).encode())
        out.append(claims_mod.section_rows(result).to_csv(index=False).encode())
        out.append(result.pairs.to_csv(index=False).encode())
    return out


@pytest.mark.parametrize("kw", [{}, {"optimizers": ("bgd", "sgd", "minibatch"), "seeds": (0, 1), "epochs": 4},
                                {"extras": False, "reference": 0.05}])
def test_claim_tables_equal_the_row_by_row_reference(kw, monkeypatch):
    results = synthetic_results(**kw)
    fast = claim_tables(results)
    monkeypatch.setattr(claims_mod, "_key_text", reference_key_text)
    monkeypatch.setattr(claims_mod, "Curves", ReferenceCurves)
    slow = claim_tables(results)
    assert len(fast) == len(slow) > 1
    assert any(b"holds" in t or b"inconclusive" in t for t in fast[:1])   # the verdict table has verdicts
    for a, b in zip(fast, slow):
        assert a == b


def test_key_text_joins_the_same_text_as_the_row_by_row_key():
    frame = pd.DataFrame({"a": ["x", "y", "z"], "b": [0.1, 2.5e-7, 3.0], "c": [1, 2, 3],
                          "d": ['{"k": 1}', "", "é"]}, index=[5, 7, 9])
    got = claims_mod._key_text(frame, ["a", "b", "c", "d"])
    want = reference_key_text(frame, ["a", "b", "c", "d"])
    assert got.tolist() == want.tolist() and list(got.index) == list(want.index)
