"""Classification metrics from one confusion matrix (numpy; cheap enough for every epoch).

Conventions follow scikit-learn's defaults so the numbers can be checked
against ``sklearn.metrics``: balanced accuracy averages the recall of the
classes present in ``y_true``; macro-F1 averages F1 over the classes present
in ``y_true`` or ``y_pred`` (F1 = 2TP / (2TP + FP + FN)). The minority class is
the class with the fewest *training* samples (ties: the lowest label), fixed
for a run so every split and epoch reports the same class.
"""
from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) counts; rows = true class, columns = predicted class."""
    flat = np.asarray(y_true, np.int64) * n_classes + np.asarray(y_pred, np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def minority_class(y_train: np.ndarray, n_classes: int) -> int:
    """The class with the fewest training samples (lowest label on ties)."""
    return int(np.argmin(np.bincount(np.asarray(y_train, np.int64), minlength=n_classes)))


def scores(cm: np.ndarray, minority: int) -> dict:
    """accuracy, balanced_accuracy, macro_f1 and minority_recall from a confusion matrix."""
    return scores_by_part(np.asarray(cm)[None], minority)[0]


def scores_by_part(counts: np.ndarray, minority: int) -> list:
    """:func:`scores` of each confusion matrix in ``counts`` (P, K, K), computed together
    (the evaluation of a run scores its train, val and test parts at every epoch)."""
    tp = np.diagonal(counts, axis1=1, axis2=2).astype(np.float64)
    support = counts.sum(axis=2).astype(np.float64)      # true counts per class
    predicted = counts.sum(axis=1).astype(np.float64)
    total = support.sum(axis=1)
    present = support > 0
    denom = support + predicted                           # 2TP + FP + FN
    used = denom > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / support
        f1 = np.where(used, 2 * tp / np.where(used, denom, 1), 0.0)
        accuracy = tp.sum(axis=1) / total
        balanced = np.where(present, recall, 0.0).sum(axis=1) / present.sum(axis=1)
        macro_f1 = np.where(used, f1, 0.0).sum(axis=1) / used.sum(axis=1)
    minority_recall = np.where(present[:, minority], recall[:, minority], np.nan)
    nan = float("nan")
    return [{
        "accuracy": float(accuracy[i]) if total[i] else nan,
        "balanced_accuracy": float(balanced[i]) if present[i].any() else nan,
        "macro_f1": float(macro_f1[i]) if used[i].any() else nan,
        "minority_recall": float(minority_recall[i]),
    } for i in range(len(counts))]


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, minority: int) -> tuple[dict, np.ndarray]:
    """The four scores and the confusion matrix for one split."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    return scores(cm, minority), cm


def batch_shift(z: np.ndarray, starts: np.ndarray) -> float:
    """How far the batches' means stray from the whole set's, in the set's standard deviations.

    ``z`` holds one row per sample (already in batch order), ``starts`` the first
    row of each consecutive batch. With mu and sigma the mean and (population)
    standard deviation of each column over all rows, the value is the mean over
    batches of the root mean square over columns of (batch mean - mu) / sigma.
    A column constant over the set (sigma within rounding noise of 0) has every
    batch mean at mu and counts as 0. It is what batch normalisation pays for using batch statistics:
    the smaller the batch, the further they stray.
    """
    z = np.asarray(z, np.float64)
    mu = z.mean(axis=0)
    sigma = z.std(axis=0)
    sizes = np.diff(np.append(starts, len(z)))
    means = np.add.reduceat(z, starts, axis=0) / sizes[:, None]
    constant = sigma <= len(z) * np.finfo(np.float64).eps * np.abs(z).max(axis=0, initial=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(constant, 0.0, (means - mu) / sigma)
    return mean_batch_shift(shift)


def mean_batch_shift(shift: np.ndarray) -> float:
    """The mean over batches (rows) of the root mean square over units of the standardised shifts.

    The last step of :func:`batch_shift`, shared with the compiled evaluation
    (``harness.learning.evaluation``), which computes ``shift`` itself.
    """
    return float(np.mean(np.sqrt(np.mean(shift * shift, axis=1))))
