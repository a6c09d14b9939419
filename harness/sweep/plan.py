"""The sweep plan: cells = dataset x loss x optimizer x hyper-parameter grid x seed.

A *group* is one (dataset, loss, optimizer, non-learning-rate grid point). Its
learning rate is tuned on the validation split (phase ``"tune"``: every lr of
its grid on the tuning seeds), then the chosen rates run on every seed (phase
``"final"``). A group whose lr grid has one value is not tuned: its final cells
are known at once.

Tuning protocol (docs/sweep.md states every rule):

* the grid comes from ``tune.lr.<optimizer>``, else ``run.lr``, else the
  optimizer's declared ``lr_grid``, else ``DEFAULT_LR_GRID`` (flagged);
* each *objective* (:data:`TUNE_METRICS`) is read from the same tuning runs
  (:func:`objective_values`) and chooses its own rate (:func:`select_lr`), once
  for all seeds on the tuning seeds or per seed on each seed's own runs;
* a choice at the grid's edge extends the grid one log step that way
  (:func:`next_rate`) until the choice is interior, the rate beyond it does not
  finish (a diverged run is not eligible, so the choice stops being the edge),
  or ``max_extensions`` per side are spent; what is still at an edge is flagged.

The test split is never looked at. A cell's id hashes its fully resolved
``RunConfig`` (plugin defaults included, so a changed default reruns it) and
its phase: it does not depend on the order of the plan, so resume, extension
and distribution need no bookkeeping.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Sequence

from harness.learning.runconfig import RUN_PARAMS, RunConfig, resolve_run, run_problem, validate_run
from harness.learning.split import PREPROCESS_PARAMS
from harness.sweep.config import DEFAULT_LR_GRID, TUNE_METRICS, SweepConfig
from harness.learning.checks import refusal

__all__ = ["Cell", "Group", "Plan", "cell_id", "build_plan", "single_run", "select_lr", "final_cells",
           "format_plan", "objective_values", "choose", "edge_sides", "next_rate", "tune_cells", "ONCE"]

# RunConfig fields a sweep grids over (besides lr, which is tuned, and seed)
GRID_FIELDS = tuple(p.name for p in RUN_PARAMS if p.name != "lr")
SCHEDULE_FIELDS = ("schedule", "decay", "step_every")


def cell_id(config: RunConfig, phase: str) -> str:
    """A stable short hash of the cell: canonical JSON of the config plus the phase."""
    payload = json.dumps({"config": config.to_dict(), "phase": phase}, sort_keys=True,
                         separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Cell:
    """One training run of the sweep; ``skip`` holds the reason when it cannot run."""

    config: RunConfig
    phase: str
    skip: str | None = None

    @property
    def id(self) -> str:
        return cell_id(self.config, self.phase)

    def label(self) -> str:
        c = self.config
        extra = [f"{k}={v}" for k, v in (*c.optimizer_params, *c.loss_params)]
        return (f"{self.phase:5s} {c.dataset} / {c.loss} / {c.optimizer} lr={c.lr:g} seed={c.seed}"
                + (f" [{', '.join(extra)}]" if extra else ""))


@dataclass(frozen=True)
class Group:
    """A (dataset, loss, optimizer, grid point) whose learning rate is chosen once.

    ``base`` is the RunConfig with ``lr`` and ``seed`` still to be filled in.
    """

    base: RunConfig
    lr_grid: tuple
    skip: str | None = None
    point: tuple = ()      # (key, value) of the grid axes with more than one value
    grid_source: str = "config"   # config (tune.lr), run.lr, plugin (OptimizerSpec.lr_grid) or default

    @property
    def tuned(self) -> bool:
        return len(self.lr_grid) > 1

    @property
    def key(self) -> RunConfig:
        """The group's identity: its base config with lr and seed blanked."""
        return replace(self.base, lr=0.0, seed=0)

    def at(self, lr: float, seed: int) -> RunConfig:
        return replace(self.base, lr=float(lr), seed=int(seed))

    def describe(self) -> str:
        """``dataset / loss / optimizer`` plus the grid axes that tell this group from its siblings."""
        text = f"{self.base.dataset} / {self.base.loss} / {self.base.optimizer}"
        return text + "".join(f" {k}={v}" for k, v in self.point)


@dataclass
class Plan:
    """The groups of a sweep and the cells known before tuning."""

    config: SweepConfig
    groups: list
    tune: list        # tune-phase cells (skipped ones included, with their reason)
    final: list       # final cells known up front (untuned or skipped groups)

    def counts(self) -> dict:
        tuned = [g for g in self.groups if g.tuned and not g.skip]
        seeds = set(self.config.seeds)
        return {
            "groups": len(self.groups),
            "tune_cells": len(self.tune),
            "tune_skipped": sum(c.skip is not None for c in self.tune),
            "final_known": len(self.final),
            "final_skipped": sum(c.skip is not None for c in self.final),
            "final_after_tuning": len(tuned) * len(seeds),   # at least: objectives may choose more rates
            "final_reused": len(tuned) * len(seeds & set(self.config.tuning_seeds)),
        }


# --------------------------------------------------------------------------- expansion
def _product(grids: Mapping[str, Sequence]) -> list[dict]:
    names = sorted(grids)
    return [dict(zip(names, values)) for values in itertools.product(*(grids[n] for n in names))]


def _own_grids(config: SweepConfig, kind: str, spec, generic: Sequence = ()) -> dict:
    """The grids that apply to ``spec`` ("*" settings only where the plugin has the param)."""
    known = {p.name for p in spec.params} | {p.name for p in generic}
    return {k: v for k, v in config.param_grids(kind, spec.name).items() if k in known}


class _Schedule(tuple):
    """One point of the schedule axis: (name, decay, step_every)."""

    def __new__(cls, name, decay, step_every):
        return super().__new__(cls, (name, decay, step_every))

    def fields(self) -> dict:
        return {"schedule": self[0], "decay": self[1], "step_every": self[2]}

    def __str__(self) -> str:
        name, decay, every = self
        return name + (f":{decay:g}" if decay or every else "") + (f":{every}" if every else "")


def _check(specs: Iterable, config: RunConfig) -> str | None:
    """The first refusal: the engine's (``run_problem``), then ``harness.learning.checks.refusal``."""
    return run_problem(config) or refusal(specs, config)


def build_plan(config: SweepConfig, registry) -> Plan:
    """Expand the config into groups and the cells known before tuning."""
    generic = PREPROCESS_PARAMS
    run_grids = {name: config.run_grid(name) for name in GRID_FIELDS if name not in SCHEDULE_FIELDS}
    # schedule, decay and step_every form one axis: "inverse:0.001" fixes its own decay
    run_grids["schedule"] = tuple(_Schedule(name, float(d), int(e))
                                  for _, name, d, e in config.schedule_axis())
    groups, tune, final = [], [], []
    for ds_name, loss_name, opt_name in itertools.product(config.datasets, config.losses, config.optimizers):
        ds = registry.datasets[ds_name]
        loss = registry.losses[loss_name]
        opt = registry.optimizers[opt_name]
        specs = (opt, loss, ds)
        points = itertools.product(
            _product(run_grids),
            _product(_own_grids(config, "optimizer", opt)),
            _product(_own_grids(config, "loss", loss)),
            _product(_own_grids(config, "dataset", ds, generic)),
        )
        varying = {f"run.{k}" for k, g in run_grids.items() if len(g) > 1}
        for kind, spec, generic_ in (("optimizer", opt, ()), ("loss", loss, ()), ("dataset", ds, generic)):
            varying |= {f"{kind}.{k}" for k, g in _own_grids(config, kind, spec, generic_).items() if len(g) > 1}
        for run_point, opt_point, loss_point, ds_point in points:
            point = tuple((key, value) for key, value in sorted(
                [(f"run.{k}", _show(v)) for k, v in run_point.items()]
                + [(f"optimizer.{k}", v) for k, v in opt_point.items()]
                + [(f"loss.{k}", v) for k, v in loss_point.items()]
                + [(f"dataset.{k}", v) for k, v in ds_point.items()]) if key in varying)
            lr_grid = tuple(sorted(set(float(x) for x in config.lr_grid(opt_name))))
            settings = {**{k: v for k, v in run_point.items() if k != "schedule"},
                        **run_point["schedule"].fields(), "lr": lr_grid[0]}
            base = resolve_run(ds_name, loss_name, opt_name, registry=registry, seed=config.seeds[0],
                               settings=settings, optimizer_params=opt_point, loss_params=loss_point,
                               dataset_params=ds_point)
            group_skip = None
            group = Group(base, lr_grid, None, point, config.lr_source(opt_name))
            if len(lr_grid) > 1:
                cells = tune_cells(group, lr_grid, config.tuning_seeds, registry)
                tune.extend(cells)
                if all(c.skip for c in cells):
                    group_skip = cells[0].skip
            group = replace(group, skip=group_skip)
            groups.append(group)
            if not group.tuned:
                cells = [Cell(c, "final", _check(specs, c)) for c in (group.at(lr_grid[0], s) for s in config.seeds)]
                final.extend(cells)
                if all(c.skip for c in cells):
                    groups[-1] = replace(group, skip=cells[0].skip)
            elif group_skip:
                final.extend(Cell(group.at(math.nan, s), "final", group_skip) for s in config.seeds)
    return Plan(config, groups, tune, final)


def single_run(config: SweepConfig, registry) -> RunConfig:
    """The one RunConfig of a one-cell config (``harness run``): the cell a sweep would train.

    Engine problems are one-line UsageErrors here; plugin refusals are left to
    the trainer, which raises ``Refused``.
    """
    plan = build_plan(config, registry)
    if len(plan.groups) != 1 or plan.groups[0].tuned or len(config.seeds) != 1:
        raise ValueError("single_run needs a config with exactly one cell")
    run = plan.groups[0].base
    validate_run(run)
    return run


# --------------------------------------------------------------------------- tuning
ONCE = "all"          # the seed key of a choice made once for every seed
OK = ("done", "stopped")


def tune_cells(group: Group, rates: Sequence[float], seeds: Sequence[int], registry=None) -> list[Cell]:
    """The tuning cells of ``group`` at ``rates`` on ``seeds`` (refused ones carry their reason)."""
    cells = []
    for lr in rates:
        for s in seeds:
            config = group.at(lr, s)
            skip = _check(_specs(registry, config), config) if registry is not None else None
            cells.append(Cell(config, "tune", skip))
    return cells


def _specs(registry, config: RunConfig) -> tuple:
    return (registry.optimizers[config.optimizer], registry.losses[config.loss], registry.datasets[config.dataset])


def objective_values(rows, objectives: Iterable[str] = TUNE_METRICS) -> tuple[str, dict]:
    """``(status, {objective: value})`` of one stored run (a frame of its epochs, in order).

    ``X``: the last epoch's value; ``X_best``: the best over the epochs (min for a
    loss, max otherwise); ``train_loss_auc``: the mean training loss over epochs
    0..E (its area under the curve over the epochs). Missing or non-finite -> None.
    """
    status = str(rows["status"].iloc[-1])
    out = {}
    for objective in objectives:
        column = objective.removesuffix("_best").removesuffix("_auc")
        if column not in rows.columns:
            out[objective] = None
            continue
        values = [float(v) for v in rows[column].tolist() if v is not None]
        values = [v for v in values if not math.isnan(v)]
        if not values:
            out[objective] = None
            continue
        if objective.endswith("_auc"):
            value = sum(values) / len(values)
        elif objective.endswith("_best"):
            value = max(values) if TUNE_METRICS[objective] else min(values)
        else:
            value = values[-1]
        out[objective] = value if math.isfinite(value) else None
    return status, out


def select_lr(grid: Sequence[float], outcomes: Mapping[tuple, tuple], metric: str = "val_loss",
              seeds: Sequence[int] = (0,)) -> tuple[float | None, str, dict]:
    """Choose a learning rate of ``grid`` for ``metric`` from the tuning runs on ``seeds``.

    ``outcomes[(lr, seed)] = (status, {objective: value})`` (see
    :func:`objective_values`). A rate is eligible when every one of its runs on
    ``seeds`` ended done or stopped with a finite value; the best mean wins, ties
    go to the smaller rate. Returns ``(lr or None, explanation, scores)`` where
    ``scores[lr]`` is the mean (NaN when not eligible).
    """
    larger_is_better = TUNE_METRICS[metric]
    scores, eligible = {}, []
    for lr in grid:
        runs = [outcomes.get((lr, s)) for s in seeds]
        values = [r[1].get(metric) if r is not None and r[0] in OK else None for r in runs]
        ok = all(v is not None for v in values)
        scores[lr] = sum(values) / len(values) if ok else math.nan
        if ok:
            eligible.append(lr)
    if not eligible:
        statuses = sorted({r[0] for lr in grid for s in seeds if (r := outcomes.get((lr, s))) is not None})
        return None, (f"no learning rate of {[float(x) for x in grid]} finished on seed(s) {list(seeds)} "
                      f"(statuses: {', '.join(statuses) or 'none'})"), scores
    sign = -1.0 if larger_is_better else 1.0
    best = min(eligible, key=lambda lr: (round(sign * scores[lr], 12), lr))
    return best, f"lr={best:g}: best mean {metric} {scores[best]:.6g} on seed(s) {list(seeds)}", scores


def choose(grid: Sequence[float], outcomes: Mapping[tuple, tuple], objectives: Sequence[str],
           seeds: Sequence[int], per_seed: bool) -> dict:
    """``{objective: {seed or ONCE: (lr or None, why)}}``: per seed on each seed's own runs, or once on all."""
    out = {}
    for objective in objectives:
        if per_seed:
            out[objective] = {s: select_lr(grid, outcomes, objective, (s,))[:2] for s in seeds}
        else:
            out[objective] = {ONCE: select_lr(grid, outcomes, objective, seeds)[:2]}
    return out


def edge_sides(grid: Sequence[float], choices: Mapping) -> set:
    """``{"low", "high"}``: the edges of ``grid`` some choice sits on."""
    sides = set()
    for per_seed in choices.values():
        for lr, _ in per_seed.values():
            if lr is not None and lr == grid[0]:
                sides.add("low")
            if lr is not None and lr == grid[-1]:
                sides.add("high")
    return sides


def next_rate(grid: Sequence[float], side: str) -> float:
    """One step past ``grid``'s ``side`` with the spacing of its last step there (log spacing kept)."""
    if side == "low":
        value = grid[0] * grid[0] / grid[1]
    else:
        value = grid[-1] * grid[-1] / grid[-2]
    return float(f"{value:.12g}")   # a short stable spelling: the cell id hashes it


def final_cells(group: Group, lr: float | None, seeds: Sequence[int], reason: str = "",
                registry=None) -> list[Cell]:
    """The final cells of a tuned group: ``lr`` on ``seeds`` (skipped with ``reason`` when None)."""
    if lr is None:
        return [Cell(group.at(math.nan, s), "final", reason) for s in seeds]
    cells = []
    for s in seeds:
        config = group.at(lr, s)
        skip = _check(_specs(registry, config), config) if registry is not None else None
        cells.append(Cell(config, "final", skip))
    return cells


# --------------------------------------------------------------------------- dry run
def format_plan(plan: Plan, stored: Mapping | None = None) -> str:
    """Human-readable plan: one line per group, the skips and the size.

    ``stored`` is the sweep folder's manifest, if any: its grid extensions and
    the choices still at an edge are listed (the plan itself cannot know them).
    """
    cfg = plan.config
    n = plan.counts()
    lines = [*cfg.notes,
        f"sweep {cfg.name!r} -> {cfg.sweep_dir}",
        f"  {len(cfg.datasets)} datasets x {len(cfg.losses)} losses x {len(cfg.optimizers)} optimizers"
        f" -> {n['groups']} groups (grid points included); seeds {', '.join(map(str, cfg.seeds))}",
        "  tuning: " + tuning_text(cfg),
    ]
    defaults = sorted({g.base.optimizer for g in plan.groups if g.tuned and g.grid_source == "default"})
    if defaults:
        grid = ", ".join(f"{x:g}" for x in DEFAULT_LR_GRID)
        lines.append(f"  default lr grid [{grid}] (no grid declared or configured): {', '.join(defaults)}")
    shared = [f"run.{k}={_show(v[0])}" for k, v in sorted(cfg.run.items()) if len(v) == 1 and k != "lr"]
    for kind, table in cfg.plugin_grids.items():
        for name, params in sorted(table.items()):
            shared += [f"{kind}.{name}.{p}={_show(g[0])}" for p, g in sorted(params.items()) if len(g) == 1]
    if shared:
        lines.append("  settings: " + " ".join(shared))
    lines.append("")
    for g in plan.groups:
        grid = ", ".join(f"{x:g}" for x in g.lr_grid)
        state = f"SKIPPED: {g.skip}" if g.skip else ("tune lr in [" + grid + "]" if g.tuned else f"lr={grid}")
        lines.append(f"  {g.describe()}: {state}")
    skips: dict = {}
    for c in plan.tune + plan.final:
        if c.skip:
            key = (c.config.optimizer, c.skip)
            skips[key] = skips.get(key, 0) + 1
    lines.append("")
    if skips:
        lines.append("skipped cells:")
        for (opt, reason), count in sorted(skips.items()):
            lines.append(f"  {count:4d} x {opt}: {reason}")
    run_now = n["tune_cells"] - n["tune_skipped"] + n["final_known"] - n["final_skipped"]
    total = run_now + n["final_after_tuning"] - n["final_reused"]
    lines.append(
        f"plan: {n['tune_cells']} tune cells ({n['tune_skipped']} skipped), "
        f"{n['final_known'] + n['final_after_tuning']} final cells "
        f"({n['final_skipped']} skipped, {n['final_reused']} reuse their tuning run); "
        f"{total} cells to train, plus any grid extensions (and more final cells where objectives "
        f"choose different rates)")
    tuning = [e for e in (stored or {}).get("tuning") or () if isinstance(e, Mapping)]
    if tuning:
        grown = [e for e in tuning if sum((e.get("extensions") or {}).values())]
        lines.append(f"stored tuning in {cfg.sweep_dir}: {len(grown)} group(s) extended their grid")
        edges = format_edges(tuning)
        lines += (["still at a grid edge after the limit:", *edges] if edges else ["no choice is at a grid edge"])
    return "\n".join(lines)


def tuning_text(cfg: SweepConfig) -> str:
    """The tuning protocol of ``cfg`` in one sentence (dry run and page)."""
    how = ("each seed picks its own rates on its own validation split" if cfg.per_seed
           else f"seed(s) {', '.join(map(str, cfg.tune_seeds))} pick one rate for every seed")
    return (f"a learning rate per group for each objective ({', '.join(cfg.tune_metrics)}); {how}; "
            f"a choice at a grid edge extends the grid one log step that way, at most {cfg.max_extensions} "
            f"per side (ties -> smaller lr; the test split is never used)")


def format_edges(tuning: Sequence[Mapping]) -> list[str]:
    """Lines for the groups of a manifest's ``tuning`` whose choice is still at a grid edge."""
    lines = []
    for entry in tuning:
        for flag in entry.get("edges") or ():
            seed = "" if flag.get("seed") in (None, ONCE) else f" seed {flag['seed']}"
            lines.append(f"  {entry['group']}: {flag['objective']}{seed} chose lr={flag['lr']:g}, the "
                         f"{'smallest' if flag['side'] == 'low' else 'largest'} of its grid after "
                         f"{entry['extensions'][flag['side']]} extension(s)")
    return lines


def _show(value):
    if isinstance(value, _Schedule):
        return str(value)
    return list(value) if isinstance(value, tuple) else value
