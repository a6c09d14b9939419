"""Built-in losses: ``ce``, ``bce`` and ``wce``, each fused with its output activation.

Every loss works on logits (log-sum-exp and softplus, see ``harness.plugin.lossmath``),
returns the *mean* loss over the batch (the lecture's sum divided by the batch
size, per the errata) and writes d(mean loss)/d(logits) into a caller's buffer.
"""
from __future__ import annotations

import math

import numpy as np

from harness.plugin import LossSpec, Param, hookimpl
from harness.plugin.lossmath import class_weights, logistic_regression_logits, sigmoid, softmax, softplus

_subtract, _exp, _multiply, _dot = np.subtract, np.exp, np.multiply, np.dot
_max_rows, _sum = np.maximum.reduce, np.add.reduce
_ROWS: dict = {}
_ONES: dict = {}


def _true_index(y, n: int, k: int) -> np.ndarray:
    """Flat indices ``i * k + y[i]`` of an (n, k) array (row offsets cached per shape)."""
    offsets = _ROWS.get((n, k))
    if offsets is None:
        offsets = _ROWS[(n, k)] = np.arange(n, dtype=np.int64) * k
    return offsets + y


def _row_max(logits: np.ndarray) -> np.ndarray:
    """Each row's largest entry (NaN where a row has one), taken column by column for few columns.

    numpy's reduction over a short last axis costs about 40 ns a row; k - 1
    element-wise maxima over the columns are several times faster for the few
    outputs of a classifier. A maximum does not round, so the values are the same.
    """
    k = logits.shape[1]
    if k > 16:
        return _max_rows(logits, axis=1)
    out = logits[:, 0].copy()
    for j in range(1, k):
        np.maximum(out, logits[:, j], out=out)
    return out


def _ones(k: int, dtype) -> np.ndarray:
    ones = _ONES.get((k, dtype))
    if ones is None:
        ones = _ONES[(k, dtype)] = np.ones(k, dtype)
    return ones


class SoftmaxCrossEntropy:
    """Softmax + categorical cross-entropy, optionally with per-class weights.

    With weights ``w``, sample i contributes ``w[y_i] * CE_i`` and the batch
    loss is the plain mean of those terms (not divided by the sum of weights),
    which is the lecture's WCE formula divided by the batch size.
    """

    def __init__(self, n_classes: int, weights: np.ndarray | None = None):
        self.n_outputs = int(n_classes)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)

    def loss_grad(self, logits, y, grad_out) -> float:
        n, k = logits.shape
        if n == 1:
            return self.loss_grad_one(logits[0], int(y[0]), grad_out[0])
        true = _true_index(y, n, k)                 # flat positions of the true-class logits
        np.subtract(logits, _max_rows(logits, axis=1, keepdims=True), out=grad_out)
        flat = grad_out.reshape(-1)
        true_shifted = flat.take(true)
        np.exp(grad_out, out=grad_out)
        sums = _dot(grad_out, _ones(k, grad_out.dtype))   # row sums as a BLAS gemv
        per_sample = np.log(sums)
        per_sample -= true_shifted
        grad_out /= sums[:, None]
        flat[true] -= 1.0
        if self.weights is None:
            grad_out *= 1.0 / n
            return float(_sum(per_sample)) / n
        w = self.weights[y]
        per_sample *= w
        grad_out *= (w / n)[:, None]
        return float(_sum(per_sample)) / n

    def loss_grad_one(self, z, yi: int, g) -> float:
        """One sample on 1-D rows (the per-sample hot path; optional fast path of the Loss API).

        Small-vector trick: max and sum through a Python list beat numpy's
        reductions (about 1 us of call overhead each) at this size.
        """
        m = max(z.tolist())
        _subtract(z, m, out=g)
        _exp(g, out=g)
        s = sum(g.tolist())
        loss = math.log(s) - (z.item(yi) - m)
        _multiply(g, 1.0 / s, out=g)
        g[yi] -= 1.0
        if self.weights is not None:
            w = self.weights.item(yi)
            _multiply(g, w, out=g)
            loss *= w
        return float(loss)

    def compiled_row_grad(self, dtype):
        """Fast-path capability: the compiled per-row kernel and its parameters (the class weights)."""
        from harness_plugins import kernels  # numba loads only when a run takes the compiled path

        weights = np.ones(self.n_outputs) if self.weights is None else self.weights
        return kernels.SOFTMAX_CE[str(np.dtype(dtype))], weights

    def compiled_predict(self, dtype):
        """Evaluation capability: the compiled kernel of ``argmax(predict_proba)`` per row (no parameters)."""
        from harness_plugins import kernels

        return kernels.SOFTMAX_CLASS[str(np.dtype(dtype))], np.zeros(1)

    def per_sample(self, logits, y) -> np.ndarray:
        """``-log_softmax(logits)[i, y_i]`` (times the class weight), bit for bit, with less work per row.

        Called at every evaluation on all rows: only the true class's entry is
        shifted by ``log(sum exp)`` (``log s - z`` is exactly ``-(z - log s)``), and
        the row maxima come from ``_row_max``.
        """
        y = np.asarray(y)
        n, k = logits.shape
        shifted = logits - _row_max(logits)[:, None]
        out = np.log(_sum(np.exp(shifted), axis=1))     # the same sum as log_softmax's (same call, same rows)
        out -= shifted.reshape(-1).take(_true_index(y, n, k))
        if self.weights is not None:
            out *= self.weights[y]
        return out

    def predict_proba(self, logits) -> np.ndarray:
        return softmax(logits)

    def optimum_logits(self, X, y) -> np.ndarray:
        """The convex reference: softmax CE of a linear model is multinomial logistic regression; with
        class weights, the same fit with each sample weighted by its class's weight (same minimiser as the
        weighted mean). Binary data: logits (0, z), which softmax-CE scores as the logistic model."""
        y = np.asarray(y)
        weights = None if self.weights is None else self.weights[y]
        z = logistic_regression_logits(X, y, sample_weight=weights)
        return np.column_stack([np.zeros_like(z), z]) if z.ndim == 1 else z


class SigmoidBinaryCrossEntropy:
    """Sigmoid + binary cross-entropy.

    Two classes: one output unit, ``p(class 1) = sigmoid(z)``. More classes: one
    sigmoid unit per class trained one-vs-rest; a sample's loss is the sum of
    the K binary losses; probabilities are the K sigmoids normalised to sum to 1
    (prediction = argmax). Per unit: ``BCE(z, t) = softplus(z) - t z``.
    """

    def __init__(self, n_classes: int):
        self.n_classes = int(n_classes)
        self.binary = self.n_classes == 2
        self.n_outputs = 1 if self.binary else self.n_classes

    def loss_grad(self, logits, y, grad_out) -> float:
        n = logits.shape[0]
        per_sample = self._per_sample(logits, y)
        sigmoid(logits, out=grad_out)
        if self.binary:
            grad_out[:, 0] -= y
        else:
            grad_out[np.arange(n), y] -= 1.0
        grad_out *= 1.0 / n
        return float(per_sample.mean())

    def _per_sample(self, logits, y) -> np.ndarray:
        y = np.asarray(y)
        if self.binary:
            z = logits[:, 0]
            return softplus(z) - y * z
        return softplus(logits).sum(axis=1) - logits[np.arange(len(y)), y]

    def compiled_row_grad(self, dtype):
        """Fast-path capability: the compiled per-row kernel (no parameters)."""
        from harness_plugins import kernels  # numba loads only when a run takes the compiled path

        return kernels.SIGMOID_BCE[str(np.dtype(dtype))], np.zeros(1)

    def compiled_predict(self, dtype):
        """Evaluation capability: the compiled kernel of ``argmax(predict_proba)`` per row (no parameters)."""
        from harness_plugins import kernels

        return kernels.SIGMOID_CLASS[str(np.dtype(dtype))], np.zeros(1)

    def per_sample(self, logits, y) -> np.ndarray:
        return np.asarray(self._per_sample(logits, y), dtype=np.float64)

    def predict_proba(self, logits) -> np.ndarray:
        if self.binary:
            z = logits[:, 0]
            return np.column_stack([sigmoid(-z), sigmoid(z)])
        return softmax(-softplus(-logits))  # normalised sigmoids, via log-sigmoid

    def optimum_logits(self, X, y) -> np.ndarray:
        """The convex reference: one logistic regression on binary data; on more classes one binary
        logistic regression per class (one-vs-rest), since the summed per-class losses separate."""
        y = np.asarray(y)
        if self.binary:
            return logistic_regression_logits(X, y)[:, None]
        return np.column_stack([logistic_regression_logits(X, (y == c).astype(int))
                                for c in range(self.n_classes)])


def make_ce(y_train, n_classes):
    return SoftmaxCrossEntropy(n_classes)


def make_wce(y_train, n_classes, normalisation="balanced"):
    return SoftmaxCrossEntropy(n_classes, class_weights(y_train, n_classes, normalisation))


def make_bce(y_train, n_classes):
    return SigmoidBinaryCrossEntropy(n_classes)


@hookimpl
def register_losses(register):
    register(LossSpec(
        name="ce",
        description="softmax + categorical cross-entropy, mean over the batch",
        factory=make_ce,
    ))
    register(LossSpec(
        name="bce",
        description="sigmoid + binary cross-entropy: one output unit on binary data; on multi-class "
                    "data one sigmoid per class (one-vs-rest, losses summed), prediction = argmax",
        factory=make_bce,
    ))
    register(LossSpec(
        name="wce",
        description="class-weighted cross-entropy, weights from the training labels: "
                    "balanced M/(N m_i) by default (keeps the loss scale of ce), or the lecture's M/m_i",
        factory=make_wce,
        params=(Param("normalisation", "balanced",
                      "class weights: 'balanced' = M/(N m_i) (scikit-learn; averages to 1, "
                      "same effective learning rate as ce) or 'lecture' = M/m_i (N times larger)",
                      choices=("balanced", "lecture")),),
    ))
