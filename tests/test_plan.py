"""Plan expansion, skips with reasons, order-independent cell ids and the tuning rule."""
import math

import pytest

from harness.sweep.config import load_config
from harness.sweep.plan import Group, build_plan, cell_id, final_cells, format_plan, select_lr
from harness.learning.runconfig import RunConfig
from harness.plugin.loader import load_registry


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def config(registry, sets=(), **overrides):
    base = {"datasets": "iris,wine", "losses": "ce,bce", "optimizers": "bgd,minibatch,minibatch-bn",
            "seeds": "3", "epochs": "2"}
    base.update(overrides)
    return load_config(sets=list(sets), overrides=base, registry=registry)


def test_expansion_counts_and_skips(registry):
    cfg = config(registry, sets=["run.lr=0.1,0.3", "optimizer.minibatch.batch_size=8,16",
                                 "run.hidden=none,16", "tune.seeds=0"])
    plan = build_plan(cfg, registry)
    # groups: 2 datasets x 2 losses x (bgd 2 hidden + minibatch 2 bs x 2 hidden + bn 2 hidden)
    assert len(plan.groups) == 2 * 2 * (2 + 4 + 2)
    # tune: each group x 2 lrs x 1 tune seed
    assert len(plan.tune) == len(plan.groups) * 2
    skipped = [c for c in plan.tune if c.skip]
    # minibatch-bn with no hidden layer is refused, with the plugin's reason
    assert {(c.config.optimizer, c.config.hidden) for c in skipped} == {("minibatch-bn", ())}
    assert all("hidden layer" in c.skip for c in skipped)
    assert len(skipped) == 2 * 2 * 2
    # refused groups are recorded in the final phase too, once per seed, and are not tuned further
    assert {c.config.seed for c in plan.final} == {0, 1, 2}
    assert all(c.skip and math.isnan(c.config.lr) for c in plan.final)
    assert len(plan.final) == 2 * 2 * 3
    # every cell id is unique
    ids = [c.id for c in plan.tune + plan.final]
    assert len(ids) == len(set(ids))
    text = format_plan(plan)
    assert "SKIPPED: optimizer 'minibatch-bn': batch normalisation needs a hidden layer" in text
    assert "cells to train" in text


def test_refusal_depending_on_a_param(registry):
    cfg = config(registry, sets=["optimizer.minibatch-bn.batch_size=1,4", "run.lr=0.1"], optimizers="minibatch-bn",
                 datasets="iris", losses="ce")
    plan = build_plan(cfg, registry)
    # a single lr (not tuned): final cells directly, the batch_size=1 ones skipped
    assert not plan.tune
    skipped = {dict(c.config.optimizer_params)["batch_size"] for c in plan.final if c.skip}
    assert skipped == {1}
    assert sum(c.skip is None for c in plan.final) == 3


def test_cell_ids_do_not_depend_on_plan_order(registry):
    a = build_plan(config(registry, sets=["run.lr=0.1,0.3"]), registry)
    b = build_plan(config(registry, sets=["run.lr=0.3,0.1"], datasets="wine,iris", losses="bce,ce",
                          optimizers="minibatch-bn,minibatch,bgd", seeds="2,0,1"), registry)
    assert {c.id for c in a.tune} == {c.id for c in b.tune}
    assert {c.id for c in a.final} == {c.id for c in b.final}


def test_cell_id_depends_on_config_and_phase():
    c = RunConfig.make("iris", "ce", "bgd", seed=1, lr=0.1)
    assert cell_id(c, "tune") == cell_id(RunConfig.make("iris", "ce", "bgd", seed=1, lr=0.1), "tune")
    assert cell_id(c, "tune") != cell_id(c, "final")
    assert cell_id(c, "tune") != cell_id(RunConfig.make("iris", "ce", "bgd", seed=2, lr=0.1), "tune")
    assert cell_id(c, "tune") != cell_id(RunConfig.make("iris", "ce", "bgd", seed=1, lr=0.1,
                                                        dataset_params={"max_samples": 10}), "tune")


def test_plugin_defaults_are_resolved_into_the_config(registry):
    plan = build_plan(config(registry, ["run.lr=0.1"], optimizers="minibatch", losses="wce", datasets="iris"), registry)
    c = plan.final[0].config
    assert dict(c.optimizer_params)["batch_size"] == 32
    assert "normalisation" in dict(c.loss_params)
    assert {"test_fraction", "val_fraction", "imbalance", "max_samples"} <= set(dict(c.dataset_params))


def group(grid=(0.01, 0.1, 1.0)):
    return Group(RunConfig.make("iris", "ce", "sgd"), tuple(grid))


def val(status, value, metric="val_loss"):
    return (status, {metric: value})


def test_select_lr_lowest_val_loss_among_finished_runs():
    outcomes = {(0.01, 0): val("done", 0.5), (0.1, 0): val("stopped", 0.2), (1.0, 0): val("diverged", 0.01)}
    lr, why, scores = select_lr((0.01, 0.1, 1.0), outcomes, "val_loss", (0,))
    assert lr == 0.1                      # the diverged run is not eligible even with a lower loss
    assert math.isnan(scores[1.0]) and "val_loss" in why


def test_select_lr_averages_tuning_seeds_and_breaks_ties_to_smaller_lr():
    outcomes = {(0.01, 0): val("done", 0.3), (0.01, 1): val("done", 0.1),
                (0.1, 0): val("done", 0.1), (0.1, 1): val("done", 0.3)}
    lr, _, scores = select_lr((0.01, 0.1), outcomes, "val_loss", (0, 1))
    assert scores[0.01] == pytest.approx(0.2) and scores[0.1] == pytest.approx(0.2)
    assert lr == 0.01
    # a missing or non-finite run on one tuning seed makes the lr ineligible
    outcomes[(0.01, 1)] = val("done", None)
    assert select_lr((0.01, 0.1), outcomes, "val_loss", (0, 1))[0] == 0.1


def test_select_lr_metric_direction_and_no_candidate():
    g = group((0.01, 0.1))
    outcomes = {(0.01, 0): val("done", 0.9, "val_accuracy"), (0.1, 0): val("done", 0.8, "val_accuracy")}
    assert select_lr(g.lr_grid, outcomes, "val_accuracy", (0,))[0] == 0.01
    bad = {(0.01, 0): val("diverged", None), (0.1, 0): val("error", None)}
    lr, why, _ = select_lr(g.lr_grid, bad, "val_loss", (0,))
    assert lr is None and "diverged" in why and "error" in why
    cells = final_cells(g, None, (0, 1), why)
    assert all(c.skip == why for c in cells) and len(cells) == 2


def test_final_cells_run_the_chosen_lr_on_every_seed(registry):
    cells = final_cells(group(), 0.1, (0, 1, 2), registry=registry)
    assert [(c.config.lr, c.config.seed, c.phase) for c in cells] == [(0.1, s, "final") for s in (0, 1, 2)]
