"""The lecture's three further claims (schedules settle, mini-batch noise kicks, small batches sway batch-norm
statistics), the fluctuation statistic they need, pairing over a schedule grid, and the lecture preset."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from harness.cli.main import main
from harness.plugin.claims import ClaimSpec
from harness.plugin.loader import load_registry
from harness.report import claims as claims_mod
from harness.report import stats
from harness.report.frames import add_labels, normalise, runs
from harness.sweep.config import load_config
from harness_plugins.claims import CLAIMS
from report_sample import synthetic_results

BUILTIN = {c.name: c for c in CLAIMS}
NEW = ("sgd-inverse-settles", "sgd-inverse-sqrt-settles", "minibatch-kicks", "bn-small-batch-outliers",
       "bgd-late-convex")
SEEDS = tuple(range(8))


def _frames(results: pd.DataFrame):
    df = normalise(results)
    final = add_labels(runs(df))
    final = final[final["phase"] == "final"].reset_index(drop=True)
    return final, df[df["cell_id"].isin(set(final["cell_id"]))]


def _evaluate(results: pd.DataFrame, *specs) -> dict:
    final, rows = _frames(results)
    return {r.spec.name: r for r in claims_mod.evaluate(specs, final, rows)}


def _variant(frame: pd.DataFrame, tag: str, **settings) -> pd.DataFrame:
    """A copy of ``frame`` with other settings (and so other cell ids)."""
    out = frame.copy()
    for column, value in settings.items():
        out[column] = value
    out["cell_id"] = out["cell_id"] + "-" + tag
    return out


# --------------------------------------------------------------------------- the statistic
def test_fluctuation_by_hand():
    x = np.arange(5.0)
    flat = claims_mod.fluctuation(x, np.ones(5), 4.0, 0.5, log=False)
    assert flat == 0.0
    # records at x = 2, 3, 4 lie in the last half of [0, 4]: |2 - 1| and |1 - 2| -> mean 1
    assert claims_mod.fluctuation(x, np.array([5.0, 9.0, 1.0, 2.0, 1.0]), 4.0, 0.5, log=False) == 1.0
    # on the log scale: log values 0, 2, 1 -> (2 + 1) / 2
    y = np.exp([3.0, -4.0, 0.0, 2.0, 1.0])
    assert claims_mod.fluctuation(x, y, 4.0, 0.5, log=True) == pytest.approx(1.5)
    # a wider window reaches back further: x = 1..4 -> |4| + |2| + |1| over 3
    assert claims_mod.fluctuation(x, y, 4.0, 0.75, log=True) == pytest.approx(7 / 3)
    # a steadily falling curve still moves: exp(-t) falls by 1 in log per record
    assert claims_mod.fluctuation(x, np.exp(-x), 4.0, 0.5, log=True) == pytest.approx(1.0)
    # a budget inside the curve: x = 1, 2 in [1, 2] -> |log y2 - log y1| = 4
    assert claims_mod.fluctuation(x, y, 2.0, 0.5, log=True) == pytest.approx(4.0)
    # fewer than two records in the window: nothing measured
    assert claims_mod.fluctuation(x, y, 1.0, 0.5, log=True) is None


def test_fluctuation_is_read_from_the_stored_curve():
    results = synthetic_results(datasets=("digits",), losses=("ce",), optimizers=("sgd",), seeds=(0,), epochs=6,
                                extras=False)
    final_rows = results["phase"] == "final"
    results.loc[final_rows, "train_loss"] = [1.0, 0.5, 0.4, 0.2, 0.4, 0.2, 0.4]
    final, rows = _frames(results)
    curves = claims_mod.Curves(final, rows)
    spec = BUILTIN["sgd-inverse-settles"]
    cid = final["cell_id"].iloc[0]
    # the last half of 6 epochs: records 3..6 -> three changes of |log 2|
    assert curves.read(cid, spec, "epoch", 6.0, np.inf) == pytest.approx(math.log(2))
    linear = dataclasses.replace(spec, scale="linear", window=1.0)
    assert curves.read(cid, linear, "epoch", 6.0, np.inf) == pytest.approx((0.5 + 0.1 + 0.2 * 4) / 6)


def test_claim_spec_checks_the_statistic_and_window():
    base = dict(name="x", description="x", lecture="x", factor="schedule", a="inverse", b="constant")
    assert ClaimSpec(**base, statistic="fluctuation").window == 0.5
    for bad in (dict(statistic="wiggle"), dict(window=0.0), dict(window=1.5)):
        with pytest.raises(ValueError):
            ClaimSpec(**base, **bad)


def test_describe_states_the_fluctuation_rule():
    text = claims_mod.describe(BUILTIN["sgd-inverse-settles"])
    assert "mean absolute change of its log values" in text and "last 50%" in text
    assert "fluctuation of constant minus fluctuation of inverse" in text


# --------------------------------------------------------------------------- schedules settle
def _schedules(settles: bool, decays=(0.01,)) -> pd.DataFrame:
    """sgd and bgd at a constant and an inverse schedule; the constant sgd run bounces when ``settles``."""
    base = synthetic_results(datasets=("digits",), losses=("ce",), optimizers=("sgd", "bgd"), seeds=SEEDS,
                             epochs=10, extras=False)
    bounce = np.where(base["epoch"] % 2 == 0, 1.3, 0.8) * (base["epoch"] >= 1)
    parts = [base]
    for k in decays:
        inverse = _variant(base, f"inv{k}", schedule="inverse", decay=k)
        parts.append(inverse)
    noisy = (base["optimizer"] == "sgd") & (base["epoch"] >= 1)
    if settles:
        base.loc[noisy, "train_loss"] *= bounce[noisy]
    else:
        for part in parts[1:]:
            part.loc[noisy, "train_loss"] *= bounce[noisy]
    return pd.concat(parts, ignore_index=True)


def test_a_schedule_claim_pairs_sgd_runs_that_differ_in_the_schedule_alone():
    results = _schedules(settles=True)
    final, _ = _frames(results)
    spec = BUILTIN["sgd-inverse-settles"]
    table, note = claims_mod.pair_table(final, spec)
    assert note == "" and len(table) == 2 * 8                     # sgd and bgd, the decay not in the key
    got = _evaluate(results, spec)[spec.name]
    assert len(got.pairs) == 8                                    # applies() keeps sgd only
    optimizer = final.set_index("cell_id")["optimizer"]
    assert set(got.pairs["cell_0"].map(optimizer)) == {"sgd"}
    assert set(got.pairs["cell_1"].map(final.set_index("cell_id")["schedule"])) == {"constant"}


def test_two_decays_of_one_schedule_are_variants_not_duplicates():
    final, _ = _frames(_schedules(settles=True, decays=(0.01, 0.001)))
    table, note = claims_mod.pair_table(final, BUILTIN["sgd-inverse-settles"])
    assert note == "" and len(table) == 2 * 2 * 8
    assert table["stratum"].nunique() == 4
    assert table["stratum"].str.contains("inverse decay=0.001").sum() == 16
    decay = final.set_index("cell_id")["decay"]
    assert set(table["cell_1"].map(decay)) == {0.0}


def test_schedule_claim_holds_when_the_constant_rate_keeps_moving_and_fails_otherwise():
    spec = BUILTIN["sgd-inverse-settles"]
    held = _evaluate(_schedules(settles=True), spec)[spec.name].headline
    assert held.verdict == stats.HOLDS and held.evidence.support == 8 and held.evidence.median > 0
    failed = _evaluate(_schedules(settles=False), spec)[spec.name].headline
    assert failed.verdict == stats.FAILS and failed.evidence.against == 8
    # the same smooth decay on both sides: every pair is a tie, nothing is concluded
    plain = synthetic_results(datasets=("digits",), losses=("ce",), optimizers=("sgd",), seeds=SEEDS, epochs=10,
                              extras=False)
    smooth = pd.concat([plain, _variant(plain, "i", schedule="inverse", decay=0.01)], ignore_index=True)
    tied = _evaluate(smooth, spec)[spec.name].headline
    assert tied.evidence.ties == 8 and tied.verdict == stats.INCONCLUSIVE


def test_a_diverged_schedule_run_counts_as_never_settling():
    results = _schedules(settles=False)
    constant_sgd = (results["optimizer"] == "sgd") & (results["schedule"] == "constant")
    results.loc[constant_sgd, "status"] = "diverged"
    results.loc[constant_sgd & (results["epoch"] >= 3), "train_loss"] = np.inf
    got = _evaluate(results, BUILTIN["sgd-inverse-settles"])["sgd-inverse-settles"].headline
    assert got.verdict == stats.HOLDS and got.evidence.median == np.inf


# --------------------------------------------------------------------------- mini-batch kicks
def _kicks(bgd_floor: float) -> pd.DataFrame:
    stuck = {"bgd": {"rate": 0.5, "floor": bgd_floor, "seconds": 0.002, "updates": 1},
             "minibatch": {"rate": 0.3, "floor": 0.05, "seconds": 0.004, "updates": 4}}
    common = dict(datasets=("moons",), losses=("ce",), optimizers=("bgd", "minibatch"), seeds=SEEDS, epochs=100,
                  behaviour=stuck, extras=False)
    deep = synthetic_results(hidden=(16,), **common)
    convex = synthetic_results(hidden=(), **common)
    convex["cell_id"] += "-convex"
    return pd.concat([deep, convex], ignore_index=True)


def test_minibatch_kicks_is_read_on_non_convex_sections_at_the_long_budget():
    spec = BUILTIN["minibatch-kicks"]
    got = _evaluate(_kicks(bgd_floor=0.3), spec)[spec.name]
    assert len(got.pairs) == 8 and all("hidden=16" in s for s in got.pairs["stratum"])
    assert got.headline.budget.label == "epoch 100"
    assert got.headline.verdict == stats.HOLDS
    assert _evaluate(_kicks(bgd_floor=0.01), spec)[spec.name].headline.verdict == stats.FAILS


def test_minibatch_kicks_says_when_the_sweep_is_too_short():
    results = synthetic_results(datasets=("moons",), losses=("ce",), optimizers=("bgd", "minibatch"), seeds=SEEDS,
                                epochs=20, extras=False)
    got = _evaluate(results, BUILTIN["minibatch-kicks"])["minibatch-kicks"]
    assert got.headline.evidence is None and "no budget of this kind" in got.headline.reason
    assert got.budgets[1].evidence is not None and got.budgets[1].evidence.pairs == 8


# --------------------------------------------------------------------------- batch-norm statistics
def _batch_norm(shift_small: float, shift_large: float, column: bool = True) -> pd.DataFrame:
    base = synthetic_results(datasets=("moons",), losses=("ce",), optimizers=("minibatch-bn",), seeds=SEEDS,
                             epochs=5, extras=False)
    parts = []
    for size, shift in ((16, shift_small), (64, shift_large)):
        part = _variant(base, f"b{size}", optimizer_params=json.dumps({"batch_size": size}))
        if column:
            part["bn_batch_shift"] = shift * (1 + 0.01 * part["seed"]) / (1 + 0.1 * part["epoch"])
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def test_bn_claim_holds_when_small_batches_stray_more_and_fails_otherwise():
    spec = BUILTIN["bn-small-batch-outliers"]
    got = _evaluate(_batch_norm(0.4, 0.1), spec)[spec.name]
    assert len(got.pairs) == 8 and got.headline.verdict == stats.HOLDS
    assert all(b.verdict == stats.HOLDS for b in got.budgets)
    assert _evaluate(_batch_norm(0.1, 0.4), spec)[spec.name].headline.verdict == stats.FAILS
    tied = _evaluate(_batch_norm(0.2, 0.2 + stats_tie_half()), spec)[spec.name].headline
    assert tied.evidence.ties == 8


def stats_tie_half() -> float:
    return BUILTIN["bn-small-batch-outliers"].tie / 2


def test_bn_claim_without_the_column_is_not_observable():
    spec = BUILTIN["bn-small-batch-outliers"]
    for results in (_batch_norm(0.4, 0.1, column=False), _batch_norm(np.nan, np.nan)):
        got = _evaluate(results, spec)[spec.name]
        assert len(got.pairs) == 8
        assert all(b.evidence is None and b.verdict == stats.INCONCLUSIVE for b in got.budgets)
        assert "not observable" in got.headline.reason and "bn_batch_shift" in got.headline.reason


def test_bn_claim_applies_to_batch_norm_runs_only():
    results = _batch_norm(0.4, 0.1)
    results["optimizer"] = "minibatch"
    got = _evaluate(results, BUILTIN["bn-small-batch-outliers"])["bn-small-batch-outliers"]
    assert got.pairs.empty and "applies to" in got.headline.reason


# --------------------------------------------------------------------------- the page's family
def test_claims_without_pairs_do_not_enter_holm():
    """On a sweep without the lecture settings the new claims have no pair: the six keep their family of six."""
    results = synthetic_results(datasets=("digits",), losses=("ce",), seeds=SEEDS, epochs=4, extras=False)
    got = _evaluate(results, *CLAIMS)
    assert sum(r.headline.evidence is not None for r in got.values()) == 5    # all but wce-recall (no wce)
    for name in NEW[:2]:
        assert "no runs with schedule = inverse" in got[name].headline.reason
    for name in NEW:   # an untested claim says where runs that test it come from
        assert got[name].headline.evidence is None
        assert got[name].headline.reason.endswith("not tested here: runs that test it come from the lecture "
                                                  "preset (python -m harness sweep --config lecture)")
    assert "no pair in a section" in got["bn-small-batch-outliers"].headline.reason \
        or "no runs with" in got["bn-small-batch-outliers"].headline.reason
    six = _evaluate(results, *CLAIMS[:6])
    for name, result in six.items():
        assert got[name].headline.verdict == result.headline.verdict
        assert got[name].headline.p_adj == pytest.approx(result.headline.p_adj, nan_ok=True)
        assert got[name].headline.reason == result.headline.reason      # "after Holm over m claim(s)" too
    # the kick claim's other budgets are read, but only its headline enters the family
    assert got["minibatch-kicks"].headline.evidence is None


def test_new_claims_register_through_the_hook_with_their_slide_and_rule():
    from harness_plugins import claims as plugin

    seen = []
    plugin.register_claims(seen.append)
    assert [c.name for c in seen][-len(NEW):] == list(NEW)
    for name in NEW:
        spec = BUILTIN[name]
        assert spec.lecture.count("\"") >= 2 and len(spec.rule) > 100 and spec.applies is not None
    kicks, settles = BUILTIN["minibatch-kicks"], BUILTIN["sgd-inverse-settles"]
    assert kicks.applies({"convex": True}) is False and kicks.applies({"convex": False}) is True
    assert settles.applies({"optimizer": "sgd"}) and not settles.applies({"optimizer": "bgd"})


# --------------------------------------------------------------------------- BGD late, on the convex model
def _convex_runs(bgd_floor: float, sgd_floor: float, reference: float = 0.3) -> pd.DataFrame:
    """Convex runs whose training loss is the stored optimum plus a decaying excess with a floor."""
    common = dict(datasets=("moons",), losses=("ce",), optimizers=("bgd", "sgd"), seeds=SEEDS, epochs=10,
                  extras=False)
    convex = synthetic_results(hidden=(), **common)
    deep = synthetic_results(hidden=(16,), **common)
    deep["cell_id"] += "-deep"
    results = pd.concat([convex, deep], ignore_index=True)
    floor = np.where(results["optimizer"] == "bgd", bgd_floor, sgd_floor)
    results["train_loss"] = reference + floor + np.exp(-results["epoch"].to_numpy(float))
    results["reference_train_loss"] = np.where(results["hidden"].astype(str).isin(["[]", "()", ""]), reference,
                                               np.nan)
    return results


def test_excess_over_the_optimum_is_floored_and_missing_without_a_reference():
    rows = pd.DataFrame({"train_loss": [0.5, 0.3, 0.29, 0.4], "reference_train_loss": [0.3, 0.3, 0.3, np.nan]})
    got = claims_mod.with_excess(rows)["train_loss_excess"].to_numpy()
    assert got[0] == pytest.approx(0.2) and got[1] == got[2] == claims_mod.EXCESS_FLOOR and np.isnan(got[3])


def test_bgd_late_convex_reads_the_excess_where_the_plain_loss_is_a_tie():
    spec, plain = BUILTIN["bgd-late-convex"], BUILTIN["bgd-late"]
    got = _evaluate(_convex_runs(bgd_floor=1e-7, sgd_floor=1e-4), spec, plain)
    # the losses differ by far less than the 1% tie, the distances to the optimum by orders of magnitude
    assert got["bgd-late"].headline.evidence.ties == got["bgd-late"].headline.evidence.pairs
    assert got[spec.name].headline.verdict == stats.HOLDS
    assert len(got[spec.name].pairs) == 8 and not any("hidden=16" in s for s in got[spec.name].pairs["stratum"])
    flipped = _evaluate(_convex_runs(bgd_floor=1e-4, sgd_floor=1e-7), spec)[spec.name]
    assert flipped.headline.verdict == stats.FAILS


# --------------------------------------------------------------------------- the lecture preset
def test_the_lecture_preset_runs_what_the_claims_need():
    config = load_config("lecture", registry=load_registry())
    assert config.name == "lecture" and len(config.seeds) == 8
    schedules = {name for _, name, _, _ in config.schedule_axis()}
    assert {"constant", "inverse", "inverse_sqrt"} <= schedules
    assert all(d > 0 for _, name, d, _ in config.schedule_axis() if name == "inverse")
    assert () in config.run_grid("hidden") and any(h for h in config.run_grid("hidden"))
    assert max(config.run_grid("epochs")) >= BUILTIN["minibatch-kicks"].budgets[0].value
    sizes = config.param_grids("optimizer", "minibatch-bn")["batch_size"]
    assert {BUILTIN["bn-small-batch-outliers"].a, BUILTIN["bn-small-batch-outliers"].b} <= set(sizes)
    assert {"sgd", "bgd", "minibatch", "minibatch-bn"} <= set(config.optimizers)


@pytest.mark.slow
def test_a_tiny_lecture_sweep_gives_every_new_claim_a_verdict_row(tmp_path):
    code = main(["sweep", "--config", "lecture", "--out", str(tmp_path), "--name", "tiny", "-q", "--seeds", "2",
                 "--epochs", "4", "--lr", "0.1", "--set", "dataset.moons.n_samples=100", "--jobs", "1"])
    assert code == 0
    table = pd.read_csv(tmp_path / "tiny" / "tables" / "claims.csv")
    titles = {BUILTIN[name].title: name for name in NEW}
    rows = table[table["claim"].isin(titles)]
    assert len(rows) == len(NEW)
    assert rows["verdict"].isin([stats.HOLDS, stats.FAILS, stats.INCONCLUSIVE]).all()
    assert rows["reason"].fillna("").str.len().gt(0).all()
    by_name = {titles[r["claim"]]: r for _, r in rows.iterrows()}
    for name in NEW[:2]:
        assert by_name[name]["pairs"] == 4           # two seeds of sgd on the convex and the hidden model
