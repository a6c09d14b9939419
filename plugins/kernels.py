"""Compiled per-row loss kernels of the built-in losses (their fast-path capability).

Imported only when a run takes the compiled path (``Loss.compiled_row_grad``),
so listing plugins never pays for numba. Each kernel is a numba ``cfunc`` with
the engine's row signature (docs/learning.md, "The compiled fast path")::

    double kernel(const T *z, intp k, int64 label, const double *params, T *g)

returning one row's loss and writing d(row loss)/dz into ``g``. The
mathematics is that of ``losses.py`` on one row, in the same order of
operations where it matters (max-shifted log-sum-exp; softplus without overflow).
"""
from __future__ import annotations

import math

from numba import cfunc, njit, types


def _signature(T):
    return types.float64(types.CPointer(T), types.intp, types.int64, types.CPointer(types.float64),
                         types.CPointer(T))


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
