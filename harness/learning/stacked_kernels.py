"""Compiled epoch loops that train K copies of one network at once, each with its own learning rate.

The copies of a tuning grid see the same batches in the same order and differ
only in ``lr``; so the first layer of all K is one wide matrix
``W0 = [W0_1 ... W0_K]`` of shape (d, K*h) and its forward product and weight
gradient are one product each (``X @ W0``, ``X.T @ G0``), sharing every read of
the input. The layers above are small and per copy: each copy keeps them in its
own row of ``rest`` (its ``flat_params`` from the second layer on, unchanged).

The arithmetic of each copy is that of ``harness.learning.kernels`` in the same
order of operations: the per-sample loop is the same scalar code, so a copy's
weights are bit for bit those of a run alone; the batch loop computes the first
layer with a wider BLAS product, which may round differently (the tests allow
1e-10).

Both loops return as soon as any copy's batch loss is not finite (that update
is applied, as in a run alone) with ``bad[k] = 1`` for the copies that failed;
the caller takes those copies out and continues the epoch with the rest.
Layer descriptions (``layout``) are those of ``MLP.layout``; ``rest_layout``
gives layers 1.. with their offsets inside a row of ``rest``.
"""
from __future__ import annotations

import math

import numpy as np

from harness.learning.kernels import numba

if numba is not None:
    from harness.learning.kernels import (_batch_loss, _bias_activate, _bias_activate_rows, _bias_step,
                                          _chunk_grads, _chunk_inputs, _delta_below, _first_layer_step, _gd_step,
                                          _rows_forward, _stepped_forward, _upper_backward_step, _upper_forward,
                                          _weight_bounds)

    _jit = numba.njit(cache=True, nogil=True)

    @_jit
    def stacked_sample_epoch(W0, b0, rest, layout, rest_layout, act, X, y, order, lrs, t0, kernel, kparams,
                             A0, D0, Ar, Dr, lrcol, values, bad, rows, ident, bounds, limit):
        """Per-sample updates of K copies from update ``t0``; returns the updates done (counted from 0).

        ``W0`` (d, K*f0), ``b0`` (K*f0); ``rest`` (K, R); ``lrs`` (K, T); ``A0``, ``D0``,
        ``lrcol`` of length K*f0; ``Ar``, ``Dr`` (K, width of layers 1..); ``values``, ``bad`` of length K;
        work buffers ``rows`` (K, width) and ``ident`` (d) int64, ``bounds`` (K, layers).

        The helpers of ``kernels._sample_epoch``, in its order: the first layer's
        step deferred into the next sample's wide product (``_stepped_forward``
        with one rate per column), layers 1.. per copy with the same row skipping
        and bounds (each copy's bounds are its own, from its own weights), the
        deferred step applied on its own before returning.
        """
        K = rest.shape[0]
        L1 = layout.shape[0]
        d, f0 = layout[0, 0], layout[0, 1]
        kout = layout[L1 - 1, 1]
        wr = Ar.shape[1]
        out = wr - kout
        for r in range(d):
            ident[r] = r
        counts = np.zeros((K, L1), np.int64)
        amax = np.zeros((K, L1))
        for k in range(K):
            _weight_bounds(rest[k], rest_layout, bounds[k])
        T = order.shape[0]
        for t in range(t0, T):
            i = order[t]
            x = X[i]
            # layer 0 for all copies: one wide matrix-vector product (with the previous sample's step)
            if t == t0:
                _rows_forward(x, W0.reshape(d * W0.shape[1]), 0, W0.shape[1], A0, ident, d)
            else:
                _stepped_forward(x, W0, A0, X[order[t - 1]], D0, lrcol)
                _bias_step(b0, D0, lrcol)
            _bias_activate(A0, b0, act, L1 == 1)
            failed = False
            for k in range(K):
                lr = lrs[k, t]
                a0 = A0[k * f0:(k + 1) * f0]
                d0 = D0[k * f0:(k + 1) * f0]
                if L1 > 1:
                    Ak = Ar[k]
                    _upper_forward(rest[k], rest_layout, act, a0, Ak, rows[k], counts[k], amax[k], bounds[k],
                                   limit)
                    value = kernel(Ak[out:].ctypes, kout, y[i], kparams.ctypes, Dr[k, out:].ctypes)
                    _upper_backward_step(rest[k], rest_layout, act, lr, a0, d0, Ak, Dr[k], rows[k], counts[k],
                                         amax[k], bounds[k], limit)
                else:
                    value = kernel(a0.ctypes, kout, y[i], kparams.ctypes, d0.ctypes)
                values[k] = value
                if not math.isfinite(value):
                    bad[k] = 1
                    failed = True
                for j in range(k * f0, (k + 1) * f0):
                    lrcol[j] = lr
            if failed:
                _first_layer_step(W0, b0, x, D0, lrcol)
                return t + 1
        if T > t0:
            _first_layer_step(W0, b0, X[order[T - 1]], D0, lrcol)
        return T

    @_jit
    def stacked_batch_epoch(W0, b0, gW0, gb0, rest, grest, layout, rest_layout, act, X, y, order, starts, lrs,
                            inv_sizes, identity, chunk, t0, kernel, kparams, A0, D0, Ar, Dr, Xb, lrcol, values, bad,
                            part):
        """Mini-batch and full-batch updates of K copies from update ``t0``; returns the updates done.

        A batch runs ``chunk`` rows at a time, as ``kernels._batch_epoch`` runs it
        (``kernels._chunk_grads``: the first chunk's gradients written, later chunks'
        added through ``part``, as large as the largest weight block, the wide first
        layer's included; every step after the last chunk). ``A0``, ``D0`` hold (chunk, K*f0)
        blocks; ``Ar``, ``Dr`` (K, chunk * width of layers 1..); ``grest`` is shaped
        like ``rest``; ``lrcol`` has length K*f0.
        """
        K = rest.shape[0]
        L1 = layout.shape[0]
        d, f0 = layout[0, 0], layout[0, 1]
        KF = K * f0
        kout = layout[L1 - 1, 1]
        for t in range(t0, starts.shape[0] - 1):
            s0, s1 = starts[t], starts[t + 1]
            m = s1 - s0
            for k in range(K):
                lr = lrs[k, t]
                values[k] = 0.0
                for j in range(k * f0, (k + 1) * f0):
                    lrcol[j] = lr
            for c0 in range(s0, s1, chunk):
                c1 = min(c0 + chunk, s1)
                n = c1 - c0
                first = c0 == s0
                Xm = _chunk_inputs(X, order, Xb, c0, c1, identity)
                # layer 0 for all copies: one wide product
                Z0 = A0[:n * KF].reshape((n, KF))
                np.dot(Xm, W0, Z0)
                _bias_activate_rows(Z0, b0, act, L1 == 1)
                G0 = D0[:n * KF].reshape((n, KF))
                for k in range(K):
                    flat = rest[k]
                    gflat = grest[k]
                    Ak = Ar[k]
                    Dk = Dr[k]
                    c0k = k * f0
                    if L1 > 1:
                        # copy k's layer-0 activations into a contiguous (n, f0) block at the start of Ak
                        A0k = Ak[:n * f0].reshape((n, f0))
                        for r in range(n):
                            zr = Z0[r]
                            ar = A0k[r]
                            for j in range(f0):
                                ar[j] = zr[c0k + j]
                        off = n * f0
                        for l in range(1, L1):
                            fi, fo, wo, bo = rest_layout[l, 0], rest_layout[l, 1], rest_layout[l, 2], rest_layout[l, 3]
                            W = flat[wo:wo + fi * fo].reshape((fi, fo))
                            Z = Ak[off:off + n * fo].reshape((n, fo))
                            np.dot(Ak[off - n * fi:off].reshape((n, fi)), W, Z)
                            _bias_activate_rows(Z, flat[bo:bo + fo], act, l == L1 - 1)
                            off += n * fo
                        out = off - n * kout
                        values[k] += _batch_loss(Ak[out:], Dk[out:], n, kout, y, order[c0:c1], kernel, kparams,
                                                 inv_sizes[t])
                    else:
                        total = 0.0
                        for r in range(n):
                            total += kernel(Z0[r, c0k:].ctypes, kout, y[order[c0 + r]], kparams.ctypes,
                                            G0[r, c0k:].ctypes)
                        values[k] += total
                        scale = inv_sizes[t]
                        for r in range(n):
                            gr = G0[r]
                            for j in range(c0k, c0k + kout):
                                gr[j] *= scale
                        continue
                    # backward of layers L1-1..1 of copy k (gradients, then the delta of l-1 with the old W_l)
                    off = out
                    for l in range(L1 - 1, 0, -1):
                        fi, fo, wo, bo = rest_layout[l, 0], rest_layout[l, 1], rest_layout[l, 2], rest_layout[l, 3]
                        G = Dk[off:off + n * fo].reshape((n, fo))
                        prev = off - n * fi
                        _chunk_grads(Ak[prev:off].reshape((n, fi)), G, gflat[wo:wo + fi * fo], gflat[bo:bo + fo],
                                     part, first)
                        _delta_below(G, flat[wo:wo + fi * fo], Ak[prev:off], Dk[prev:off], act)
                        off = prev
                    # copy k's layer-0 delta into its columns of the wide G0
                    D0k = Dk[:n * f0].reshape((n, f0))
                    for r in range(n):
                        dr = D0k[r]
                        gr = G0[r]
                        for j in range(f0):
                            gr[c0k + j] = dr[j]
                # layer 0 gradient for all copies: one wide product
                _chunk_grads(Xm, G0, gW0.reshape(d * KF), gb0, part, first)
            # the steps: layers 1.. per copy, then layer 0 of all copies
            failed = False
            for k in range(K):
                value = values[k] / m
                values[k] = value
                if not math.isfinite(value):
                    bad[k] = 1
                    failed = True
                for l in range(L1 - 1, 0, -1):
                    fi, fo, wo, bo = rest_layout[l, 0], rest_layout[l, 1], rest_layout[l, 2], rest_layout[l, 3]
                    _gd_step(rest[k, wo:wo + fi * fo], grest[k, wo:wo + fi * fo], rest[k, bo:bo + fo],
                             grest[k, bo:bo + fo], lrs[k, t])
            for r in range(d):
                Wr = W0[r]
                gr = gW0[r]
                for j in range(KF):
                    Wr[j] -= lrcol[j] * gr[j]
            for j in range(KF):
                b0[j] -= lrcol[j] * gb0[j]
            if failed:
                return t + 1
        return starts.shape[0] - 1
