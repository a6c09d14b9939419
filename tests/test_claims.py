"""Claims as plugins: pairing joins runs that differ in the compared factor alone, budgets are matched,
ties and divergence follow the stated rules, and the report shows exactly the claims it is given."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.plugin.claims import Budget, ClaimSpec
from harness.report import claims as claims_mod
from harness.report import stats
from harness.report.build import build_report
from harness.report.frames import add_labels, normalise, runs
from harness_plugins.claims import CLAIMS
from report_sample import synthetic_results

SMALL = dict(datasets=("digits",), losses=("ce",), seeds=tuple(range(8)), epochs=4, extras=False)
BUILTIN = {c.name: c for c in CLAIMS}


def _frames(results: pd.DataFrame):
    df = normalise(results)
    all_runs = add_labels(runs(df))
    final = all_runs[all_runs["phase"] == "final"].reset_index(drop=True)
    return final, df[df["cell_id"].isin(set(final["cell_id"]))]


def _evaluate(results: pd.DataFrame, *specs) -> dict:
    final, rows = _frames(results)
    return {r.spec.name: r for r in claims_mod.evaluate(specs, final, rows)}


def _claim(**kw) -> ClaimSpec:
    base = dict(name="test-claim", description="sgd below bgd", lecture="test", factor="optimizer",
                a="sgd", b="bgd", budgets=(Budget("epoch", fraction=1.0),))
    return ClaimSpec(**{**base, **kw})


# --------------------------------------------------------------------------- pairing
def test_gridding_epochs_never_pairs_across_budgets():
    results = pd.concat([synthetic_results(**{**SMALL, "epochs": 2}), synthetic_results(**{**SMALL, "epochs": 6})],
                        ignore_index=True)
    final, _ = _frames(results)
    table, note = claims_mod.pair_table(final, _claim())
    assert note == "" and len(table) == 2 * 8            # two budgets x eight seeds, not 4 x 8
    epochs = final.set_index("cell_id")["epochs"]
    assert (table["cell_0"].map(epochs).to_numpy() == table["cell_1"].map(epochs).to_numpy()).all()
    assert table["stratum"].nunique() == 2 and all("epochs=" in s for s in table["stratum"])


@pytest.mark.parametrize("column,value", [("schedule", "step"), ("tol", 1e-4), ("patience", 3),
                                          ("time_budget", 60.0), ("lecture_stop", True), ("dtype", "float32"),
                                          ("hidden", "[32]"), ("seed", 100)])
@pytest.mark.slow
def test_runs_differing_in_any_other_setting_do_not_pair(column, value):
    results = synthetic_results(**SMALL)
    results.loc[results["optimizer"] == "bgd", column] = value
    final, _ = _frames(results)
    table, note = claims_mod.pair_table(final, _claim())
    assert table.empty and "differ in it alone" in note


def test_the_learning_rate_is_not_part_of_the_key_but_duplicates_are_ambiguous():
    results = synthetic_results(**SMALL)
    results.loc[(results["optimizer"] == "bgd") & (results["phase"] == "final"), "lr"] = 0.5   # its own tuned rate
    final, _ = _frames(results)
    assert len(claims_mod.pair_table(final, _claim())[0]) == 8
    doubled = pd.concat([results, results.assign(lr=0.01, cell_id=results["cell_id"] + "x")], ignore_index=True)
    final, _ = _frames(doubled)
    table, note = claims_mod.pair_table(final, _claim())
    assert table.empty and "share a key" in note


def test_plugin_params_shared_by_both_sides_must_agree():
    results = synthetic_results(**SMALL)
    bn = BUILTIN["batch-norm"]
    final, _ = _frames(results)
    assert len(claims_mod.pair_table(final, bn)[0]) == 8
    results.loc[results["optimizer"] == "minibatch-bn", "optimizer_params"] = json.dumps({"batch_size": 64})
    final, _ = _frames(results)
    assert claims_mod.pair_table(final, bn)[0].empty


def test_a_plugin_param_can_be_the_factor():
    results = pd.concat([synthetic_results(**SMALL, optimizers=("minibatch",)),
                         synthetic_results(**SMALL, optimizers=("minibatch",),
                                           behaviour={"minibatch": {"rate": 0.2, "floor": 0.3, "seconds": 0.004,
                                                                    "updates": 4}})
                         .assign(optimizer_params=json.dumps({"batch_size": 64}))], ignore_index=True)
    results["cell_id"] = results["cell_id"] + results["optimizer_params"].map(lambda p: str(len(p)) + p[-4:-1])
    spec = _claim(factor="optimizer_params.batch_size", a=32, b=64, description="small batches are faster")
    got = _evaluate(results, spec)["test-claim"]
    assert len(got.pairs) == 8 and got.headline.verdict == stats.HOLDS


# --------------------------------------------------------------------------- measures, budgets, ties
def test_differences_inside_the_tie_tolerance_are_ties():
    same = {"bgd": {"rate": 1.5, "floor": 0.12, "seconds": 0.002, "updates": 1}}   # sgd's curve
    results = synthetic_results(behaviour=same, **SMALL)
    bgd = (results["optimizer"] == "bgd")
    results.loc[bgd, "train_loss"] *= 1 + 1e-6
    got = _evaluate(results, _claim())["test-claim"].headline
    assert (got.evidence.ties, got.evidence.untied) == (8, 0)
    assert got.verdict == stats.INCONCLUSIVE and "too few pairs" in got.reason
    strict = _evaluate(results, _claim(tie=0.0))["test-claim"].headline
    assert strict.evidence.support == 8 and strict.verdict == stats.HOLDS


def test_budgets_are_matched_and_the_verdict_moves_with_them():
    # sgd falls fast to a high floor; bgd falls slowly to a low one: sgd wins early, bgd late
    results = synthetic_results(**{**SMALL, "epochs": 30})
    spec = _claim(budgets=(Budget("epoch", value=1), Budget("epoch", fraction=1.0), Budget("epoch", value=0.5)))
    got = _evaluate(results, spec)["test-claim"]
    early, late, half_epoch = got.budgets
    assert early.verdict == stats.HOLDS and late.verdict == stats.FAILS
    assert half_epoch.evidence is None and half_epoch.unobserved == 8 and "observable" in half_epoch.reason
    # the value at a budget between two records is interpolated linearly on the axis
    final, rows = _frames(results)
    curves = claims_mod.Curves(final, rows)
    cid = final[final["optimizer"] == "sgd"]["cell_id"].iloc[0]
    x, y = curves.points(cid, "epoch", "train_loss")
    assert curves.read(cid, spec, "epoch", 2.5, np.inf) == pytest.approx((y[2] + y[3]) / 2)


def test_bgd_late_says_when_matched_updates_cannot_be_measured():
    got = _evaluate(synthetic_results(**SMALL), BUILTIN["bgd-late"])["bgd-late"]
    updates = [b for b in got.budgets if b.budget.axis == "updates"][0]
    assert updates.evidence is None and "no budget of this kind" in updates.reason


def test_area_statistic_is_the_mean_over_the_budget():
    results = synthetic_results(**SMALL)
    final, rows = _frames(results)
    curves = claims_mod.Curves(final, rows)
    cid = final["cell_id"].iloc[0]
    x, y = curves.points(cid, "epoch", "train_loss")
    spec = _claim(statistic="area")
    expected = np.trapezoid(y, x) / x[-1] if hasattr(np, "trapezoid") else np.trapz(y, x) / x[-1]
    assert curves.read(cid, spec, "epoch", float(x[-1]), np.inf) == pytest.approx(expected)


def test_a_diverged_run_counts_as_the_worst_value():
    results = synthetic_results(**SMALL)
    bgd = (results["optimizer"] == "bgd") & (results["phase"] == "final")
    results.loc[bgd, "status"] = "diverged"
    results = results[~(bgd & (results["epoch"] > 2))]
    results.loc[bgd & (results["epoch"] == 2), "train_loss"] = np.inf
    got = _evaluate(results, _claim(description="x"), BUILTIN["bgd-late"])
    assert got["test-claim"].headline.verdict == stats.HOLDS        # sgd lower than a diverged bgd
    assert got["bgd-late"].headline.verdict == stats.FAILS
    assert got["bgd-late"].headline.evidence.median == -np.inf


def test_between_direction():
    got = _evaluate(synthetic_results(**SMALL), BUILTIN["minibatch-between"])["minibatch-between"]
    assert got.headline.verdict == stats.HOLDS
    slow = {"minibatch": {"rate": 0.01, "floor": 0.5, "seconds": 0.001, "updates": 4}}
    got = _evaluate(synthetic_results(behaviour=slow, **SMALL), BUILTIN["minibatch-between"])["minibatch-between"]
    assert got.headline.verdict == stats.FAILS


def test_applies_selects_sections_by_stored_properties_not_names():
    results = synthetic_results(datasets=("balanced", "skewed"), losses=("ce", "wce"), seeds=tuple(range(8)),
                                epochs=3, extras=False)
    balanced = json.dumps([[45, 5], [5, 45]])
    results.loc[results["dataset"] == "balanced", "test_confusion"] = balanced
    got = _evaluate(results, BUILTIN["wce-recall"])["wce-recall"]
    assert set(got.pairs["family"]) == {"skewed"}
    assert got.headline.verdict == stats.HOLDS and len(got.pairs) == 5 * 8


def test_a_section_contradicting_the_rest_blocks_a_pooled_holds():
    results = synthetic_results(datasets=("a", "b", "c"), losses=("ce",), seeds=tuple(range(8)), epochs=4,
                                extras=False)
    flip = (results["dataset"] == "c") & (results["optimizer"] == "bgd") & (results["epoch"] >= 1)
    results.loc[flip, "train_loss"] = 1e-3
    got = _evaluate(results, _claim())["test-claim"].headline
    assert got.evidence.support == 16 and got.evidence.against == 8
    assert got.verdict == stats.INCONCLUSIVE and "disagree" in got.reason
    assert got.sections["a / ce"][0] == stats.HOLDS and got.sections["c / ce"][0] == stats.FAILS


@pytest.mark.slow
def test_holm_runs_across_the_claims_given():
    results = synthetic_results(**{**SMALL, "seeds": tuple(range(6))})
    one = _evaluate(results, _claim())["test-claim"].headline
    assert one.verdict == stats.HOLDS                                 # 6 of 6: p = 0.031 <= 0.05
    six = _evaluate(results, _claim(), *[s for s in CLAIMS if s.name != "wce-recall"])["test-claim"].headline
    assert six.p_adj > one.p_adj and six.verdict == stats.INCONCLUSIVE and "too few pairs" in six.reason


# --------------------------------------------------------------------------- specs and the page
def test_claim_spec_rejects_nonsense():
    with pytest.raises(ValueError):
        _claim(direction="sideways")
    with pytest.raises(ValueError):
        _claim(direction="between")                 # needs c
    with pytest.raises(ValueError):
        _claim(b="sgd")
    with pytest.raises(ValueError):
        Budget("epoch", fraction=0.5, value=2)
    with pytest.raises(ValueError):
        Budget("wallclock", fraction=0.5)


def test_builtin_claims_register_through_the_hook():
    from harness_plugins import claims as plugin

    seen = []
    plugin.register_claims(seen.append)
    assert [c.name for c in seen] == [c.name for c in CLAIMS] and len(seen) == 11   # 6 + the 5 of the lecture preset
    assert all(isinstance(c, ClaimSpec) for c in seen)


@pytest.mark.slow
def test_the_page_shows_only_the_claims_it_is_given(tmp_path):
    custom = _claim(name="momentum-early", description="Custom <b>claim</b> from a plugin",
                    lecture="A third party's <i>statement</i>", budgets=(Budget("epoch", value=1),
                                                                          Budget("samples_seen", fraction=0.5)))
    results = synthetic_results(datasets=("digits",), losses=("ce",), optimizers=("sgd", "bgd"),
                                seeds=tuple(range(8)), epochs=3, extras=False)
    page = build_report(tmp_path, results=results, manifest={"sweep": "custom"}, claims=[custom])
    text = page.read_text(encoding="utf-8")
    assert "Custom &lt;b&gt;claim&lt;/b&gt; from a plugin" in text and "<b>claim" not in text
    assert "A third party&#39;s &lt;i&gt;statement&lt;/i&gt;" in text
    for spec in CLAIMS:
        assert spec.title not in text
    table = pd.read_csv(tmp_path / "tables" / "claims.csv")
    assert list(table["claim"]) == ["Custom <b>claim</b> from a plugin"]
    assert table["verdict"].iloc[0] == stats.HOLDS and table["pairs"].iloc[0] == 8
    assert "50% of the samples seen" in text and "Holm" in text and "bootstrap" in text


@pytest.mark.slow
def test_builtin_claims_on_curves_built_to_make_them_true_or_false():
    data = dict(SMALL, losses=("ce", "wce"))
    got = _evaluate(synthetic_results(**data), *CLAIMS)
    expected = {"sgd-early": stats.HOLDS, "bgd-late": stats.FAILS, "sgd-vs-point": stats.HOLDS,
                "minibatch-between": stats.HOLDS, "wce-recall": stats.HOLDS, "batch-norm": stats.HOLDS}
    assert {name: got[name].headline.verdict for name in expected} == expected
    fast_bgd = {"bgd": {"rate": 3.0, "floor": 0.01, "seconds": 0.001, "updates": 1}}
    flipped = _evaluate(synthetic_results(behaviour=fast_bgd, **data), *CLAIMS)
    assert flipped["sgd-early"].headline.verdict == stats.FAILS
    assert flipped["bgd-late"].headline.verdict == stats.HOLDS
    no_point = _evaluate(synthetic_results(**{**data, "optimizers": ("sgd", "bgd")}), *CLAIMS)
    assert no_point["sgd-vs-point"].headline.verdict == stats.INCONCLUSIVE
    assert "no runs with optimizer = point" in no_point["sgd-vs-point"].headline.reason


def test_the_report_names_no_builtin_plugin():
    import harness.report

    names = ("sgd", "bgd", "point", "minibatch", "minibatch-bn", "ce", "wce", "digits", "iris")
    pattern = "|".join(names)
    folder = Path(harness.report.__file__).parent
    files = list(folder.glob("*.py")) + list((folder / "templates").glob("*"))
    assert len(files) > 5
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not re.search(rf"""["']({pattern})["']""", text), f"{path.name} names a built-in plugin"
        assert not re.search(r"face[-_ ]?vs|faces?\b", text, re.I), f"{path.name} names the face dataset"


def test_the_documented_third_party_claim_works():
    docs = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = docs[docs.index("## 7. Claims"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/reports.md", "exec"), namespace)
    registered = []
    namespace["register_claims"](registered.append)
    (spec,) = registered
    results = synthetic_results(**{**SMALL, "optimizers": ("sgd", "minibatch")})
    results["optimizer"] = results["optimizer"].replace({"minibatch": "momentum"})
    got = _evaluate(results, spec)["momentum-early"]
    assert len(got.pairs) == 8 and [b.budget.label for b in got.budgets] == [
        "epoch 1", "25% of the epochs", "100% of the samples seen"]
    assert all(b.evidence is not None for b in got.budgets)


def test_a_batch_size_grid_pairs_each_batch_size_with_its_own():
    def variant(size: int) -> pd.DataFrame:
        part = synthetic_results(**{**SMALL, "optimizers": ("sgd", "bgd", "minibatch", "minibatch-bn")})
        part = part[part["optimizer"].str.startswith("minibatch")].copy()
        part["optimizer_params"] = json.dumps({"batch_size": size})
        part["cell_id"] = part["cell_id"] + f"-{size}"
        return part

    base = synthetic_results(**{**SMALL, "optimizers": ("sgd", "bgd")})
    results = pd.concat([base, variant(16), variant(64)], ignore_index=True)
    final, _ = _frames(results)
    bn, _ = claims_mod.pair_table(final, BUILTIN["batch-norm"])
    assert len(bn) == 2 * 8                         # 16 with 16, 64 with 64; never 16 with 64
    params = final.set_index("cell_id")["optimizer_params"]
    assert (bn["cell_0"].map(params).to_numpy() == bn["cell_1"].map(params).to_numpy()).all()
    assert bn["stratum"].nunique() == 2
    between, _ = claims_mod.pair_table(final, BUILTIN["minibatch-between"])
    assert len(between) == 2 * 8 and between["stratum"].str.contains("batch_size=16").sum() == 8
