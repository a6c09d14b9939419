"""Compiled (numba) epoch loops: the fast path of ``trainer.train_epoch``.

The fast path is a capability, never a list of plugin names. An epoch runs
compiled only when all three parts offer it:

* the model: ``MLP.compiled_ok`` (the plain network), or an ``MLP`` with batch
  normalisation, which trains in its own mini-batch kernel (``_bn_batch_epoch``);
* the optimizer: ``step_is_plain_gd = True``, declaring that ``step(params,
  grads, lr)`` is exactly ``p -= lr * g`` for every array and keeps no state,
  so the kernel may apply it itself (fused into the backward pass);
* the loss: ``compiled_row_grad(dtype)`` returning ``(kernel, params)``, where
  ``kernel`` is a numba ``cfunc`` with the signature ``ROW_SIGNATURES[dtype]``::

      double kernel(const T *z, intp k, int64 label, const double *params, T *g)

  It returns the loss of one row of ``k`` logits and writes d(row loss)/dz
  into ``g``; ``params`` is the float64 array it returned (class weights,
  say). The batch loss is the mean of the row losses, its gradient the row
  gradients divided by the batch size, as ``Loss.loss_grad`` defines them.

Anything else (a plugin optimizer with state, a loss without a kernel, numba
missing, ``HARNESS_FASTPATH=0``) takes the general numpy path,
unchanged. The optimizer's ``batches`` generator still decides the order: its
index arrays for one epoch are concatenated and handed to the kernel, with the
epoch's learning rates precomputed from the schedule.

Specialisations are kept to one per (kernel, dtype): the activation is an
integer argument and the loss arrives as a C function pointer of a fixed
signature, so ``cache=True`` reuses the compiled code across processes.
"""
from __future__ import annotations

import math
import os
import weakref

import numpy as np

try:  # numba is a dependency, but a missing or broken install must only cost speed
    import numba
    from numba import types as _t
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None

ACTIVATION_CODES = {"relu": 0, "tanh": 1, "sigmoid": 2}
ENV_SWITCH = "HARNESS_FASTPATH"
# rows of a batch that ``_batch_epoch`` runs at a time: 256 rows of a few hundred features and their
# activations fit in a 1 MB L2 cache (measured on 20000 x 100, hidden 128: 128-512 rows are as fast)
CHUNK_ROWS = 256

if numba is not None:
    ROW_SIGNATURES = {
        np.dtype(name): _t.float64(_t.CPointer(nb), _t.intp, _t.int64, _t.CPointer(_t.float64), _t.CPointer(nb))
        for name, nb in (("float64", _t.float64), ("float32", _t.float32))
    }
else:  # pragma: no cover
    ROW_SIGNATURES = {}


def enabled() -> bool:
    """False when numba is missing or the user set ``HARNESS_FASTPATH=0``."""
    return numba is not None and os.environ.get(ENV_SWITCH, "1") not in ("0", "false", "no", "off")


class FastPlan:
    """What one (model, optimizer, loss) needs to run epochs compiled."""

    def __init__(self, model, kernel, kernel_params: np.ndarray):
        self.model = model
        self.kernel = kernel
        self.kernel_params = np.ascontiguousarray(kernel_params, dtype=np.float64)
        self.act = ACTIVATION_CODES[model.activation]
        self.width = int(sum(model.layout[:, 1]))       # activations of every layer, logits last
        self.sample_A = np.empty(self.width, model.dtype)
        self.sample_D = np.empty(self.width, model.dtype)
        self.sample_rows = np.empty(int(model.layout[0, 0]) + self.width, np.int64)  # row lists, per layer
        self.sample_lrcol = np.empty(int(model.layout[0, 1]), model.dtype)          # the first layer's rates
        self.sample_bounds = np.empty(len(model.layout))                            # max |W_l| bounds
        self.skip_limit = skip_limit(model.dtype)
        self._batch_capacity = self._gather_size = 0
        self.A = self.D = self.Xb = self.XH = np.empty(0, model.dtype)
        self.batch_norm = bool(getattr(model, "batch_norm", False))
        if self.batch_norm:
            hidden = int(sum(model.layout[:-1, 1]))
            # running mean (row 0) and variance (row 1) of every hidden layer, copied in and out per epoch
            self.running = np.empty((2, hidden), model.dtype)
            self.inv_std = np.empty(hidden, model.dtype)     # 1/sqrt(batch var + eps) of the current batch
            self.stat = np.empty(hidden, model.dtype)        # per-feature scratch (mean, variance, sums)
            self.stat2 = np.empty(hidden, model.dtype)
            m, eps = model.bn_momentum, model.bn_eps
            # the numpy path's Python scalars, rounded to the model's dtype as numpy rounds them
            self.bn_consts = np.array([1.0 - m, m, eps], model.dtype)

    def batch_buffers(self, rows: int, gathered: int, n_features: int):
        """Activations and deltas for ``rows`` rows; room to gather ``gathered`` input rows."""
        dtype = self.model.dtype
        if rows > self._batch_capacity:
            self.A = np.empty(rows * self.width, dtype)
            self.D = np.empty(rows * self.width, dtype)
            if self.batch_norm:
                self.XH = np.empty(rows * self.width, dtype)  # x-hat of the hidden layers (same offsets as A)
            self._batch_capacity = rows
        if gathered * n_features > self._gather_size:
            self.Xb = np.empty(gathered * n_features, dtype)
            self._gather_size = gathered * n_features
        return self.A, self.D, self.Xb


def skip_limit(dtype) -> float:
    """The weight bound below which the per-sample kernels skip rows with a zero input (relu zeros).

    Far below the dtype's largest value, so that no product or row sum of the
    skipped rows could overflow: skipping them is then exactly the unskipped arithmetic.
    """
    return float(np.finfo(dtype).max) * 2.0 ** -32


def sample_buffers(plan: FastPlan) -> tuple:
    """The per-sample kernel's work arguments after the loss parameters (``_sample_epoch``)."""
    return plan.sample_A, plan.sample_D, plan.sample_rows, plan.sample_lrcol, plan.sample_bounds, plan.skip_limit


_PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def plan_for(model, optimizer, loss):
    """The compiled-path plan for these three objects, or None when any of them lacks the capability.

    The first call for a model loads the kernels (compiling them if no cache
    exists yet); ``train_epoch`` calls it, and a runner should call it once
    before starting its clock so that this never counts as training time.
    """
    if not (enabled() and _model_ok(model) and getattr(optimizer, "step_is_plain_gd", False) is True):
        return None
    cached = _PLANS.get(model)
    if cached is not None and cached[0] is loss:
        return cached[1]
    offer = getattr(loss, "compiled_row_grad", None)
    found = offer(model.dtype) if offer is not None else None
    plan = None
    if found is not None:
        kernel, params = found
        if getattr(kernel, "_sig", None) == ROW_SIGNATURES.get(model.dtype):
            plan = FastPlan(model, kernel, params)
            _warm_up(plan)
    _PLANS[model] = (loss, plan)
    return plan


def _model_ok(model) -> bool:
    """The plain network (``compiled_ok``) or a batch-norm MLP, which ``_bn_batch_epoch`` trains."""
    if getattr(model, "compiled_ok", False):
        return True
    return (getattr(model, "batch_norm", False) is True and len(getattr(model, "running_mean", ())) > 0
            and isinstance(getattr(model, "layout", None), np.ndarray))


def _warm_up(plan: FastPlan) -> None:
    """Load (or, the first time on a machine, compile) both epoch kernels for this dtype now.

    Empty epochs with the argument types of real ones: call ``plan_for`` before
    a run's clock starts and no epoch's time includes compilation.
    """
    model, dtype = plan.model, plan.model.dtype
    X0, y0, none = np.zeros((0, int(model.layout[0, 0])), dtype), np.zeros(0, np.int64), np.zeros(0, np.int64)
    rates = np.zeros(0, dtype)
    if plan.batch_norm:
        _bn_batch_epoch(model.flat_params, model.flat_grads, model.layout, plan.act, X0, y0, none,
                        np.zeros(1, np.int64), rates, rates, rates, rates, plan.bn_consts, False, plan.kernel,
                        plan.kernel_params, plan.A, plan.XH, plan.D, plan.Xb, plan.running, plan.inv_std,
                        plan.stat, plan.stat2)
        return
    _sample_epoch(model.flat_params, model.layout, plan.act, X0, y0, none, rates, plan.kernel, plan.kernel_params,
                  *sample_buffers(plan))
    _batch_epoch(model.flat_params, model.flat_grads, model.layout, plan.act, X0, y0, none, np.zeros(1, np.int64),
                 rates, rates, False, CHUNK_ROWS, plan.kernel, plan.kernel_params, plan.A, plan.D, plan.Xb)


def accepts(plan: FastPlan, X: np.ndarray, y: np.ndarray) -> bool:
    """The kernels read C-contiguous inputs of the model's dtype and int64 labels."""
    return (X.dtype == plan.model.dtype and X.flags.c_contiguous and X.ndim == 2
            and y.dtype == np.int64 and y.flags.c_contiguous)


def run_epoch(plan: FastPlan, batches: list, X: np.ndarray, y: np.ndarray, lrs: np.ndarray):
    """Run one epoch's updates compiled; returns (updates done, samples seen, index of a bad update or -1).

    ``batches`` are the optimizer's index arrays in order, ``lrs`` the learning
    rate of each update. Mirrors the general path: a batch whose loss is not
    finite is still applied, and the epoch stops right after it.
    """
    model = plan.model
    sizes = np.fromiter(map(len, batches), np.int64, len(batches))
    order = np.concatenate(batches).astype(np.int64, copy=False) if batches else np.empty(0, np.int64)
    if len(order) and (order.min() < 0 or order.max() >= len(y)):
        raise IndexError(f"optimizer batch index out of range 0..{len(y) - 1}")  # the kernels do not bounds-check
    lrs = lrs.astype(model.dtype)
    if plan.batch_norm:
        return _run_bn_epoch(plan, sizes, order, X, y, lrs)
    if len(sizes) and np.all(sizes == 1):
        done, bad = _sample_epoch(model.flat_params, model.layout, plan.act, X, y, order, lrs,
                                  plan.kernel, plan.kernel_params, *sample_buffers(plan))
        return done, done, bad
    starts, identity, (A, D, Xb), inv_sizes = _batches_laid_out(plan, sizes, order, X, y, CHUNK_ROWS)
    done, bad = _batch_epoch(model.flat_params, model.flat_grads, model.layout, plan.act, X, y, order, starts, lrs,
                             inv_sizes, identity, CHUNK_ROWS, plan.kernel, plan.kernel_params, A, D, Xb)
    return done, int(starts[done]), bad


def _batches_laid_out(plan: FastPlan, sizes: np.ndarray, order: np.ndarray, X: np.ndarray, y: np.ndarray,
                      chunk: int = 0):
    """What the batch kernels take besides the weights: batch start offsets, whether the one batch is the
    whole set in order (then no gather), the work buffers sized for the largest batch (or for ``chunk``
    rows, when the kernel runs a batch that many rows at a time), and 1/batch size."""
    starts = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=starts[1:])
    n = len(y)
    identity = len(sizes) == 1 and sizes[0] == n and np.array_equal(order, np.arange(n))
    rows = int(sizes.max()) if len(sizes) else 0
    if chunk:
        rows = min(rows, chunk)
    buffers = plan.batch_buffers(rows, 0 if identity else rows, X.shape[1])
    inv_sizes = (1.0 / np.maximum(sizes, 1)).astype(plan.model.dtype)
    return starts, identity, buffers, inv_sizes


def _run_bn_epoch(plan: FastPlan, sizes: np.ndarray, order: np.ndarray, X: np.ndarray, y: np.ndarray,
                  lrs: np.ndarray):
    """A batch-norm epoch: every batch (a batch of one too) through ``_bn_batch_epoch``.

    The running statistics live in the model's per-layer arrays; they are
    copied into one buffer for the kernel and written back after it, so the
    evaluation (``forward(train=False)``) sees what the numpy path would leave.
    """
    model, dtype = plan.model, plan.model.dtype
    starts, identity, (A, D, Xb), inv_sizes = _batches_laid_out(plan, sizes, order, X, y)
    counts = sizes.astype(dtype)
    # the numpy path's (momentum * n/(n-1)) for the running variance, 1 for a batch of one
    with np.errstate(divide="ignore", invalid="ignore"):
        unbiased = np.where(sizes > 1, sizes / (sizes - 1.0), 1.0)
    var_scales = (model.bn_momentum * unbiased).astype(dtype)
    widths = model.layout[:-1, 1]
    offsets = np.concatenate(([0], np.cumsum(widths)))
    for l in range(len(widths)):
        plan.running[0, offsets[l]:offsets[l + 1]] = model.running_mean[l]
        plan.running[1, offsets[l]:offsets[l + 1]] = model.running_var[l]
    try:
        done, bad = _bn_batch_epoch(model.flat_params, model.flat_grads, model.layout, plan.act, X, y, order,
                                    starts, lrs, inv_sizes, counts, var_scales, plan.bn_consts, identity,
                                    plan.kernel, plan.kernel_params, A, plan.XH, D, Xb, plan.running,
                                    plan.inv_std, plan.stat, plan.stat2)
    finally:
        for l in range(len(widths)):
            model.running_mean[l][...] = plan.running[0, offsets[l]:offsets[l + 1]]
            model.running_var[l][...] = plan.running[1, offsets[l]:offsets[l + 1]]
    return done, int(starts[done]), bad


if numba is not None:
    _jit = numba.njit(cache=True, nogil=True)

    @_jit
    def _activate(z, act):
        if act == 0:  # max(z, 0) with numpy's NaN propagation
            if z > 0 or z != z:
                return z
            return 0.0
        if act == 1:
            return math.tanh(z)
        if z >= 0:
            return 1 / (1 + math.exp(-z))
        e = math.exp(z)
        return e / (1 + e)

    @_jit
    def _derivative(a, act):
        """act'(z) written in terms of the activation output a (as the numpy path does)."""
        if act == 0:
            return 1.0 if a > 0 else 0.0
        if act == 1:
            return 1 - a * a
        return (1 - a) * a

    # ---------------------------------------------------------------- per-sample helpers
    # Shared by ``_sample_epoch`` and ``stacked_kernels.stacked_sample_epoch`` so that both run the same
    # operations on every weight in the same order (their records are compared bit for bit). No helper
    # reorders a sum: each z[j] is still ((0 + a[r0] W[r0, j]) + a[r1] W[r1, j]) + ... in row order.

    @_jit
    def _row(flat, wo, fo, r):
        """Row r of the (fi, fo) weight block at ``flat[wo:]``: a slice, no reshape (numba's reshape is a
        C call, ~20 ns, which the per-sample loops would pay per layer and sample)."""
        p = wo + r * fo
        return flat[p:p + fo]

    @_jit
    def _rows_forward(a, flat, wo, fo, z, rows, n):
        """``z = sum of a[r] * W[r, :]`` over the rows ``rows[:n]`` of the (fi, fo) block W at ``flat[wo:]``,
        added in that order.

        Four rows per pass over z: (((z + a0 w0) + a1 w1) + a2 w2) + a3 w3 rounds
        exactly as four passes do, with a quarter of the loads and stores of z
        (the loop is bound by them, not by arithmetic).
        """
        for j in range(fo):
            z[j] = 0
        for h in range(n // 4):
            r0, r1, r2, r3 = rows[4 * h], rows[4 * h + 1], rows[4 * h + 2], rows[4 * h + 3]
            a0, a1, a2, a3 = a[r0], a[r1], a[r2], a[r3]
            W0, W1 = _row(flat, wo, fo, r0), _row(flat, wo, fo, r1)
            W2, W3 = _row(flat, wo, fo, r2), _row(flat, wo, fo, r3)
            for j in range(fo):
                z[j] = (((z[j] + a0 * W0[j]) + a1 * W1[j]) + a2 * W2[j]) + a3 * W3[j]
        for q in range(n - n % 4, n):
            r = rows[q]
            ar = a[r]
            Wr = _row(flat, wo, fo, r)
            for j in range(fo):
                z[j] += ar * Wr[j]

    @_jit
    def _stepped_forward(x, W, z, x_prev, delta, lrs):
        """The previous sample's deferred step of the first layer fused with this sample's product:
        ``W[r, j] -= lrs[j] * (x_prev[r] * delta[j])``, then ``z[j] += x[r] * W[r, j]`` with the new W.

        The same operations as a step pass followed by a product pass, in one pass
        over W (the first layer is the largest and both passes are bound by memory
        traffic). Two rows per pass over z; with four the compiler no longer
        vectorises the loop. ``lrs`` holds the rate of each column (one rate for a
        run alone, one per copy in the stacked kernel).
        """
        d, fo = W.shape
        for j in range(fo):
            z[j] = 0
        for h in range(d // 2):
            r = 2 * h
            a0, a1, p0, p1 = x[r], x[r + 1], x_prev[r], x_prev[r + 1]
            W0, W1 = W[r], W[r + 1]
            for j in range(fo):
                w0 = W0[j] - lrs[j] * (p0 * delta[j])
                W0[j] = w0
                w1 = W1[j] - lrs[j] * (p1 * delta[j])
                W1[j] = w1
                z[j] = (z[j] + a0 * w0) + a1 * w1
        for r in range(d - d % 2, d):
            ar, pr = x[r], x_prev[r]
            Wr = W[r]
            for j in range(fo):
                w = Wr[j] - lrs[j] * (pr * delta[j])
                Wr[j] = w
                z[j] += ar * w

    @_jit
    def _first_layer_step(W, b, x, delta, lrs):
        """The first layer's plain-GD step on its own: ``W -= lrs (x delta)``, ``b -= lrs delta`` column-wise
        (the deferred step of an epoch's last sample, or of the update at which a loss turned non-finite)."""
        d, fo = W.shape
        for r in range(d):
            xr = x[r]
            Wr = W[r]
            for j in range(fo):
                Wr[j] -= lrs[j] * (xr * delta[j])
        _bias_step(b, delta, lrs)

    @_jit
    def _bias_step(b, delta, lrs):
        """``b -= lrs * delta`` element-wise (the first layer's deferred bias step)."""
        for j in range(b.shape[0]):
            b[j] -= lrs[j] * delta[j]

    @_jit
    def _bias_activate(z, b, act, last):
        """``z += b``, activated unless it is the output layer."""
        if last:
            for j in range(z.shape[0]):
                z[j] += b[j]
        else:
            for j in range(z.shape[0]):
                z[j] = _activate(z[j] + b[j], act)

    @_jit
    def _all_rows(a, rows):
        """List every row of the layer in ``rows``; returns (row count, max |a|, NaN if any a is NaN)."""
        for r in range(a.shape[0]):
            rows[r] = r
        return a.shape[0], _abs_max(a)

    @_jit
    def _nonzero_rows(a, rows):
        """List the rows with ``a[r] != 0`` in ``rows`` (no branch on the data); returns (their count,
        max |a|, NaN if any a is NaN). A zero input contributes only +-0 to the layer's sums and
        its row's step is ``W -= lr (0 delta) = W``, exactly, while the weights and deltas are finite."""
        n = 0
        m = 0.0
        for r in range(a.shape[0]):
            v = a[r]
            rows[n] = r
            n += v != 0
            v = abs(v)
            if not v <= m and m == m:
                m = v
        return n, m

    @_jit
    def _abs_max(v):
        """max |v[j]|, NaN when some v[j] is NaN (for the bounds that decide whether rows may be skipped)."""
        m = 0.0
        for j in range(v.shape[0]):
            a = abs(v[j])
            if not a <= m and m == m:
                m = a
        return m

    @_jit
    def _weight_bounds(flat, layout, bounds):
        """``bounds[l]`` = max |W_l| for the layers above the first (the first layer never skips rows)."""
        for l in range(1, layout.shape[0]):
            fi, fo, wo = layout[l, 0], layout[l, 1], layout[l, 2]
            bounds[l] = _abs_max(flat[wo:wo + fi * fo])

    @_jit
    def _rows_backward_step(flat, wo, fi, fo, b, delta, a_prev, d_prev, act, lr, rows, n):
        """One layer's backward pass for one sample with the plain-GD step fused, over the rows ``rows[:n]``
        of its (fi, fo) weight block at ``flat[wo:]``.

        Per row: first its entry of the delta of the layer below (with the row
        before its update: the numpy path's order), then ``W[r] -= lr (a_prev[r] delta)``.
        When only the rows with a non-zero input are listed, the others' deltas are
        set to 0: what ``s * act'(0)`` gives for a finite s when act'(0) = 0 (relu,
        sigmoid; the caller never skips for tanh).
        """
        if n < fi:
            for r in range(fi):
                d_prev[r] = 0.0
        for q in range(n):
            r = rows[q]
            ar = a_prev[r]
            Wr = _row(flat, wo, fo, r)
            s = 0.0
            for j in range(fo):
                s += Wr[j] * delta[j]
            d_prev[r] = s * _derivative(ar, act)
            for j in range(fo):
                Wr[j] -= lr * (ar * delta[j])
        for j in range(fo):
            b[j] -= lr * delta[j]

    @_jit
    def _upper_forward(flat, layout, act, a0, A, rows, counts, amax, bounds, limit):
        """Layers 1.. for one sample; ``a0`` is the first layer's output, ``A`` receives layer 1's output
        onwards (logits last); ``rows`` the row lists (layer l's at the offset of its input in ``a0|A``).

        A layer lists only its rows with a non-zero input (relu zeros) while its
        weight bound says they are finite (< ``limit``); otherwise all rows, and the
        arithmetic is the unskipped one. ``counts[l]``, ``amax[l]`` are kept for the backward pass.
        """
        L1 = layout.shape[0]
        f0 = layout[0, 1]
        off = 0
        for l in range(1, L1):
            fi, fo, wo, bo = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
            a_prev = a0 if l == 1 else A[off - fi:off]
            rl = rows[f0 + off - fi:f0 + off] if l > 1 else rows[:f0]
            if bounds[l] < limit:
                counts[l], amax[l] = _nonzero_rows(a_prev, rl)
            else:
                counts[l], amax[l] = _all_rows(a_prev, rl)
            z = A[off:off + fo]
            _rows_forward(a_prev, flat, wo, fo, z, rl, counts[l])
            _bias_activate(z, flat[bo:bo + fo], act, l == L1 - 1)
            off += fo

    @_jit
    def _upper_backward_step(flat, layout, act, lr, a0, d0, A, D, rows, counts, amax, bounds, limit):
        """Backward with the step fused for layers L-1..1 of one sample; the first layer's delta lands in ``d0``.

        A layer skips the rows with a zero input only when that is exactly the
        unskipped arithmetic: weights below ``limit`` (finite), deltas finite and
        small enough that no row's sum overflows, a finite rate, act'(0) = 0. Its
        bound then grows by what the step can add, |lr| max|a| max|delta| (times
        1 + 2^-20 for rounding); a NaN or overflow anywhere makes it NaN or inf and
        the layer takes the unskipped path for the rest of the kernel call.
        """
        L1 = layout.shape[0]
        f0 = layout[0, 1]
        off = A.shape[0] - layout[L1 - 1, 1]
        for l in range(L1 - 1, 0, -1):
            fi, fo, wo, bo = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
            prev = off - fi
            delta = D[off:off + fo]
            dmax = _abs_max(delta)
            bound = bounds[l]
            rl = rows[f0 + prev:f0 + off] if l > 1 else rows[:f0]
            a_prev = a0 if l == 1 else A[prev:off]
            n = counts[l]
            if n < fi and not (act != 1 and bound * dmax * fo < limit and abs(lr) < limit):
                n, _ = _all_rows(a_prev, rl)
            _rows_backward_step(flat, wo, fi, fo, flat[bo:bo + fo], delta, a_prev, d0 if l == 1 else D[prev:off],
                                act, lr, rl, n)
            bounds[l] = (bound + abs(lr) * amax[l] * dmax) * (1 + 2.0 ** -20)
            off = prev

    @_jit
    def _bias_activate_rows(Z, b, act, last):
        """``Z += b`` row by row, activated unless it is the output layer (the batch kernels' forward step)."""
        m, fo = Z.shape
        for r in range(m):
            zr = Z[r]
            if last:
                for j in range(fo):
                    zr[j] += b[j]
            else:
                for j in range(fo):
                    zr[j] = _activate(zr[j] + b[j], act)

    @_jit
    def _batch_loss(A_out, D_out, m, k, y, rows, kernel, kparams, scale):
        """Sum over a batch's rows of the loss kernel, which writes each row's output delta into ``D_out``;
        the deltas are then scaled by ``scale`` (1 / batch size). ``rows`` are the batch's sample indices."""
        total = 0.0
        for r in range(m):
            total += kernel(A_out[r * k:].ctypes, k, y[rows[r]], kparams.ctypes, D_out[r * k:].ctypes)
        for q in range(m * k):
            D_out[q] *= scale
        return total

    @_jit
    def _gather_rows(X, rows, Xb):
        """The batch's rows of ``X`` copied, in order, into the work buffer ``Xb``; returns them as (m, d)."""
        m, d = rows.shape[0], X.shape[1]
        Xm = Xb[:m * d].reshape((m, d))
        for r in range(m):
            src = X[rows[r]]
            dst = Xm[r]
            for c in range(d):
                dst[c] = src[c]
        return Xm

    @_jit
    def _layer_grads(a_prev, G, gW, gb):
        """One layer's batch gradients: ``gW = a_prev^T G`` (BLAS) and ``gb`` = the column sums of ``G``."""
        np.dot(a_prev.T, G, gW)
        _bias_grad(G, gb)

    @_jit
    def _bias_grad(G, gb):
        """``gb`` = the column sums of the batch's deltas ``G``."""
        for j in range(G.shape[1]):
            gb[j] = 0
        _bias_grad_add(G, gb)

    @_jit
    def _gd_step(Wf, gWf, b, gb, lr):
        """The plain-GD step of one layer: ``W -= lr gW``, ``b -= lr gb``."""
        for q in range(Wf.shape[0]):
            Wf[q] -= lr * gWf[q]
        for j in range(b.shape[0]):
            b[j] -= lr * gb[j]

    @_jit
    def _sample_epoch(flat, layout, act, X, y, order, lrs, kernel, kparams, A, D, rows, lrcol, bounds, limit):
        """Per-sample updates: matrix-vector loops, the plain-GD step fused into the passes over the weights.

        Layers 1.. run forward, then backward with their step fused (``_upper_*``).
        The first layer's step is deferred to the next sample's forward pass
        (``_stepped_forward``: one pass over the largest matrix instead of two) and
        applied on its own after the epoch's last update or the update at which
        the loss turned non-finite, so the weights on return are those of the
        numpy path's order of operations. ``rows`` (int64, at least
        ``layout[0, 0] + width``), ``lrcol`` (``layout[0, 1]``) and ``bounds`` (one per
        layer) are work buffers; ``limit`` is the weight bound up to which rows
        with a zero input may be skipped (``skip_limit``).
        """
        L1 = layout.shape[0]
        k = layout[L1 - 1, 1]
        d, f0, wo0, bo0 = layout[0, 0], layout[0, 1], layout[0, 2], layout[0, 3]
        W0 = flat[wo0:wo0 + d * f0].reshape((d, f0))
        b0 = flat[bo0:bo0 + f0]
        a0 = A[:f0]
        d0 = D[:f0]
        Au = A[f0:]
        Du = D[f0:]
        ident = rows[:d]
        upper_rows = rows[d:]
        for r in range(d):
            ident[r] = r
        counts = np.zeros(L1, np.int64)
        amax = np.zeros(L1)
        _weight_bounds(flat, layout, bounds)
        out = A.shape[0] - k
        logits = A[out:].ctypes
        grad = D[out:].ctypes
        params = kparams.ctypes
        T = order.shape[0]
        for t in range(T):
            i = order[t]
            x = X[i]
            if t == 0:
                _rows_forward(x, flat, wo0, f0, a0, ident, d)
            else:
                _stepped_forward(x, W0, a0, X[order[t - 1]], d0, lrcol)
                _bias_step(b0, d0, lrcol)
            _bias_activate(a0, b0, act, L1 == 1)
            _upper_forward(flat, layout, act, a0, Au, upper_rows, counts, amax, bounds, limit)
            value = kernel(logits, k, y[i], params, grad)
            _upper_backward_step(flat, layout, act, lrs[t], a0, d0, Au, Du, upper_rows, counts, amax, bounds,
                                 limit)
            for j in range(f0):
                lrcol[j] = lrs[t]
            if not math.isfinite(value):
                _first_layer_step(W0, b0, x, d0, lrcol)
                return t + 1, t
        if T > 0:
            _first_layer_step(W0, b0, X[order[T - 1]], d0, lrcol)
        return T, -1

    @_jit
    def _bias_grad_add(G, gb):
        """``gb += `` the rows of the deltas ``G``, one after another (``_bias_grad`` without the zeroing:
        a batch's chunks summed into one bias gradient in the same row order)."""
        m, fo = G.shape
        for r in range(m):
            gr = G[r]
            for j in range(fo):
                gb[j] += gr[j]

    @_jit
    def _chunk_inputs(X, order, Xb, c0, c1, identity):
        """The input rows ``order[c0:c1]`` of a chunk: a view of ``X`` when the batch is the whole set in
        order (``identity``), else copied into ``Xb`` (``_gather_rows``)."""
        if identity:
            return X[c0:c1]
        return _gather_rows(X, order[c0:c1], Xb)

    @_jit
    def _chunk_grads(a_prev, G, gW, gb, part, first):
        """One chunk's gradients of a layer: ``a_prev^T G`` written into ``gW`` (the batch's first chunk) or
        computed into ``part`` and added; the rows of ``G`` summed onto ``gb`` (zeroed first by the first chunk)."""
        fi, fo = a_prev.shape[1], G.shape[1]
        if first:
            np.dot(a_prev.T, G, gW.reshape((fi, fo)))
            for j in range(fo):
                gb[j] = 0
        else:
            np.dot(a_prev.T, G, part[:fi * fo].reshape((fi, fo)))
            for q in range(fi * fo):
                gW[q] += part[q]
        _bias_grad_add(G, gb)

    @_jit
    def _delta_below(G, Wf, A_prev, D_prev, act):
        """The delta of the layer below: ``(G W^T) * act'(a_prev)`` into ``D_prev`` (flat, like ``A_prev``)."""
        n, fo = G.shape
        fi = Wf.shape[0] // fo
        np.dot(G, Wf.reshape((fi, fo)).T, D_prev.reshape((n, fi)))
        for q in range(n * fi):
            D_prev[q] *= _derivative(A_prev[q], act)

    @_jit
    def _batch_epoch(flat, grads, layout, act, X, y, order, starts, lrs, inv_sizes, identity, chunk, kernel,
                     kparams, A, D, Xb):
        """Mini-batch and full-batch updates: BLAS products (np.dot) and fused element-wise loops.

        A batch runs ``chunk`` rows at a time: forward, loss and backward of one
        chunk, its weight gradients added to the batch's (the first chunk's product
        written directly) and its bias gradients summed on in row order; the step
        follows the last chunk. The chunk's activations then stay in cache, and the
        narrow products (the output layer's k columns) run several times faster
        than over all rows of a full batch. A batch of at most ``chunk`` rows is one
        chunk: the arithmetic of a single pass. ``A``, ``D`` hold ``chunk`` rows of
        every layer, ``Xb`` ``chunk`` gathered input rows.
        """
        L1 = layout.shape[0]
        k = layout[L1 - 1, 1]
        biggest = 0
        for l in range(L1):
            biggest = max(biggest, layout[l, 0] * layout[l, 1])
        part = np.empty(biggest, A.dtype)   # one chunk's weight gradient, before it is added
        for t in range(starts.shape[0] - 1):
            s0, s1 = starts[t], starts[t + 1]
            m = s1 - s0
            total = 0.0
            for c0 in range(s0, s1, chunk):
                c1 = min(c0 + chunk, s1)
                n = c1 - c0
                first = c0 == s0
                Xm = _chunk_inputs(X, order, Xb, c0, c1, identity)
                # forward; layer l's (n, fo) block starts at n * (sum of earlier widths)
                off = 0
                for l in range(L1):
                    fi, fo, wo, bo = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
                    W = flat[wo:wo + fi * fo].reshape((fi, fo))
                    Z = A[off:off + n * fo].reshape((n, fo))
                    if l == 0:
                        np.dot(Xm, W, Z)
                    else:
                        np.dot(A[off - n * fi:off].reshape((n, fi)), W, Z)
                    _bias_activate_rows(Z, flat[bo:bo + fo], act, l == L1 - 1)
                    off += n * fo
                off -= n * k
                total += _batch_loss(A[off:], D[off:], n, k, y, order[c0:c1], kernel, kparams, inv_sizes[t])
                # backward: gradients of layer l, then the delta of l-1 (the step waits for the last chunk)
                for l in range(L1 - 1, -1, -1):
                    fi, fo, wo, bo = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
                    G = D[off:off + n * fo].reshape((n, fo))
                    prev = off - n * fi
                    a_prev = Xm if l == 0 else A[prev:off].reshape((n, fi))
                    _chunk_grads(a_prev, G, grads[wo:wo + fi * fo], grads[bo:bo + fo], part, first)
                    if l > 0:
                        _delta_below(G, flat[wo:wo + fi * fo], A[prev:off], D[prev:off], act)
                    off = prev
            for l in range(L1):
                fi, fo, wo, bo = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
                _gd_step(flat[wo:wo + fi * fo], grads[wo:wo + fi * fo], flat[bo:bo + fo], grads[bo:bo + fo], lrs[t])
            if not math.isfinite(total / m):
                return t + 1, t
        return starts.shape[0] - 1, -1

    @_jit
    def _bn_batch_epoch(flat, grads, layout, act, X, y, order, starts, lrs, inv_sizes, counts, var_scales, consts,
                        identity, kernel, kparams, A, XH, D, Xb, running, inv_std, stat, stat2):
        """Mini-batch updates of a batch-norm MLP, in the order of operations of the numpy path.

        Hidden layer l (``MLP.forward`` / ``_batch_norm_forward``): z = a W + b;
        the batch mean and biased variance (sums row by row, then divided by the
        batch size); the running averages updated as the model does; x-hat =
        (z - mean) * (1 / sqrt(var + eps)), so a batch of one gives x-hat = 0 and
        1/sqrt(eps); output act(x-hat * gamma + beta). ``counts`` holds each batch
        size, ``var_scales`` momentum * n/(n-1), ``consts`` (1 - momentum,
        momentum, eps), all in the model's dtype as numpy rounds them; ``running``
        holds the running means (row 0) and variances (row 1) of all hidden layers.
        Backward: ``MLP._batch_norm_backward``; gamma and beta of layer l follow
        its bias in the flat buffer. Each parameter is stepped right after its last
        use, so every gradient sees the parameters of before the update.
        """
        L1 = layout.shape[0]
        k = layout[L1 - 1, 1]
        keep, mom, eps = consts[0], consts[1], consts[2]
        rmean = running[0]
        rvar = running[1]
        hidden_total = inv_std.shape[0]
        for t in range(starts.shape[0] - 1):
            s0, s1 = starts[t], starts[t + 1]
            m = s1 - s0
            lr = lrs[t]
            cnt = counts[t]
            vscale = var_scales[t]
            if identity:
                Xm = X
            else:
                Xm = _gather_rows(X, order[s0:s1], Xb)
            # forward; layer l's (m, fo) block starts at m * (sum of earlier widths), in A and in XH
            off = 0
            h = 0  # layer l's first feature among the hidden layers' features (statistics buffers)
            for l in range(L1):
                fi, fo, wo, bo = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
                W = flat[wo:wo + fi * fo].reshape((fi, fo))
                b = flat[bo:bo + fo]
                hidden = l < L1 - 1
                Z = (XH if hidden else A)[off:off + m * fo].reshape((m, fo))
                if l == 0:
                    np.dot(Xm, W, Z)
                else:
                    np.dot(A[off - m * fi:off].reshape((m, fi)), W, Z)
                if not hidden:
                    for r in range(m):
                        zr = Z[r]
                        for j in range(fo):
                            zr[j] += b[j]
                else:
                    gamma = flat[bo + fo:bo + 2 * fo]
                    beta = flat[bo + 2 * fo:bo + 3 * fo]
                    mean = stat[h:h + fo]
                    var = stat2[h:h + fo]
                    inv = inv_std[h:h + fo]
                    rm = rmean[h:h + fo]
                    rv = rvar[h:h + fo]
                    for j in range(fo):
                        mean[j] = 0
                        var[j] = 0
                    for r in range(m):  # z += b, summed for the mean in the same pass
                        zr = Z[r]
                        for j in range(fo):
                            zr[j] += b[j]
                            mean[j] += zr[j]
                    for j in range(fo):
                        mean[j] = mean[j] / cnt
                    for r in range(m):
                        zr = Z[r]
                        for j in range(fo):
                            zr[j] -= mean[j]
                            var[j] += zr[j] * zr[j]
                    for j in range(fo):
                        var[j] = var[j] / cnt
                        rm[j] = rm[j] * keep
                        rm[j] += mom * mean[j]
                        rv[j] = rv[j] * keep
                        rv[j] += vscale * var[j]
                        inv[j] = var[j] + eps
                        inv[j] = math.sqrt(inv[j])
                        inv[j] = 1 / inv[j]
                    Out = A[off:off + m * fo].reshape((m, fo))
                    for r in range(m):
                        zr = Z[r]
                        outr = Out[r]
                        for j in range(fo):
                            zr[j] = zr[j] * inv[j]
                            outr[j] = zr[j] * gamma[j]
                            outr[j] += beta[j]
                            outr[j] = _activate(outr[j], act)
                    h += fo
                off += m * fo
            out = off - m * k
            total = _batch_loss(A[out:], D[out:], m, k, y, order[s0:s1], kernel, kparams, inv_sizes[t])
            value = total / m
            # backward: gradients of layer l; delta of l-1 (old W_l) through the activation and batch norm
            off = out
            h = hidden_total
            for l in range(L1 - 1, -1, -1):
                fi, fo, wo, bo = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
                G = D[off:off + m * fo].reshape((m, fo))
                Wf = flat[wo:wo + fi * fo]
                gWf = grads[wo:wo + fi * fo]
                b = flat[bo:bo + fo]
                gb = grads[bo:bo + fo]
                prev = off - m * fi
                if l == 0:
                    _layer_grads(Xm, G, gWf.reshape((fi, fo)), gb)
                else:
                    _layer_grads(A[prev:off].reshape((m, fi)), G, gWf.reshape((fi, fo)), gb)
                if l > 0:
                    np.dot(G, Wf.reshape((fi, fo)).T, D[prev:off].reshape((m, fi)))
                    # batch norm of layer l-1 (width fi): dL/d(its output) -> dL/dz, gamma and beta gradients
                    h -= fi
                    pbo = layout[l - 1, 3]
                    gamma = flat[pbo + fi:pbo + 2 * fi]
                    beta = flat[pbo + 2 * fi:pbo + 3 * fi]
                    g_gamma = grads[pbo + fi:pbo + 2 * fi]
                    g_beta = grads[pbo + 2 * fi:pbo + 3 * fi]
                    Dm = D[prev:off].reshape((m, fi))
                    Am = A[prev:off].reshape((m, fi))
                    XHm = XH[prev:off].reshape((m, fi))
                    inv = inv_std[h:h + fi]
                    s_gamma = stat[h:h + fi]
                    s_beta = stat2[h:h + fi]
                    for j in range(fi):
                        g_gamma[j] = 0
                        g_beta[j] = 0
                    for r in range(m):  # through the activation, then the gamma and beta sums, in one pass
                        dr = Dm[r]
                        ar = Am[r]
                        xr = XHm[r]
                        for j in range(fi):
                            dr[j] *= _derivative(ar[j], act)
                            g_gamma[j] += dr[j] * xr[j]
                            g_beta[j] += dr[j]
                    for j in range(fi):
                        s_gamma[j] = g_gamma[j] * gamma[j]
                        s_gamma[j] = s_gamma[j] / cnt
                        s_beta[j] = gamma[j] * g_beta[j]
                        s_beta[j] = s_beta[j] / cnt
                    for r in range(m):
                        dr = Dm[r]
                        xr = XHm[r]
                        for j in range(fi):
                            dr[j] *= gamma[j]
                            dr[j] -= xr[j] * s_gamma[j]
                            dr[j] -= s_beta[j]
                            dr[j] *= inv[j]
                    for j in range(fi):
                        gamma[j] -= lr * g_gamma[j]
                        beta[j] -= lr * g_beta[j]
                _gd_step(Wf, gWf, b, gb, lr)
                off = prev
            if not math.isfinite(value):
                return t + 1, t
        return starts.shape[0] - 1, -1
