"""The lecture's claims about the built-in optimizers and losses, as ``ClaimSpec`` plugins.

The report tests whatever claims plugins register; these six are the slides'
statements about batch, stochastic, point and mini-batch GD, batch
normalisation and the weighted cross-entropy. Each says what it compares, on
which measure and at which budgets (the first is its headline budget), and the
tuning objective of the runs it is judged on: the five optimisation claims use
rates tuned for the training loss's area under the curve (the default), the
generalisation claim (minority recall) rates tuned for the best validation loss.
"""
from __future__ import annotations

from harness.plugin import hookimpl
from harness.plugin.claims import Budget, ClaimSpec

IMBALANCED = 2.0    # the largest test class at least this many times the smallest


def _imbalanced(section) -> bool:
    return section["imbalance"] >= IMBALANCED


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
)


@hookimpl
def register_claims(register):
    for spec in CLAIMS:
        register(spec)
