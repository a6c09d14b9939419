"""Compiled per-epoch evaluation: the fast path of ``trainer._Evaluator``.

Like the training kernels (``harness.learning.kernels``) this is a capability,
never a list of plugin names. An evaluation runs here when

* the model is an ``MLP`` (the plain network, or batch norm on its running
  statistics; not a subclass, whose forward pass could differ), and
* the loss offers ``compiled_predict(dtype) -> (kernel, params)``, where
  ``kernel`` is a numba ``cfunc`` with the signature ``PREDICT_SIGNATURES[dtype]``::

      void kernel(const T *logits, intp n, intp k, const double *params, int64 *classes)

  writing, for each of the ``n`` rows of ``k`` logits, the class
  ``argmax(loss.predict_proba(logits))`` picks (the first maximum on ties), or
  ``UNSURE`` (-1) where rounding inside ``predict_proba`` could decide it
  (near-ties, non-finite logits).

Anything else (a plugin loss without the kernel, numba missing,
``HARNESS_FASTPATH=0``) takes the numpy evaluation, unchanged.

Every stored value but one is the numpy path's, bit for bit, by construction:

* the matrix products are the same ``np.matmul`` calls as ``MLP.forward`` (same
  shapes, same BLAS), tanh and sigmoid the same numpy calls; what is compiled
  (bias, batch norm on the running statistics, relu) is correctly rounded
  element-wise arithmetic in the same order, so the logits are the same;
* the losses are the loss plugin's own ``per_sample`` on those logits and their
  sum per part divided by its size (what ``np.mean`` computes). A compiled row
  loss would be no faster (numpy's exp is vectorised) and would round
  differently, which is large in relative terms when a run's losses are tiny;
* the predicted class comes from the loss's kernel; one UNSURE row and this
  evaluation's classes are ``argmax(predict_proba(logits))`` as on the numpy path;
* the confusion counts are integers; the scores are the arithmetic of
  ``metrics.scores_by_part`` (the two sums over classes, whose order matters,
  are the same numpy call on the same terms);
* except ``bn_batch_shift``: it reads the training rows of the first layer's
  product instead of a second product over the permuted training rows (equal
  where BLAS gives a row the same value in a product of more rows, as the
  OpenBLAS we test with does), and sums each batch row by row where numpy's
  ``reduceat`` sums pairwise, so it agrees to rounding (about 1e-16 relative).

What remains per evaluation is one matrix product per layer (for 1000 rows of
625 features, about 1 ms: the floor), a few compiled loops over the rows and
``per_sample``.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import expit

from harness.learning import kernels, metrics
from harness.learning.model import MLP
from harness.results.schema import METRICS, SPLITS

try:  # numba is a dependency, but a missing or broken install must only cost speed
    import numba
    from numba import types as _t
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None

UNSURE = -1
_EPS64 = float(np.finfo(np.float64).eps)

if numba is not None:
    PREDICT_SIGNATURES = {
        np.dtype(name): _t.void(_t.CPointer(nb), _t.intp, _t.intp, _t.CPointer(_t.float64), _t.CPointer(_t.int64))
        for name, nb in (("float64", _t.float64), ("float32", _t.float32))
    }
else:  # pragma: no cover
    PREDICT_SIGNATURES = {}


def compiled_evaluation(model, loss, rows, n_classes: int, minority: int, shift=None):
    """The compiled evaluation of ``model`` with ``loss`` on ``rows`` (a ``trainer.EvaluationRows``), or None.

    None when numba is off or missing, the model is not an ``MLP``, the loss
    offers no prediction kernel of the right signature, or the rows are not what
    the loops read (C-contiguous, the model's dtype, labels in 0..n_classes-1). ``shift`` is ``(order, starts)`` of the training
    rows' ``bn_batch_shift`` batches, or None for no such diagnostic.
    """
    if not kernels.enabled() or type(model) is not MLP:
        return None
    offer = getattr(loss, "compiled_predict", None)
    found = offer(model.dtype) if offer is not None else None
    if found is None:
        return None
    kernel, params = found
    if getattr(kernel, "_sig", None) != PREDICT_SIGNATURES.get(model.dtype):
        return None
    X, y = rows.X, rows.y
    if not (X.dtype == model.dtype and X.flags.c_contiguous and X.flags.writeable and y.dtype == np.int64
            and y.flags.writeable and X.shape[1] == model.sizes[0]):
        return None
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        return None
    return CompiledEvaluation(model, loss, kernel, params, rows, n_classes, minority, shift)


def predict_classes(kernel, params, logits: np.ndarray) -> np.ndarray:
    """The classes a loss's prediction kernel writes for the rows of ``logits`` (UNSURE where it declines).

    For tests and the conformance kit (``harness.testing``); the evaluation
    calls the kernel from its own loop.
    """
    logits = np.ascontiguousarray(logits)
    classes = np.empty(len(logits), np.int64)
    _predict(kernel, logits, np.ascontiguousarray(params, dtype=np.float64), classes)
    return classes


class CompiledEvaluation:
    """One run's compiled evaluation: work buffers sized once, called once per epoch."""

    def __init__(self, model, loss, kernel, kernel_params, rows, n_classes: int, minority: int, shift=None):
        self.model, self.loss, self.kernel = model, loss, kernel
        self.kernel_params = np.ascontiguousarray(kernel_params, dtype=np.float64)
        self.rows, self.n_classes, self.minority = rows, int(n_classes), int(minority)
        n, dtype = len(rows.y), model.dtype
        self.hidden = [np.empty((n, h), dtype) for h in model.hidden]
        self.inv_std = [np.empty(h, dtype) for h in model.hidden] if model.batch_norm else []
        self.logits = np.empty((n, model.sizes[-1]), dtype)
        self.classes = np.empty(n, np.int64)
        self.relu = model.activation == "relu"
        parts = len(SPLITS)
        self.counts = np.zeros((parts, self.n_classes, self.n_classes), np.int64)
        self.terms = np.empty((2, parts, self.n_classes))   # per class: recall if present, F1 if used (else 0)
        self.stats = np.empty((parts, 4))                    # accuracy, classes present, classes used, minority recall
        self.bounds = [(int(a), int(b)) for a, b in zip(rows.bounds[:-1], rows.bounds[1:])]
        self.keys = [tuple(f"{part}_{key}" for key in METRICS) for part in SPLITS]
        self.shift = None
        if shift is not None and model.hidden:
            order, starts = shift
            h = model.hidden[0]
            self.shift = (np.ascontiguousarray(order, np.int64), np.ascontiguousarray(starts, np.int64),
                          np.empty((len(starts), h)), np.empty(h), np.empty(h), np.empty(h))

    def __call__(self) -> tuple[dict, np.ndarray]:
        """This epoch's row (every metric column and ``bn_batch_shift``) and the test part's confusion counts."""
        model, rows = self.model, self.rows
        with np.errstate(all="ignore"):
            shift = float("nan")
            a = rows.X
            for layer, Z in enumerate(self.hidden):
                np.matmul(a, model.W[layer], out=Z)
                if layer == 0 and self.shift is not None:
                    shift = self._batch_shift(Z)
                if model.batch_norm:
                    inv = self.inv_std[layer]    # 1 / sqrt(running var + eps), as MLP._batch_norm_forward has it
                    np.add(model.running_var[layer], model.bn_eps, out=inv)
                    np.sqrt(inv, out=inv)
                    np.divide(1.0, inv, out=inv)
                    _normalise_rows(Z, model.b[layer], model.running_mean[layer], inv, model.gamma[layer],
                                    model.beta[layer], self.relu)
                else:
                    _bias_rows(Z, model.b[layer], self.relu)
                if model.activation == "tanh":
                    np.tanh(Z, out=Z)
                elif model.activation == "sigmoid":
                    expit(Z, out=Z)
                a = Z
            np.matmul(a, model.W[-1], out=self.logits)
            unsure = _classify_rows(self.logits, model.b[-1], rows.y, rows.bounds, self.kernel, self.kernel_params,
                                    self.classes, self.counts)
            per_sample = np.asarray(self.loss.per_sample(self.logits, rows.y), np.float64)
            counts = self.counts
            if unsure:
                pred = np.argmax(self.loss.predict_proba(self.logits), axis=1)
                counts = np.bincount(rows.bins + pred, minlength=counts.size).reshape(counts.shape)
            return self._row(per_sample, counts, shift), counts[-1]

    def _row(self, per_sample: np.ndarray, counts: np.ndarray, shift: float) -> dict:
        """The metric columns of the three parts, as the numpy evaluation fills them."""
        _score_terms(counts, self.minority, self.terms, self.stats)
        balanced_sum, f1_sum = self.terms.sum(axis=2).tolist()   # scores_by_part's sums: same call, same terms
        stats = self.stats.tolist()
        row = {}
        nan = float("nan")
        for i, ((start, stop), keys) in enumerate(zip(self.bounds, self.keys)):
            if start == stop:
                row.update(dict.fromkeys(keys, nan))
                continue
            accuracy, present, used, minority_recall = stats[i]
            row.update(zip(keys, (float(np.add.reduce(per_sample[start:stop])) / (stop - start), accuracy,
                                  balanced_sum[i] / present if present else nan,
                                  f1_sum[i] / used if used else nan, minority_recall)))
        row["bn_batch_shift"] = shift
        return row

    def _batch_shift(self, Z: np.ndarray) -> float:
        """``bn_batch_shift`` from the first layer's product (before its bias): its first rows are the training set."""
        order, starts, shift, mu, sigma, top = self.shift
        _shift_terms(Z, self.model.b[0], order, starts, shift, mu, sigma, top)
        return metrics.mean_batch_shift(shift)


if numba is not None:
    _jit = numba.njit(cache=True, nogil=True)

    @_jit
    def _bias_rows(Z, b, relu):
        """``Z += b`` row by row, then relu (max(z, 0), NaN kept as numpy does) when asked; tanh and sigmoid
        stay numpy's."""
        m, f = Z.shape
        for r in range(m):
            zr = Z[r]
            for j in range(f):
                v = zr[j] + b[j]
                if not relu or v > 0 or v != v:
                    zr[j] = v
                else:
                    zr[j] = 0

    @_jit
    def _normalise_rows(Z, b, mean, inv_std, gamma, beta, relu):
        """Batch norm on the running statistics, in MLP.forward's order: ((z + b - mean) * inv_std) * gamma + beta."""
        m, f = Z.shape
        for r in range(m):
            zr = Z[r]
            for j in range(f):
                v = zr[j] + b[j]
                v = v - mean[j]
                v = v * inv_std[j]
                v = v * gamma[j]
                v = v + beta[j]
                if not relu or v > 0 or v != v:
                    zr[j] = v
                else:
                    zr[j] = 0

    @_jit
    def _predict(kernel, logits, kparams, classes):
        kernel(logits.ctypes, logits.shape[0], logits.shape[1], kparams.ctypes, classes.ctypes)

    @_jit
    def _classify_rows(logits, b, y, bounds, kernel, kparams, classes, counts):
        """Add the output bias, classify the rows with the loss's kernel and count (part, true, predicted).

        Returns the number of rows the kernel left UNSURE (or answered outside
        0..K-1); those rows are missing from ``counts`` and the caller recounts.
        """
        n, k = logits.shape
        K = counts.shape[1]
        for r in range(n):
            row = logits[r]
            for j in range(k):
                row[j] = row[j] + b[j]
        kernel(logits.ctypes, n, k, kparams.ctypes, classes.ctypes)
        counts.fill(0)
        unsure = 0
        for p in range(bounds.shape[0] - 1):
            for r in range(bounds[p], bounds[p + 1]):
                c = classes[r]
                if c < 0 or c >= K:
                    unsure += 1
                else:
                    counts[p, y[r], c] += 1
        return unsure

    @_jit
    def _score_terms(counts, minority, terms, stats):
        """Per part, ``metrics.scores_by_part``'s arithmetic up to its two sums over classes.

        ``terms[0, p]``: each class's recall where it is present (else 0);
        ``terms[1, p]``: its F1 = 2 TP / (2 TP + FP + FN) where it occurs at all
        (else 0); ``stats[p]``: accuracy (NaN for no rows), the numbers of present
        and of occurring classes, and the minority class's recall (NaN if absent).
        """
        P, K = counts.shape[0], counts.shape[1]
        for p in range(P):
            tp_sum = 0.0
            total = 0.0
            present = 0
            used = 0
            for c in range(K):
                support = 0
                predicted = 0
                for j in range(K):
                    support += counts[p, c, j]
                    predicted += counts[p, j, c]
                tp = float(counts[p, c, c])
                s = float(support)
                denom = s + float(predicted)
                tp_sum += tp
                total += s
                recall = tp / s if support > 0 else math.nan
                terms[0, p, c] = recall if support > 0 else 0.0
                terms[1, p, c] = 2 * tp / denom if denom > 0 else 0.0
                present += support > 0
                used += denom > 0
                if c == minority:
                    stats[p, 3] = recall
            stats[p, 0] = tp_sum / total if total > 0 else math.nan
            stats[p, 1] = present
            stats[p, 2] = used

    @_jit
    def _shift_terms(Z, b, order, starts, shift, mu, sigma, top):
        """(batch mean - mean) / std of every unit in every batch of the training rows ``Z[order] + b``.

        The order of operations of ``metrics.batch_shift`` (float64; sums row by
        row from the first; the standard deviation from the deviations of the
        mean); a unit whose spread is within rounding of 0 is 0.
        """
        n, h, B = order.shape[0], Z.shape[1], starts.shape[0]
        for j in range(h):
            v = np.float64(Z[order[0], j] + b[j])
            mu[j] = v
            top[j] = abs(v)
        for i in range(1, n):
            zr = Z[order[i]]
            for j in range(h):
                v = np.float64(zr[j] + b[j])
                mu[j] += v
                a = abs(v)
                if a > top[j] or a != a:
                    top[j] = a
        for j in range(h):
            mu[j] = mu[j] / n
        for i in range(n):
            zr = Z[order[i]]
            for j in range(h):
                d = np.float64(zr[j] + b[j]) - mu[j]
                if i == 0:
                    sigma[j] = d * d
                else:
                    sigma[j] += d * d
        for j in range(h):
            sigma[j] = math.sqrt(sigma[j] / n)
        limit = n * _EPS64
        for s in range(B):
            first = starts[s]
            stop = starts[s + 1] if s + 1 < B else n
            out = shift[s]
            zr = Z[order[first]]
            for j in range(h):
                out[j] = np.float64(zr[j] + b[j])
            for i in range(first + 1, stop):
                zr = Z[order[i]]
                for j in range(h):
                    out[j] += np.float64(zr[j] + b[j])
            for j in range(h):
                if sigma[j] <= limit * top[j]:
                    out[j] = 0.0
                else:
                    out[j] = (out[j] / (stop - first) - mu[j]) / sigma[j]
