"""A numpy multi-layer perceptron with optional batch normalisation, built for speed.

Layers: ``[Linear -> (BatchNorm) -> activation] * len(hidden) -> Linear``; the
last linear layer produces the logits a loss plugin turns into probabilities.
``hidden=()`` is softmax/logistic regression, the convex case.

The model owns a flat list of parameter arrays ``params`` (``W1, b1, [gamma1,
beta1], ..., WL, bL``; ``W`` has shape (fan_in, fan_out) so ``Z = A @ W + b``)
and a matching list ``grads``; both are allocated once, as views into one
contiguous buffer each (``flat_params``, ``flat_grads``; ``layout`` gives each
layer's sizes and offsets), and the optimizer updates ``params`` in place. The
compiled epoch kernels (``harness.learning.kernels``) train the same buffers. Work buffers are allocated once per batch size and
reused, and every array operation writes through ``out=``. One sample per update
takes a separate path on 1-D vectors (``sample_grad``) because the 2-D path's
per-call overhead dominates at that size.

Initial weights depend only on (seed, architecture): every optimizer and loss
with the same seed, with or without batch norm, starts from the same weights,
so comparisons are paired.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit

ACTIVATIONS = ("relu", "tanh", "sigmoid")
_dot, _add, _multiply, _subtract, _copyto = np.dot, np.add, np.multiply, np.subtract, np.copyto
_maximum, _greater, _tanh = np.maximum, np.greater, np.tanh
DTYPES = ("float64", "float32")


def _activate(name: str, a: np.ndarray) -> None:
    """Apply the activation to ``a`` in place."""
    if name == "relu":
        np.maximum(a, 0.0, out=a)
    elif name == "tanh":
        np.tanh(a, out=a)
    else:
        expit(a, out=a)


def init_weights(n_features: int, hidden: tuple, n_outputs: int, activation: str, seed: int) -> list:
    """Float64 (W, b) pairs drawn from a generator seeded by ``seed`` alone.

    He normal (std sqrt(2/fan_in)) into relu layers, Glorot uniform
    (limit sqrt(6/(fan_in+fan_out))) into tanh/sigmoid layers and into the
    output layer; biases start at zero.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    sizes = (n_features, *hidden, n_outputs)
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        is_output = i == len(sizes) - 2
        if activation == "relu" and not is_output:
            W = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))
        else:
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            W = rng.uniform(-limit, limit, size=(fan_in, fan_out))
        layers.append((W, np.zeros(fan_out)))
    return layers


class _Buffers:
    """Work arrays for one batch size (activations, deltas, batch-norm statistics)."""

    def __init__(self, n: int, sizes: tuple, batch_norm: bool, dtype):
        hidden = sizes[1:-1]
        self.A = [np.empty((n, h), dtype) for h in hidden]         # activation outputs
        self.D = [np.empty((n, h), dtype) for h in hidden]         # deltas dL/dZ
        self.tmp = [np.empty((n, h), dtype) for h in hidden]       # derivative scratch
        self.mask = [np.empty((n, h), bool) for h in hidden]       # relu derivative
        self.xhat = [np.empty((n, h), dtype) for h in hidden] if batch_norm else []
        self.inv_std = [np.empty(h, dtype) for h in hidden] if batch_norm else []
        self.stat = [np.empty(h, dtype) for h in hidden]           # per-feature scratch
        self.logits = np.empty((n, sizes[-1]), dtype)
        self.grad_logits = np.empty((n, sizes[-1]), dtype)
        self.X = np.empty((n, sizes[0]), dtype)                     # gathered mini-batch
        self.y = np.empty(n, np.int64)
        self.ones = np.ones(n, dtype)                               # sums over the batch via BLAS


ALIGNMENT = 64   # bytes: a cache line, and the width of an AVX-512 register


def aligned_zeros(n: int, dtype) -> np.ndarray:
    """A zeroed 1-D array whose first element starts on a ``ALIGNMENT``-byte boundary.

    Why: the compiled per-sample loops stream the first layer's weights from the
    start of ``flat_params``; where numpy's allocator leaves the buffer 16 bytes
    off a cache line, every vector load of those loops straddles two lines
    (10-15% slower, measured in benchmarks/README.md). The values are unchanged.
    """
    dtype = np.dtype(dtype)
    raw = np.zeros(n * dtype.itemsize + ALIGNMENT, np.uint8)
    skip = (-raw.ctypes.data) % ALIGNMENT
    return raw[skip:skip + n * dtype.itemsize].view(dtype)


class MLP:
    """Fully connected network; see the module docstring for layout and conventions.

    Parameters
    ----------
    n_features, n_outputs : input width and number of logits.
    hidden : widths of the hidden layers; ``()`` for no hidden layer.
    activation : ``relu``, ``tanh`` or ``sigmoid``.
    batch_norm : insert batch normalisation after each hidden linear layer.
    seed : initial weights depend on it and the architecture only.
    dtype : ``float64`` (default) or ``float32``.
    bn_momentum, bn_eps : running-average rate and variance epsilon of batch norm.
    """

    def __init__(self, n_features: int, n_outputs: int, hidden=(), activation: str = "relu",
                 batch_norm: bool = False, seed: int = 0, dtype: str = "float64",
                 bn_momentum: float = 0.1, bn_eps: float = 1e-5):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        if str(np.dtype(dtype)) not in DTYPES:
            raise ValueError(f"dtype must be float64 or float32, got {dtype!r}")
        hidden = tuple(int(h) for h in hidden)
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden layer widths must be positive, got {hidden}")
        if batch_norm and not hidden:
            raise ValueError("batch normalisation needs at least one hidden layer")
        self.sizes = (int(n_features), *hidden, int(n_outputs))
        self.hidden = hidden
        self.activation = activation
        self.batch_norm = bool(batch_norm)
        self.dtype = np.dtype(dtype)
        self.bn_momentum = float(bn_momentum)
        self.bn_eps = float(bn_eps)

        layers = init_weights(n_features, hidden, n_outputs, activation, seed)
        sizes = []
        for i, (W, b) in enumerate(layers):
            sizes += [W.size, b.size] + ([b.size, b.size] if self.batch_norm and i < len(hidden) else [])
        # One flat buffer each for parameters and gradients; the per-array lists are views into
        # them, so the general path and the compiled kernels (harness.learning.kernels) share state.
        self.flat_params = aligned_zeros(sum(sizes), self.dtype)
        self.flat_grads = aligned_zeros(sum(sizes), self.dtype)
        self.params: list = []
        self.grads: list = []
        offsets = np.cumsum([0, *sizes])
        for start, stop in zip(offsets[:-1], offsets[1:]):
            self.params.append(self.flat_params[start:stop])
            self.grads.append(self.flat_grads[start:stop])
        self.W, self.b, self.gamma, self.beta = [], [], [], []
        pos, layout = 0, []
        for i, (W, b) in enumerate(layers):
            self.params[pos] = self.params[pos].reshape(W.shape)
            self.grads[pos] = self.grads[pos].reshape(W.shape)
            self.params[pos][...] = W
            self.params[pos + 1][...] = b
            self.W.append(self.params[pos])
            self.b.append(self.params[pos + 1])
            layout.append((W.shape[0], W.shape[1], offsets[pos], offsets[pos + 1]))
            pos += 2
            if self.batch_norm and i < len(hidden):
                self.params[pos][...] = 1.0
                self.params[pos + 1][...] = 0.0
                self.gamma.append(self.params[pos])
                self.beta.append(self.params[pos + 1])
                pos += 2
        self.layout = np.array(layout, dtype=np.int64)  # per layer: fan_in, fan_out, W offset, b offset
        self._index = self._grad_index()
        self.running_mean = [np.zeros(h, self.dtype) for h in hidden] if self.batch_norm else []
        self.running_var = [np.ones(h, self.dtype) for h in hidden] if self.batch_norm else []
        self._buffers: dict = {}
        self._one = _Buffers(1, self.sizes, False, self.dtype)
        self._plan_one_sample()

    # ------------------------------------------------------------------ bookkeeping
    @property
    def compiled_ok(self) -> bool:
        """Whether the compiled epoch kernels (``harness.learning.kernels``) can train this model.

        The plain-network kernels; a batch-norm model trains in ``kernels._bn_batch_epoch`` instead.
        """
        return not self.batch_norm

    def _grad_index(self) -> list:
        """Per layer: positions of (W, b, gamma, beta) in ``params`` (None when absent)."""
        index, pos = [], 0
        for i in range(len(self.W)):
            bn = self.batch_norm and i < len(self.hidden)
            index.append((pos, pos + 1, pos + 2 if bn else None, pos + 3 if bn else None))
            pos += 4 if bn else 2
        return index

    def buffers(self, n: int) -> _Buffers:
        buf = self._buffers.get(n)
        if buf is None:
            buf = self._buffers[n] = _Buffers(n, self.sizes, self.batch_norm, self.dtype)
        return buf

    # ------------------------------------------------------------------ batch path
    def forward(self, X: np.ndarray, train: bool = False) -> np.ndarray:
        """Logits for the rows of ``X``; a view of a reused buffer, copy it to keep it.

        ``train=True`` uses batch statistics in batch norm and updates the
        running averages; ``train=False`` (evaluation) uses the running averages.
        """
        n = X.shape[0]
        buf = self.buffers(n)
        a = X
        for l in range(len(self.hidden)):
            z = buf.xhat[l] if self.batch_norm else buf.A[l]
            np.matmul(a, self.W[l], out=z)
            z += self.b[l]
            if self.batch_norm:
                self._batch_norm_forward(l, z, buf, train)
                out = buf.A[l]
                np.multiply(z, self.gamma[l], out=out)
                out += self.beta[l]
            _activate(self.activation, buf.A[l])
            a = buf.A[l]
        np.matmul(a, self.W[-1], out=buf.logits)
        buf.logits += self.b[-1]
        return buf.logits

    def _batch_norm_forward(self, l: int, z: np.ndarray, buf: _Buffers, train: bool) -> None:
        """Normalise ``z`` in place to x-hat (batch or running statistics)."""
        mean, inv_std = buf.stat[l], buf.inv_std[l]
        if train:
            n = z.shape[0]
            np.mean(z, axis=0, out=mean)
            z -= mean
            np.multiply(z, z, out=buf.tmp[l])
            np.mean(buf.tmp[l], axis=0, out=inv_std)        # biased batch variance
            m = self.bn_momentum
            self.running_mean[l] *= 1.0 - m
            self.running_mean[l] += m * mean
            unbiased = n / (n - 1) if n > 1 else 1.0
            self.running_var[l] *= 1.0 - m
            self.running_var[l] += (m * unbiased) * inv_std
            inv_std += self.bn_eps
        else:
            z -= self.running_mean[l]
            np.add(self.running_var[l], self.bn_eps, out=inv_std)
        np.sqrt(inv_std, out=inv_std)
        np.divide(1.0, inv_std, out=inv_std)
        z *= inv_std

    def backward(self, X: np.ndarray, grad_logits: np.ndarray) -> None:
        """Fill ``grads`` from dL/dlogits of the last ``forward(X, train=True)``.

        ``grad_logits`` is the gradient of the *mean* batch loss, so the sums
        over the batch below are already mean gradients.
        """
        buf = self.buffers(X.shape[0])
        g = self.grads
        L = len(self.hidden)
        delta = grad_logits
        for l in range(L, -1, -1):
            iW, ib, _, _ = self._index[l]
            a_prev = X if l == 0 else buf.A[l - 1]
            _dot(a_prev.T, delta, out=g[iW])       # np.dot beats matmul on transposed views
            _dot(buf.ones, delta, out=g[ib])        # column sums as a BLAS gemv
            if l == 0:
                break
            k = l - 1
            d = buf.D[k]
            np.matmul(delta, self.W[l].T, out=d)
            self._activation_backward(buf.A[k], d, buf.tmp[k], buf.mask[k])
            if self.batch_norm:
                _, _, igamma, ibeta = self._index[k]
                self._batch_norm_backward(k, d, buf, g[igamma], g[ibeta])
            delta = d

    def _activation_backward(self, a, d, tmp, mask) -> None:
        """``d *= activation'(z)``, written in terms of the activation output ``a``."""
        if self.activation == "relu":
            np.greater(a, 0.0, out=mask)
            np.multiply(d, mask, out=d)
        elif self.activation == "tanh":
            np.multiply(a, a, out=tmp)
            np.subtract(1.0, tmp, out=tmp)
            d *= tmp
        else:
            np.subtract(1.0, a, out=tmp)
            tmp *= a
            d *= tmp

    def _batch_norm_backward(self, k: int, d, buf: _Buffers, g_gamma, g_beta) -> None:
        """Turn d = dL/d(BN output) into dL/dz in place; fill the gamma/beta gradients.

        dz = inv_std / n * (n dxhat - sum(dxhat) - xhat * sum(dxhat * xhat)),
        with dxhat = d * gamma (Ioffe and Szegedy 2015).
        """
        xhat, tmp = buf.xhat[k], buf.tmp[k]
        n = d.shape[0]
        np.multiply(d, xhat, out=tmp)
        _dot(buf.ones, tmp, out=g_gamma)
        _dot(buf.ones, d, out=g_beta)
        # with dxhat = gamma*d: sum(dxhat) = gamma*g_beta, sum(dxhat*xhat) = gamma*g_gamma
        d *= self.gamma[k]
        np.multiply(xhat, g_gamma * self.gamma[k] / n, out=tmp)
        d -= tmp
        d -= (self.gamma[k] * g_beta) / n
        d *= buf.inv_std[k]

    def batch_grad(self, X: np.ndarray, y: np.ndarray, loss) -> float:
        """Training forward + loss + backward on one batch; returns the mean batch loss."""
        logits = self.forward(X, train=True)
        buf = self.buffers(X.shape[0])
        value = loss.loss_grad(logits, y, buf.grad_logits)
        self.backward(X, buf.grad_logits)
        return value

    def gather(self, X: np.ndarray, y: np.ndarray, idx: np.ndarray):
        """Copy the rows ``idx`` of X and y into this batch size's reusable buffers."""
        buf = self.buffers(len(idx))
        np.take(X, idx, axis=0, out=buf.X)
        np.take(y, idx, out=buf.y)
        return buf.X, buf.y

    # ------------------------------------------------------------------ one-sample path
    def sample_grad(self, x: np.ndarray, y: np.ndarray, loss) -> float:
        """Gradient of the loss of one sample (``x`` 1-D, ``y`` of length 1) into ``grads``.

        Same mathematics as ``batch_grad`` on a batch of one, on 1-D vectors
        (the weight gradient is the outer product a_prev delta^T, done as a
        (n_in, 1) @ (1, n_out) BLAS product, faster than numpy's ``outer``).
        A loss may offer ``loss_grad_one(z, label, grad)`` on 1-D rows, used
        here when present. Not for batch norm (a batch of one has no variance;
        optimizers refuse it).
        """
        act = self.activation
        a = x
        for W, b, h in self._one_forward:
            _dot(a, W, out=h)
            _add(h, b, out=h)
            if act == "relu":
                _maximum(h, 0.0, out=h)
            elif act == "tanh":
                _tanh(h, out=h)
            else:
                expit(h, out=h)
            a = h
        W, b, z, gz, z2, gz2 = self._one_output
        _dot(a, W, out=z)
        _add(z, b, out=z)
        fast = getattr(loss, "loss_grad_one", None)
        value = fast(z, int(y[0]), gz) if fast is not None else loss.loss_grad(z2, y, gz2)
        delta, delta_row = gz, gz2
        for gW, gb, a_col, a_prev, W_out, d, d_row, tmp, mask in self._one_backward:
            _dot(x[:, None] if a_col is None else a_col, delta_row, out=gW)
            _copyto(gb, delta)
            if W_out is None:
                break
            _dot(W_out, delta, out=d)
            if act == "relu":
                _greater(a_prev, 0.0, out=mask)
                _multiply(d, mask, out=d)
            elif act == "tanh":
                _multiply(a_prev, a_prev, out=tmp)
                _subtract(1.0, tmp, out=tmp)
                _multiply(d, tmp, out=d)
            else:
                _subtract(1.0, a_prev, out=tmp)
                _multiply(tmp, a_prev, out=tmp)
                _multiply(d, tmp, out=d)
            delta, delta_row = d, d_row
        return value

    def _plan_one_sample(self) -> None:
        """Pre-bind the arrays of the one-sample path (saves lookups on every update)."""
        one = self._one
        L = len(self.hidden)
        self._one_forward = [(self.W[l], self.b[l], one.A[l][0]) for l in range(L)]
        self._one_output = (self.W[-1], self.b[-1], one.logits[0], one.grad_logits[0],
                            one.logits, one.grad_logits)
        backward = []
        for l in range(L, -1, -1):
            iW, ib, _, _ = self._index[l]
            if l == 0:
                backward.append((self.grads[iW], self.grads[ib], None, None, None, None, None, None, None))
            else:
                k = l - 1
                a_prev = one.A[k][0]
                backward.append((self.grads[iW], self.grads[ib], a_prev[:, None], a_prev, self.W[l],
                                 one.D[k][0], one.D[k], one.tmp[k][0], one.mask[k][0]))
        self._one_backward = backward
