"""The tuning protocol: declared and default grids, objectives, per-seed tuning, grid extension, resume."""
import json
import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.plugin.specs import OptimizerSpec
from harness.results.store import read_results, results_dir
from harness.sweep.config import DEFAULT_LR_GRID, load_config
from harness.sweep.plan import ONCE, choose, edge_sides, next_rate, objective_values
from harness.testing import check_optimizer_lr_grid

# convex model (no hidden layer) on iris, full-batch GD: fast and deterministic
# tune.per_seed=true: these tests are about per-seed tuning (the default preset tunes on a held-out seed)
CONVEX = ["--datasets", "iris", "--losses", "ce", "--optimizers", "bgd", "--epochs", "5",
          "--set", "run.hidden=none", "--set", "tune.per_seed=true", "--quiet", "--no-report", "--jobs", "1"]

# an optimizer whose step blows up past lr 1 (a cliff): full-batch GD below it
CLIFF = """
    import numpy as np
    import harness
    from harness.plugin.specs import OptimizerSpec

    class Cliff:
        def batches(self, n, rng):
            yield np.arange(n)

        def step(self, params, grads, lr):
            for p, g in zip(params, grads):
                p -= (lr * 1e12 if lr > 1.0 else lr) * g

    @harness.hookimpl
    def register_optimizers(register):
        register(OptimizerSpec(name="cliff", description="GD that diverges past lr 1", factory=Cliff,
                               lr_grid=(0.1, 0.3, 1.0)))
        register(OptimizerSpec(name="nogrid", description="GD without a declared grid", factory=Cliff))
"""


@pytest.fixture(scope="module")
def registry():
    from harness.plugin.loader import load_registry

    return load_registry()


def manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def last_rows(folder):
    return read_results(folder).groupby("cell_id", sort=False).tail(1).reset_index(drop=True)


# --------------------------------------------------------------------------- pure rules
def test_next_rate_keeps_the_log_spacing_of_the_edge_step():
    assert next_rate((0.01, 0.1, 1.0), "low") == pytest.approx(0.001)
    assert next_rate((0.01, 0.1, 1.0), "high") == pytest.approx(10.0)
    assert next_rate((0.03, 0.1, 0.3), "high") == pytest.approx(0.9)


def test_objectives_are_read_from_one_run():
    rows = pd.DataFrame({"epoch": [0, 1, 2], "train_loss": [3.0, 1.0, 2.0], "val_loss": [4.0, 1.5, 2.5],
                         "val_accuracy": [0.2, 0.9, 0.7], "status": ["done"] * 3})
    status, values = objective_values(rows)
    assert status == "done"
    assert values["train_loss"] == 2.0 and values["train_loss_auc"] == pytest.approx(2.0)
    assert values["val_loss"] == 2.5 and values["val_loss_best"] == 1.5
    assert values["val_accuracy"] == 0.7 and values["val_accuracy_best"] == 0.9
    assert values["val_minority_recall"] is None     # not stored: no value, never a guess


def test_choices_per_seed_and_once_and_their_edges():
    grid = (0.01, 0.1, 1.0)
    outcomes = {(0.01, 0): ("done", {"val_loss": 0.1}), (0.1, 0): ("done", {"val_loss": 0.5}),
                (1.0, 0): ("done", {"val_loss": 0.9}),
                (0.01, 1): ("done", {"val_loss": 0.9}), (0.1, 1): ("done", {"val_loss": 0.3}),
                (1.0, 1): ("done", {"val_loss": 0.2})}
    per_seed = choose(grid, outcomes, ["val_loss"], (0, 1), per_seed=True)
    assert {s: lr for s, (lr, _) in per_seed["val_loss"].items()} == {0: 0.01, 1: 1.0}
    assert edge_sides(grid, per_seed) == {"low", "high"}
    once = choose(grid, outcomes, ["val_loss"], (0, 1), per_seed=False)     # means 0.5, 0.4, 0.55
    assert once["val_loss"][ONCE][0] == 0.1 and edge_sides(grid, once) == set()


# --------------------------------------------------------------------------- declared and default grids
def test_a_declared_grid_must_be_increasing_positive_rates():
    with pytest.raises(ValueError, match="lr_grid"):
        OptimizerSpec(name="x", description="x", factory=object, lr_grid=(0.1, 0.01, 1.0))
    with pytest.raises(ValueError, match="lr_grid"):
        OptimizerSpec(name="x", description="x", factory=object, lr_grid=(0.0, 0.1))
    assert OptimizerSpec(name="x", description="x", factory=object, lr_grid=[0.01, 0.1]).lr_grid == (0.01, 0.1)


def test_the_kit_checks_a_declared_grid():
    def spec(grid):
        return OptimizerSpec(name="x", description="x", factory=object, lr_grid=grid)

    check_optimizer_lr_grid(spec(()))                        # none declared: the sweep's default applies
    check_optimizer_lr_grid(spec((0.001, 0.003, 0.01, 0.03)))
    with pytest.raises(AssertionError, match="at least 3"):
        check_optimizer_lr_grid(spec((0.01, 0.1)))
    with pytest.raises(AssertionError, match="log-spaced"):
        check_optimizer_lr_grid(spec((0.001, 0.002, 0.5, 1.0)))


def test_the_built_in_optimizers_declare_sane_grids(registry):
    for name in ("bgd", "point", "sgd", "minibatch", "minibatch-bn"):
        spec = registry.optimizers[name]
        assert len(spec.lr_grid) >= 3
        check_optimizer_lr_grid(spec)


def test_grid_precedence(registry):
    def grid(sets=(), **overrides):
        cfg = load_config(sets=list(sets), overrides={"datasets": "iris", "losses": "ce",
                                                      "optimizers": "bgd,sgd", **overrides}, registry=registry)
        return {o: (cfg.lr_source(o), cfg.lr_grid(o)) for o in ("bgd", "sgd")}

    assert grid()["bgd"] == ("plugin", registry.optimizers["bgd"].lr_grid)
    assert grid(lr="0.01,0.1")["bgd"] == ("run.lr", (0.01, 0.1))
    both = grid(["tune.lr.bgd=0.5,1,2"], lr="0.01,0.1")          # tune.lr.<optimizer> wins over run.lr
    assert both["bgd"] == ("config", (0.5, 1.0, 2.0)) and both["sgd"] == ("run.lr", (0.01, 0.1))


def test_a_plugin_grid_is_used_and_a_missing_one_gets_the_default_flagged(tmp_path, fake_dist, capsys):
    fake_dist("harness-cliff", "harness_cliff_opt", CLIFF)
    code = main(["sweep", "--out", str(tmp_path), "--name", "d", *CONVEX[:4], "--optimizers", "cliff,nogrid",
                 "--seeds", "2", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "iris / ce / cliff: tune lr in [0.1, 0.3, 1]" in out
    default = ", ".join(f"{x:g}" for x in DEFAULT_LR_GRID)
    assert f"iris / ce / nogrid: tune lr in [{default}]" in out
    assert f"default lr grid [{default}] (no grid declared or configured): nogrid" in out
    assert "cliff" not in out.split("default lr grid")[1].splitlines()[0]


# --------------------------------------------------------------------------- grid extension
@pytest.mark.slow
def test_extension_ends_interior_when_the_best_rate_starts_at_the_low_edge(tmp_path):
    # on this convex problem the area under the training loss is best near lr 3 (measured): the grid
    # 10, 30, 100 has its best at the low edge, and extending downwards finds an interior best
    code = main(["sweep", "--out", str(tmp_path), "--name", "x", *CONVEX, "--seeds", "1",
                 "--set", "tune.lr.bgd=10,30,100", "--set", "tune.metric=train_loss_auc"])
    assert code == 0
    (entry,) = manifest(tmp_path / "x")["tuning"]
    assert entry["base_grid"] == [10.0, 30.0, 100.0]
    assert entry["extensions"]["low"] >= 1 and entry["extensions"]["high"] == 0
    assert entry["lr_grid"][0] < 10.0
    chosen = entry["chosen"]["train_loss_auc"]["0"]
    assert entry["lr_grid"][0] < chosen < entry["lr_grid"][-1] and entry["edges"] == []
    # the extension rates are ordinary stored tuning cells, the same log step apart
    tune = last_rows(tmp_path / "x").query("phase == 'tune'")
    assert sorted(tune["lr"]) == pytest.approx(sorted(entry["lr_grid"]))
    ratios = np.diff(np.log(entry["lr_grid"]))
    assert np.allclose(ratios[:entry["extensions"]["low"]], ratios[entry["extensions"]["low"]], rtol=1e-6)


@pytest.mark.slow
def test_extension_stops_at_a_diverging_rate(tmp_path, fake_dist):
    fake_dist("harness-cliff", "harness_cliff_opt", CLIFF)
    code = main(["sweep", "--out", str(tmp_path), "--name", "c", *CONVEX[:4], "--optimizers", "cliff",
                 *CONVEX[6:], "--seeds", "1", "--set", "tune.metric=train_loss"])
    assert code == 0
    (entry,) = manifest(tmp_path / "c")["tuning"]
    assert entry["grid_source"] == "plugin" and entry["base_grid"] == [0.1, 0.3, 1.0]
    assert entry["extensions"] == {"low": 0, "high": 1}          # one step past 1.0, which diverged
    last = last_rows(tmp_path / "c")
    beyond = last[(last.phase == "tune") & (last.lr > 1.0)]
    assert len(beyond) == 1 and beyond.status.iloc[0] == "diverged"
    assert entry["chosen"]["train_loss"]["0"] == 1.0 and entry["edges"] == []


@pytest.mark.slow
def test_a_choice_still_at_an_edge_after_the_limit_is_flagged(tmp_path, capsys):
    args = ["sweep", "--out", str(tmp_path), "--name", "f", *CONVEX, "--seeds", "1",
            "--set", "tune.lr.bgd=0.001,0.002,0.004", "--set", "tune.metric=train_loss",
            "--set", "tune.max_extensions=2"]
    assert main(args) == 0
    (entry,) = manifest(tmp_path / "f")["tuning"]
    assert entry["extensions"] == {"low": 0, "high": 2}
    assert entry["lr_grid"][-1] == pytest.approx(0.016)
    assert entry["edges"] == [{"objective": "train_loss", "seed": 0, "side": "high", "lr": entry["lr_grid"][-1]}]
    capsys.readouterr()
    assert main(args + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "still at a grid edge after the limit:" in out
    assert "iris / ce / bgd: train_loss seed 0 chose lr=0.016, the largest of its grid after 2 extension(s)" in out


@pytest.mark.slow
def test_resume_after_an_interrupted_extension_does_not_rerun_stored_cells(tmp_path):
    args = ["sweep", "--out", str(tmp_path), "--name", "r", *CONVEX, "--seeds", "1",
            "--set", "tune.lr.bgd=0.001,0.002,0.004", "--set", "tune.metric=train_loss",
            "--set", "tune.max_extensions=3"]
    assert main(args) == 0
    folder = tmp_path / "r"
    last = last_rows(folder)
    tune = last[last.phase == "tune"].sort_values("lr")
    assert len(tune) == 6
    # as if killed during the second extension round: its cell, later ones and the final cells are missing
    lost = set(tune.cell_id.iloc[4:]) | set(last[last.phase == "final"].cell_id)
    for cid in lost:
        (results_dir(folder) / f"{cid}.parquet").unlink()
    data = manifest(folder)
    data["status"] = "running"
    (folder / "manifest.json").write_text(json.dumps(data))
    kept = {cid: (results_dir(folder) / f"{cid}.parquet").stat().st_mtime_ns for cid in set(last.cell_id) - lost}
    assert main(args) == 0
    assert {cid: (results_dir(folder) / f"{cid}.parquet").stat().st_mtime_ns for cid in kept} == kept
    assert set(last_rows(folder).cell_id) == set(last.cell_id)       # the lost cells ran again, nothing else
    assert manifest(folder)["status"] == "complete"


# --------------------------------------------------------------------------- objectives and seeds
@pytest.mark.slow
def test_objectives_choose_from_the_same_runs(tmp_path):
    common = [*CONVEX, "--seeds", "2", "--set", "tune.lr.bgd=0.1,1,10", "--set", "tune.max_extensions=0",
              "--set", "tune.per_seed=false", "--set", "tune.seeds=0"]
    assert main(["sweep", "--out", str(tmp_path), "--name", "one", *common, "--set", "tune.metric=val_loss"]) == 0
    objectives = ["val_loss", "train_loss", "train_loss_auc", "val_loss_best"]
    assert main(["sweep", "--out", str(tmp_path), "--name", "all", *common,
                 "--set", f"tune.metric={','.join(objectives)}"]) == 0
    one, every = last_rows(tmp_path / "one"), last_rows(tmp_path / "all")
    assert (one.phase == "tune").sum() == (every.phase == "tune").sum() == 3     # no extra tuning runs
    m = manifest(tmp_path / "all")
    rows = read_results(tmp_path / "all")
    tune = rows[rows.phase == "tune"]
    final = every[every.phase == "final"].set_index("cell_id")
    for objective in objectives:
        # recompute each choice independently from the stored tuning rows
        per_lr = tune.groupby("lr").apply(lambda g: {
            "val_loss": g.val_loss.iloc[-1], "train_loss": g.train_loss.iloc[-1],
            "train_loss_auc": g.train_loss.mean(), "val_loss_best": g.val_loss.min()}[objective])
        expected = float(per_lr.idxmin())
        assert m["tuning"][0]["chosen"][objective] == expected
        picked = final.loc[m["selection"][objective]]
        assert set(picked.lr) == {expected} and sorted(picked.seed) == [0, 1]
    # identical final configs chosen by several objectives run once
    distinct = {m["tuning"][0]["chosen"][o] for o in objectives}
    assert len(final) == 2 * len(distinct)


@pytest.mark.slow
def test_per_seed_tuning_picks_per_seed_and_reuses_the_runs(tmp_path):
    assert main(["sweep", "--out", str(tmp_path), "--name", "p", *CONVEX, "--seeds", "3",
                 "--set", "tune.lr.bgd=0.1,1,10", "--set", "tune.max_extensions=0",
                 "--set", "tune.metric=val_loss"]) == 0
    m = manifest(tmp_path / "p")
    assert m["tuning_protocol"]["per_seed"] is True
    rows = read_results(tmp_path / "p")
    tune, final = rows[rows.phase == "tune"], rows[rows.phase == "final"]
    assert tune.cell_id.nunique() == 3 * 3 and final.cell_id.nunique() == 3
    chosen = m["tuning"][0]["chosen"]["val_loss"]
    for seed in (0, 1, 2):
        mine = tune[tune.seed == seed]
        expected = float(mine.groupby("lr").val_loss.last().idxmin())
        assert chosen[str(seed)] == expected
        # the final run of this seed is its tuning run at its rate: the same records, not a new run
        f = final[final.seed == seed]
        t = mine[mine.lr == expected]
        cols = [c for c in rows.columns if c not in ("phase", "cell_id")]
        pd.testing.assert_frame_equal(t[cols].reset_index(drop=True), f[cols].reset_index(drop=True))


def test_the_test_split_stays_out_of_tuning():
    rows = pd.DataFrame({"train_loss": [1.0, 0.5], "val_loss": [1.0, 0.8], "test_loss": [0.0, -1.0],
                         "test_minority_recall": [1.0, 1.0], "status": ["done", "done"]})
    _, values = objective_values(rows)
    assert not any(name.startswith("test") for name in values)
    changed = rows.assign(test_loss=[9.0, 9.0], test_minority_recall=[0.0, 0.0])
    assert objective_values(changed)[1] == values


# --------------------------------------------------------------------------- the report's choice of runs
@pytest.mark.slow
def test_the_report_reads_the_runs_tuned_for_each_objective(tmp_path):
    from harness.report.frames import tuned_for

    runs = pd.DataFrame({"cell_id": ["a", "b", "c"], "lr": [0.1, 1.0, 0.1]})
    manifest_ = {"selection": {"val_loss": ["a", "c"], "train_loss_auc": ["b", "c"]}}
    picked, used = tuned_for(runs, manifest_, "train_loss_auc")
    assert list(picked.cell_id) == ["b", "c"] and used == "train_loss_auc"
    picked, used = tuned_for(runs, manifest_, "val_loss_best")       # not tuned for: the tables' objective
    assert list(picked.cell_id) == ["a", "c"] and used == "val_loss"
    assert tuned_for(runs, {}, "val_loss")[0] is runs                  # no record: every final run

    assert main(["sweep", "--out", str(tmp_path), "--name", "rep", *CONVEX[:4], "--optimizers", "bgd,sgd",
                 *CONVEX[6:-3], "--jobs", "1", "--quiet", "--seeds", "2", "--set", "tune.max_extensions=0",
                 "--set", "tune.lr.bgd=0.3,1,3", "--set", "tune.lr.sgd=0.01,0.03,0.1"]) == 0
    folder = tmp_path / "rep"
    m = manifest(folder)
    assert set(m["selection"]) == {"val_loss_best", "train_loss_auc"}   # the claims' objective plus the tables'
    claims = pd.read_csv(folder / "tables" / "claims.csv")
    tuned = dict(zip(claims.claim, claims["tuned for"]))
    assert tuned["BGD reaches a lower loss after many epochs"] == "train_loss_auc"
    # wce is not in this sweep, but val_loss_best was tuned for (the tables' objective): the claim says so
    assert tuned["WCE raises the minority recall over CE on imbalanced data"] == "val_loss_best"
    html = (folder / "index.html").read_text()
    assert "Learning-rate tuning" in html and "lr for train_loss_auc" in html
    tuning = pd.read_csv(folder / "tables" / "tuning.csv")
    assert len(tuning) == 2 and set(tuning["grid"]) == {"config"}
