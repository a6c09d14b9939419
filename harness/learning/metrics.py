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
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)      # true counts per class
    predicted = cm.sum(axis=0).astype(np.float64)
    total = support.sum()
    present = support > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / support
        denom = support + predicted                  # 2TP + FP + FN
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    used = denom > 0
    return {
        "accuracy": float(tp.sum() / total) if total else float("nan"),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else float("nan"),
        "macro_f1": float(f1[used].mean()) if used.any() else float("nan"),
        "minority_recall": float(recall[minority]) if support[minority] > 0 else float("nan"),
    }


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
    return float(np.mean(np.sqrt(np.mean(shift * shift, axis=1))))
