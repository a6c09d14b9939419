"""Numerically stable pieces shared by the built-in losses, and the solver of their convex optimum.

Everything works on logits, never on probabilities, so that logits of +-1e4
give finite losses and gradients: softmax goes through log-sum-exp, sigmoid
through ``log(1 + exp(z)) = logaddexp(0, z)`` (softplus).

``logistic_regression_logits`` is for a loss's optional ``optimum_logits``
(docs/plugins.md): a loss whose minimiser over linear models is a logistic
regression's (softmax or sigmoid cross-entropy, class-weighted or not) hands
its data to it instead of writing a solver.
"""
from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise ``log softmax`` of (n, K) logits, via the max-shifted log-sum-exp."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return shifted


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, K) logits (rows sum to 1)."""
    out = logits - logits.max(axis=1, keepdims=True)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


def softplus(z: np.ndarray) -> np.ndarray:
    """``log(1 + exp(z))`` without overflow; equals ``-log sigmoid(-z)``."""
    return np.logaddexp(0.0, z)


def sigmoid(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Logistic function (scipy's expit: no overflow warnings for large |z|)."""
    from scipy.special import expit   # here, not at the top: `harness plugins` need not load scipy (startup)

    return expit(z, out=out)


def class_weights(y_train: np.ndarray, n_classes: int, normalisation: str = "balanced") -> np.ndarray:
    """Per-class weights from the training labels.

    ``"lecture"``: ``C_i = M / m_i`` (M training samples, m_i of class i), the
    lecture's formula. ``"balanced"``: ``M / (N m_i)`` with N classes,
    scikit-learn's ``class_weight='balanced'``. The two differ by the factor N;
    the balanced weights average to 1 over the training samples, so the weighted
    loss stays on the scale of the plain one (same effective learning rate).
    """
    counts = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=n_classes).astype(np.float64)
    if counts.size > n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    if np.any(counts == 0):
        missing = int(np.flatnonzero(counts == 0)[0])
        raise ValueError(f"class {missing} has no training samples: its weight M/m_i is undefined")
    weights = counts.sum() / counts
    if normalisation == "balanced":
        weights /= n_classes
    elif normalisation != "lecture":
        raise ValueError(f"normalisation must be 'balanced' or 'lecture', got {normalisation!r}")
    return weights


def logistic_regression_logits(X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None,
                               tol: float = 1e-10, max_iter: int = 10000) -> np.ndarray:
    """Decision values on ``X`` of an unpenalised logistic regression fitted on ``(X, y)`` (scikit-learn).

    Multinomial for more than two classes ((n, K) logits), one column of
    log-odds for two ((n,)). ``sample_weight`` weights each sample's loss, so
    the fit minimises the weighted mean. On linearly separable data the
    infimum is not attained: the solver stops at a large-weight point whose
    loss is small (an upper bound of the infimum).
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=np.inf, tol=tol, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # e.g. "Setting penalty=None will ignore C"
        model.fit(X, y, sample_weight=sample_weight)
    return model.decision_function(X)
