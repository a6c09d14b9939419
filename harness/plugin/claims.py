"""The type a claim plugin registers: a statement the report tests on a sweep's stored runs.

A claim compares runs that differ in one *factor* alone: a stored column such
as ``optimizer`` or ``loss`` (values ``a`` against ``b``), or one plugin
hyper-parameter (``optimizer_params.batch_size``, values 16 against 64). The
report pairs such runs (every other setting and the seed equal), reads the
claim's *measure* on each at matched *budgets*, and turns the per-pair effects
into a verdict with a stated statistical rule (docs/reports.md).

This module belongs to the plugin API: it imports nothing of the engine, and
the engine never names the built-in claims (they live in ``harness_plugins.claims``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

__all__ = ["Budget", "ClaimSpec", "AXES", "STATISTICS", "DIRECTIONS", "SCALES", "TUNING_OBJECTIVES"]

AXES = ("epoch", "updates", "samples_seen", "train_seconds")
AXIS_NAMES = {"epoch": ("epoch", "epochs"), "updates": ("update", "updates"),
              "samples_seen": ("samples seen", "samples seen"), "train_seconds": ("second", "training seconds")}
# ``value``: the metric at the budget; ``area``: its mean over [0, budget] (area / budget); ``fluctuation``:
# how much it still moves at the end of the budget (the mean |change| between consecutive records in the
# last ``window`` share of [0, budget], of log values on the log scale; lower = settled)
STATISTICS = ("value", "area", "fluctuation")
DIRECTIONS = ("lower", "higher", "between")
SCALES = ("log", "linear")
# what a learning rate can be tuned for (docs/sweep.md), read from the tuning runs' epochs -> True when larger
# is better. ``train_loss``/``val_*``: the last epoch's value; ``_best``: the best over the epochs;
# ``train_loss_auc``: the mean training loss over epochs 0..E (the area under its curve).
TUNING_OBJECTIVES = {
    "train_loss": False, "train_loss_auc": False, "val_loss": False, "val_loss_best": False,
    **{f"val_{m}{best}": True for m in ("accuracy", "balanced_accuracy", "macro_f1", "minority_recall")
       for best in ("", "_best")},
}


@dataclass(frozen=True)
class Budget:
    """Where on a run's curve a claim is read: an axis and a point on it.

    ``fraction`` is a share of the pair's common budget on ``axis`` (the
    smallest last record of the compared runs that did not diverge), ``value``
    an absolute point (e.g. epoch 1). Exactly one of them is given.
    """

    axis: str
    fraction: Optional[float] = None
    value: Optional[float] = None

    def __post_init__(self):
        if self.axis not in AXES:
            raise ValueError(f"budget axis must be one of {', '.join(AXES)}, got {self.axis!r}")
        if (self.fraction is None) == (self.value is None):
            raise ValueError("a budget needs exactly one of fraction and value")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise ValueError(f"budget fraction must be in (0, 1], got {self.fraction!r}")
        if self.value is not None and not self.value > 0:
            raise ValueError(f"budget value must be positive, got {self.value!r}")

    @property
    def label(self) -> str:
        if self.value is not None:
            return f"{AXIS_NAMES[self.axis][0]} {self.value:g}"
        return f"{self.fraction:.0%} of the {AXIS_NAMES[self.axis][1]}"


@dataclass(frozen=True)
class ClaimSpec:
    """What a claim plugin registers (``register(ClaimSpec(...))`` in ``register_claims``).

    * ``name``: one word, unique; ``description``: the claim in one line (the page's title).
    * ``lecture``: the text or source the claim tests (quoted on the page).
    * ``factor``: the stored column compared (``optimizer``, ``loss``, ``schedule`` ...) or
      ``optimizer_params.<name>`` / ``loss_params.<name>`` / ``dataset_params.<name>``.
    * ``a``, ``b`` (and ``c`` for ``direction="between"``): the compared values of the factor.
      The claim says ``a`` is better than ``b`` (``lower``/``higher`` metric), or that ``a``
      lies between ``b`` and ``c``.
    * ``metric``: a stored per-epoch column (``train_loss``, ``test_minority_recall`` ...);
      ``statistic``: ``value`` (read at the budget), ``area`` (mean over [0, budget]) or
      ``fluctuation`` (mean absolute change between consecutive records whose axis value lies in
      the last ``window`` share of [0, budget]: ~0 for a run that has settled; compared as a
      plain difference, so ``tie`` is then in the fluctuation's own units).
    * ``window``: the share of the budget ``fluctuation`` looks at (0.5: its second half).
    * ``scale``: ``log`` compares log values (effects are log ratios, for losses), ``linear``
      differences (for bounded metrics such as recall).
    * ``tie``: |effect| at or below it is a tie (log scale: 0.01 is about 1% relative).
    * ``budgets``: where the claim is read; the first is the headline budget.
    * ``tuned_for``: the tuning objective (``TUNING_OBJECTIVES``) of the runs the claim is judged on:
      ``train_loss_auc`` (default) for a claim about optimisation, a validation objective such as
      ``val_loss_best`` for one about generalisation.
    * ``applies(section) -> bool``: optional; the section is a dict with ``dataset``,
      ``loss`` (None when the loss is the factor), ``hidden`` (list), ``convex`` (bool),
      ``imbalance`` (largest/smallest class count of the test split), the params dicts, and
      ``optimizer`` and ``schedule`` (a setting that is the claim's factor is None there, its
      params dict empty), so a claim about schedules can restrict itself to one optimizer.
    * ``tested_by``: optional; where runs that can test the claim come from (a preset or a
      command, e.g. ``python -m harness sweep --config lecture``). A page whose sweep has no
      pair for the claim names it in the claim's reason, so "inconclusive" says where to look.
    """

    name: str
    description: str
    lecture: str
    factor: str
    a: Any
    b: Any
    metric: str = "train_loss"
    direction: str = "lower"
    c: Any = None
    statistic: str = "value"
    scale: str = "log"
    tie: float = 0.01
    window: float = 0.5
    budgets: tuple = (Budget("epoch", fraction=1.0),)
    applies: Optional[Callable[[Mapping], bool]] = None
    rule: str = ""
    tuned_for: str = "train_loss_auc"
    tested_by: str = ""
    kind: str = "claim"

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"claim {self.name!r}: direction must be one of {', '.join(DIRECTIONS)}")
        if (self.direction == "between") != (self.c is not None):
            raise ValueError(f"claim {self.name!r}: c is given exactly when direction is 'between'")
        if self.statistic not in STATISTICS:
            raise ValueError(f"claim {self.name!r}: statistic must be one of {', '.join(STATISTICS)}")
        if self.scale not in SCALES:
            raise ValueError(f"claim {self.name!r}: scale must be one of {', '.join(SCALES)}")
        if not 0 < self.window <= 1:
            raise ValueError(f"claim {self.name!r}: window must be in (0, 1], got {self.window!r}")
        if not self.tie >= 0:
            raise ValueError(f"claim {self.name!r}: tie must be >= 0")
        if not self.budgets or not all(isinstance(b, Budget) for b in self.budgets):
            raise ValueError(f"claim {self.name!r}: budgets must be a non-empty tuple of Budget")
        if self.tuned_for not in TUNING_OBJECTIVES:
            raise ValueError(f"claim {self.name!r}: tuned_for must be one of {', '.join(TUNING_OBJECTIVES)}")
        if len({repr(v) for v in self.sides}) < len(self.sides):
            raise ValueError(f"claim {self.name!r}: the compared values must differ")

    @property
    def title(self) -> str:
        return self.description

    @property
    def sides(self) -> tuple:
        """The compared values in order: (a, b) or (a, b, c)."""
        return (self.a, self.b) if self.c is None else (self.a, self.b, self.c)
