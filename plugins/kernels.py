"""Compiled per-row kernels of the built-in losses (their fast-path capabilities).

Imported only when a run takes a compiled path (``Loss.compiled_row_grad``,
``Loss.compiled_predict``), so listing plugins never pays for numba. Each
kernel is a numba ``cfunc`` with one of the engine's row signatures
(docs/learning.md, "The compiled fast path" and "Evaluation")::

    double kernel(const T *z, intp k, int64 label, const double *params, T *g)              # training
    void kernel(const T *logits, intp n, intp k, const double *params, int64 *classes)      # prediction

The training kernel returns one row's loss and writes d(row loss)/dz into
``g``; its mathematics is that of ``losses.py`` on one row, in the same order
of operations where it matters (max-shifted log-sum-exp; softplus without
overflow). The prediction kernel writes, for each of the n rows of k logits,
the class ``argmax(predict_proba(logits))`` picks (first maximum on ties), or
``UNSURE`` where the rounding of ``predict_proba`` could decide it; the
reasoning is in ``_softmax_class`` and ``_sigmoid_class``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import carray, cfunc, njit, types


UNSURE = -1          # a prediction kernel's answer when rounding, not the logits, would pick the class
# Gap (in units of the dtype's machine epsilon) that rounding inside predict_proba cannot close; see
# _softmax_class. 64 leaves room for an exp up to ~25 ulp off, more than numpy's or libm's.
GAP_EPS = 64
EPS64, EPS32 = float(np.finfo(np.float64).eps), float(np.finfo(np.float32).eps)      # machine epsilon
TINY64, TINY32 = float(np.finfo(np.float64).tiny), float(np.finfo(np.float32).tiny)   # smallest normal


def _signature(T):
    return types.float64(types.CPointer(T), types.intp, types.int64, types.CPointer(types.float64),
                         types.CPointer(T))


def _predict_signature(T):
    return types.void(types.CPointer(T), types.intp, types.intp, types.CPointer(types.float64),
                      types.CPointer(types.int64))


@njit(cache=True, inline="always")
def _softmax_ce(z, k, label, weights, g):
    """Softmax cross-entropy of one row times the weight of its class (1 for plain ce)."""
    m = z[0]
    for j in range(1, k):
        if z[j] > m:
            m = z[j]
    s = 0.0  # (g is the caller's uninitialised buffer: never read it before writing)
    for j in range(k):
        e = math.exp(z[j] - m)
        g[j] = e
        s += e
    inv = 1 / s
    for j in range(k):
        g[j] = g[j] * inv
    g[label] -= 1
    w = weights[label]
    for j in range(k):
        g[j] = g[j] * w
    return (math.log(s) - (z[label] - m)) * w


@njit(cache=True, inline="always")
def _sigmoid_bce(z, k, label, params, g):
    """Binary cross-entropy per sigmoid unit, summed: one unit (k=1, target = label) or one-vs-rest."""
    total = 0.0
    for j in range(k):
        if k == 1:
            t = 1.0 if label == 1 else 0.0
        else:
            t = 1.0 if j == label else 0.0
        zj = z[j]
        total += max(zj, 0) + math.log1p(math.exp(-abs(zj))) - t * zj
        if zj >= 0:
            sig = 1 / (1 + math.exp(-zj))
        else:
            e = math.exp(zj)
            sig = e / (1 + e)
        g[j] = sig - t
    return total


@cfunc(_signature(types.float64), cache=True)
def softmax_ce_f64(z, k, label, weights, g):
    return _softmax_ce(z, k, label, weights, g)


@cfunc(_signature(types.float32), cache=True)
def softmax_ce_f32(z, k, label, weights, g):
    return _softmax_ce(z, k, label, weights, g)


@cfunc(_signature(types.float64), cache=True)
def sigmoid_bce_f64(z, k, label, params, g):
    return _sigmoid_bce(z, k, label, params, g)


@cfunc(_signature(types.float32), cache=True)
def sigmoid_bce_f32(z, k, label, params, g):
    return _sigmoid_bce(z, k, label, params, g)


SOFTMAX_CE = {"float64": softmax_ce_f64, "float32": softmax_ce_f32}
SIGMOID_BCE = {"float64": sigmoid_bce_f64, "float32": sigmoid_bce_f32}


@njit(cache=True, inline="always")
def _top_two(z, k):
    """(first largest logit, the largest of the others), or (UNSURE, UNSURE) when a logit is not finite.

    With one logit the second is UNSURE. Only the runner-up can come within a gap of the largest.
    """
    c = 0
    runner = UNSURE
    for j in range(k):
        if not math.isfinite(z[j]):
            return UNSURE, UNSURE
        if j == 0:
            continue
        if z[j] > z[c]:
            runner = c
            c = j
        elif runner == UNSURE or z[j] > z[runner]:
            runner = j
    return c, runner


@njit(cache=True, inline="always")
def _softmax_class(z, k, eps):
    """The class ``argmax(softmax(z))`` picks: the first largest logit, unless the runner-up is within the gap.

    softmax (``lossmath.softmax``) computes ``e_j = exp(z_j - max)`` and ``p_j = e_j / sum(e)``. The
    largest logit c gives ``z_c - max = 0`` exactly and ``e_c = exp(0) = 1``. Every other class with
    ``z_c - z_j > GAP_EPS * eps`` gets an exact ``exp(z_j - max) <= 1 - 63 eps``, which an exp accurate to
    a few ulp cannot round up to within 2 ulp of 1, so ``p_j = fl(e_j / s) < fl(1 / s) = p_c`` (s lies in
    [1, k]). Then c is the unique largest probability. A class within the gap could round to a tie
    (``exp(-1e-17) == 1``) and argmax would take the first of the tied classes, so the kernel says UNSURE;
    it does too for non-finite logits (numpy's softmax then yields NaN rows).
    """
    c, runner = _top_two(z, k)
    if c == UNSURE:
        return UNSURE
    if runner != UNSURE and np.float64(z[c]) - np.float64(z[runner]) <= GAP_EPS * eps:
        return UNSURE
    return c


@njit(cache=True, inline="always")
def _log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x), in float64 without overflow."""
    return -(max(-x, 0.0) + math.log1p(math.exp(-abs(x))))


@njit(cache=True, inline="always")
def _sigmoid_class(z, k, eps, tiny):
    """The class ``argmax(predict_proba(z))`` of the sigmoid losses picks, or UNSURE.

    One unit (k = 1): probabilities ``[expit(-z), expit(z)]``. For z <= 0, ``1 + exp(z) >= 2`` and
    ``1 + exp(-z) <= 2`` whatever the rounding, so ``expit(-z) >= 0.5 >= expit(z)`` and a tie goes to
    the first: class 0. For ``z > GAP_EPS * eps``, exp(-z) stays below ``1 - 58 eps`` after rounding, so
    ``expit(z) > 0.5 > expit(-z)``: class 1. In between, ``expit`` of a tiny z rounds to exactly 0.5 (a
    tie, class 0) or just above it, so the kernel says UNSURE; also for NaN.

    One unit per class (one-vs-rest): probabilities ``softmax(q)`` with ``q = -softplus(-z) <= 0``, which
    numpy computes in the logits' dtype to a few ulp of q. q rises with z, so the candidate is the
    first largest logit c, and the class numpy's q could bring closest to it is the runner-up r (for
    any other j, q_j <= q_r, and a lower q_j only widens the gap even after its larger rounding error).
    c is certain when, with q computed here in float64, ``q_c - q_r`` exceeds the softmax gap of
    ``_softmax_class`` plus both q's rounding error (8 eps |q| each, and 8 * tiny where q underflows).
    Large logits squeeze q towards 0 (q = -exp(-z)): two logits both above ~37 in float64 are UNSURE,
    as their probabilities round to a tie.
    """
    if k == 1:
        x = np.float64(z[0])
        if x != x:
            return UNSURE
        if x <= 0:
            return 0
        if x > GAP_EPS * eps:
            return 1
        return UNSURE
    c, runner = _top_two(z, k)
    if c == UNSURE:
        return UNSURE
    qc = _log_sigmoid(np.float64(z[c]))
    qr = _log_sigmoid(np.float64(z[runner]))
    if qc - qr <= GAP_EPS * eps + 8 * eps * (abs(qc) + abs(qr)) + 8 * tiny:
        return UNSURE
    return c


@njit(cache=True, inline="always")
def _softmax_classes(logits, n, k, classes, eps):
    Z = carray(logits, (n, k))
    for r in range(n):
        classes[r] = _softmax_class(Z[r], k, eps)


@njit(cache=True, inline="always")
def _sigmoid_classes(logits, n, k, classes, eps, tiny):
    Z = carray(logits, (n, k))
    for r in range(n):
        classes[r] = _sigmoid_class(Z[r], k, eps, tiny)


@cfunc(_predict_signature(types.float64), cache=True)
def softmax_class_f64(logits, n, k, params, classes):
    _softmax_classes(logits, n, k, classes, EPS64)


@cfunc(_predict_signature(types.float32), cache=True)
def softmax_class_f32(logits, n, k, params, classes):
    _softmax_classes(logits, n, k, classes, EPS32)


@cfunc(_predict_signature(types.float64), cache=True)
def sigmoid_class_f64(logits, n, k, params, classes):
    _sigmoid_classes(logits, n, k, classes, EPS64, TINY64)


@cfunc(_predict_signature(types.float32), cache=True)
def sigmoid_class_f32(logits, n, k, params, classes):
    _sigmoid_classes(logits, n, k, classes, EPS32, TINY32)


SOFTMAX_CLASS = {"float64": softmax_class_f64, "float32": softmax_class_f32}
SIGMOID_CLASS = {"float64": sigmoid_class_f64, "float32": sigmoid_class_f32}
