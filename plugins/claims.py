"""The lecture's claims about the built-in optimizers and losses, as ``ClaimSpec`` plugins.

The report tests whatever claims plugins register; these are the slides'
statements about batch, stochastic, point and mini-batch GD, learning-rate
schedules, batch normalisation and the weighted cross-entropy. Each says what
it compares, on which measure and at which budgets (the first is its headline
budget), and the tuning objective of the runs it is judged on: the
optimisation claims use rates tuned for the training loss's area under the
curve (the default), the generalisation claim (minority recall) rates tuned
for the best validation loss.

The last four (``CLAIMS[6:]``) need settings the default sweep does not run
(decaying schedules, a long budget, two batch sizes); the preset ``lecture``
runs them. In a sweep without such runs they have no pair and are not tested.
"""
from __future__ import annotations

from harness.plugin import hookimpl
from harness.plugin.claims import Budget, ClaimSpec

IMBALANCED = 2.0    # the largest test class at least this many times the smallest
LONG = 100          # epochs: the budget at which "kicked out of local minima" is read (the lecture preset's)
SETTLED = 0.001     # fluctuations (mean |change of log loss| per epoch) closer than this are a tie
BN_SHIFT_TIE = 0.02     # bn_batch_shift is in units of the full-set standard deviation
LECTURE_PRESET = "the lecture preset (python -m harness sweep --config lecture)"


def _imbalanced(section) -> bool:
    return section["imbalance"] >= IMBALANCED


def _sgd(section) -> bool:
    return section["optimizer"] == "sgd"


def _convex(section) -> bool:
    return bool(section["convex"])


def _non_convex(section) -> bool:
    return not section["convex"]


def _batch_norm(section) -> bool:
    return section["optimizer"] == "minibatch-bn"


_END, _HALF, _QUARTER = (Budget("epoch", fraction=f) for f in (1.0, 0.5, 0.25))

CLAIMS = (
    ClaimSpec(
        name="sgd-early",
        description="SGD lowers the loss faster than BGD early",
        lecture="\"SGD converges fast\" (BGD vs SGD slide).",
        factor="optimizer", a="sgd", b="bgd", metric="train_loss", direction="lower",
        budgets=(Budget("epoch", value=1), Budget("epoch", value=3), Budget("train_seconds", fraction=0.1)),
        rule="After one epoch both have seen every training sample once (equal samples seen); also after "
             "three epochs and at 10% of the shorter run's training seconds.",
    ),
    ClaimSpec(
        name="bgd-late",
        description="BGD reaches a lower loss after many epochs",
        lecture="\"BGD outperforms SGD after many iterations\" (BGD vs SGD slide).",
        factor="optimizer", a="bgd", b="sgd", metric="train_loss", direction="lower",
        budgets=(_END, _HALF, _QUARTER, Budget("updates", fraction=1.0)),
        rule="At the end of the runs and at half and a quarter of the epochs; also at matched updates "
             "(BGD makes one update per epoch, so SGD is read after as many updates as BGD made in all: "
             "measurable only where SGD has a record that early).",
    ),
    ClaimSpec(
        name="sgd-vs-point",
        description="Shuffled SGD converges better than cyclic point GD",
        lecture="\"If we loop through the samples in the same order, we may get cyclic behavior; we must go "
                "through them randomly to get more convergent behavior\" (SGD slide).",
        factor="optimizer", a="sgd", b="point", metric="train_loss", direction="lower",
        budgets=(_END, _HALF, _QUARTER),
    ),
    ClaimSpec(
        name="minibatch-between",
        description="Mini-batch GD lies between SGD and BGD",
        lecture="Mini-batch: quicker updates than batch, less noisy than one sample (Mini-Batch GD slide).",
        factor="optimizer", a="minibatch", b="sgd", c="bgd", metric="train_loss", direction="between",
        budgets=(Budget("epoch", value=1), _HALF, _END),
        rule="The effect is the log distance of minibatch inside the sgd..bgd interval (negative outside); "
             "each batch size is its own stratum.",
    ),
    ClaimSpec(
        name="wce-recall",
        description="WCE raises the minority recall over CE on imbalanced data",
        lecture="Class weights C_n = M/m_i for unbalanced data, e.g. face detection with far more background "
                "than faces (Special Cases: WCE slide).",
        factor="loss", a="wce", b="ce", metric="test_minority_recall", direction="higher", scale="linear",
        tie=0.005, budgets=(_END, _HALF), applies=_imbalanced, tuned_for="val_loss_best",
        rule=f"Only datasets whose test split's largest class is at least {IMBALANCED:g}x its smallest; same "
             "optimizer, params and seed on both sides.",
    ),
    ClaimSpec(
        name="batch-norm",
        description="Batch normalisation speeds up mini-batch GD",
        lecture="Mini-Batch Normalization: normalise each batch to mean 0, variance 1 (slides).",
        factor="optimizer", a="minibatch-bn", b="minibatch", metric="train_loss", direction="lower",
        statistic="area", budgets=(_END, _QUARTER, Budget("train_seconds", fraction=1.0)),
        rule="Area under the training-loss curve (its mean over the budget) at the same batch size.",
    ),
    *(ClaimSpec(
        name=f"sgd-{schedule.replace('_', '-')}-settles",
        description=f"SGD with a {label} rate settles; with a constant rate it keeps fluctuating",
        lecture="\"Correcting the function for individual instances will lead to never-ending, non-convergent "
                "updates. We must shrink the learning rate with iterations to prevent this\"; \"Convergence has "
                "been proven to be when alpha = 1/sqrt(m)\" (SGD slides).",
        factor="schedule", a=schedule, b="constant", metric="train_loss", direction="lower",
        statistic="fluctuation", window=0.5, tie=SETTLED, applies=_sgd, tested_by=LECTURE_PRESET,
        budgets=(_END, _HALF, Budget("epoch", fraction=0.1)),
        rule=f"SGD only (applies() keeps the pairs whose optimizer is sgd), same model, seed and epochs; each "
             f"schedule at its own tuned initial rate. Measure: the mean absolute change of the log training loss "
             f"from one epoch to the next over the second half of the budget; {schedule} lower than constant by "
             f"more than {SETTLED:g} (0.1% per epoch) supports the claim. Convex and non-convex models are "
             f"separate sections (the theory holds on the convex one).",
    ) for schedule, label in (("inverse", "1/t (inverse)"), ("inverse_sqrt", "1/sqrt(t)"))),
    ClaimSpec(
        name="minibatch-kicks",
        description="Mini-batch noise kicks the loss out of local minima that BGD stays in",
        lecture="\"BGD vs SGD vs Mini-BGD: 'Kicking' the cost function out of local mins\" (slides).",
        factor="optimizer", a="minibatch", b="bgd", metric="train_loss", direction="lower",
        applies=_non_convex, budgets=(Budget("epoch", value=LONG), _END), tested_by=LECTURE_PRESET,
        rule=f"Non-convex models only (a hidden layer: the convex model has no local minimum to escape). "
             f"Final training loss after a long budget, epoch {LONG} (observable only in sweeps that run that "
             f"long, such as the lecture preset), and at the end of the runs: minibatch lower than bgd, each "
             f"at its own tuned rate, supports it. A lower loss is the observable consequence of escaping: the "
             f"sweep cannot see which minimum a run is in.",
    ),
    ClaimSpec(
        name="bn-small-batch-outliers",
        description="The smaller the batch, the more batch-norm statistics are swayed by outliers",
        lecture="\"Batches may not be similarly distributed. The smaller the batch size, the more likely the "
                "statistics will be influenced by outliers\" (Mini-Batch Normalization slide).",
        factor="optimizer_params.batch_size", a=64, b=16, metric="bn_batch_shift", direction="lower",
        scale="linear", tie=BN_SHIFT_TIE, statistic="area", applies=_batch_norm, tested_by=LECTURE_PRESET,
        budgets=(_END, Budget("epoch", value=1)),
        rule="minibatch-bn only, batch size 64 against 16 (the lecture preset's). Measure: bn_batch_shift, "
             "the RMS over the first batch-norm layer's units of (batch mean - full training-set mean) / full "
             "std, averaged over the training set's batches of the run's batch size, per epoch; its mean over "
             f"the epochs (area / budget), on a linear scale with tie {BN_SHIFT_TIE:g} std. The larger batch "
             "lower supports it. Runs stored without that column make the claim not observable.",
    ),
    ClaimSpec(
        name="bgd-late-convex",
        description="On a convex problem BGD ends nearer the optimum than SGD",
        lecture="\"BGD outperforms SGD after many iterations\" (BGD vs SGD slide); \"Convex => convergence "
                "global min\" (SGD slide).",
        factor="optimizer", a="bgd", b="sgd", metric="train_loss_excess", direction="lower",
        budgets=(_END, _HALF), applies=_convex, tested_by=LECTURE_PRESET,
        rule="Convex model only (no hidden layer), where the stored reference optimum L* of the training loss "
             "exists: the measure is the excess L - L* (floored at 1e-10, the optimum's own accuracy), compared "
             "on log scale, so it asks which run got nearer the global minimum, not which loss is lower by 1%. "
             "Read at the end of the runs and at half the epochs; the lecture preset runs it at 100 epochs.",
    ),
)


@hookimpl
def register_claims(register):
    for spec in CLAIMS:
        register(spec)
