"""Built-in optimizers: plain gradient descent with five batching schemes.

All share the lecture's step ``w <- w - lr * (mean gradient over the batch)``;
what separates them is which training samples form each update in an epoch:

* ``bgd``: all samples, one update per epoch;
* ``point``: one sample per update, always in the order 0, 1, ..., n-1 (cyclic);
* ``sgd``: one sample per update, in a fresh random order every epoch;
* ``minibatch``: ``batch_size`` samples per update, reshuffled every epoch
  (the last batch of an epoch holds the remainder);
* ``minibatch-bn``: minibatch on a network with batch normalisation (declared
  by its spec, ``batch_norm=True``); a trailing remainder of one sample is
  merged into the previous batch, since a batch of one has no variance.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from harness.plugin import CheckContext, OptimizerSpec, Param, hookimpl

SCHEMES = ("full", "cyclic", "shuffled")


_AXPY: dict = {}


def _axpy(dtype):
    """BLAS ``y += a x`` for this dtype (looked up once: the lookup costs more than a small update)."""
    fn = _AXPY.get(dtype)
    if fn is None:
        from scipy.linalg.blas import get_blas_funcs   # here, not at the top: registering needs no scipy (startup)

        fn = _AXPY[dtype] = get_blas_funcs("axpy", dtype=dtype)
    return fn


class PlainGD:
    """``params[i] -= lr * grads[i]`` in place, with a batching scheme.

    ``scheme``: ``full`` (one batch of everything), ``cyclic`` (fixed order) or
    ``shuffled`` (new permutation each epoch), cut into ``batch_size`` chunks.
    ``no_single_batches`` folds a trailing batch of one into the previous batch
    (needed under batch normalisation). Stateless apart from its settings, so
    it pickles trivially.
    """

    step_is_plain_gd = True  # fast-path capability: the engine's compiled loop may apply this step itself

    def __init__(self, scheme: str, batch_size: int = 1, no_single_batches: bool = False):
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        self.scheme = scheme
        self.batch_size = int(batch_size)
        self.no_single_batches = bool(no_single_batches)
        import scipy.linalg.blas  # noqa: F401  loaded before a run's clock starts (see _axpy)
        self._params: Any = None
        self._grads: Any = None
        self._flat: list[tuple[Any, np.ndarray, np.ndarray]] = []

    def batches(self, n_samples: int, rng: np.random.Generator):
        if self.scheme == "full":
            yield np.arange(n_samples)
            return
        order = np.arange(n_samples) if self.scheme == "cyclic" else rng.permutation(n_samples)
        b = self.batch_size
        starts = range(0, n_samples, b)
        if self.no_single_batches and n_samples > b and n_samples % b == 1:
            starts = starts[:-1]  # fold a trailing batch of one into the previous one
        last = len(starts) - 1
        for k, start in enumerate(starts):
            yield order[start:] if k == last else order[start:start + b]

    def step(self, params, grads, lr: float) -> None:
        if params is not self._params or grads is not self._grads:
            self._plan(params, grads)
        a = -lr
        for axpy, g, p in self._flat:
            if axpy is None:
                p -= lr * g
            else:
                axpy(g, p, a=a)

    def _plan(self, params, grads) -> None:
        """Cache flat views and BLAS routines for these (runner-owned, reused) arrays.

        The cache is keyed on the identity of the two lists, which the runner
        allocates once and never changes (pass new lists to re-plan).

        BLAS axpy updates a contiguous array in place without a temporary; a
        non-contiguous or mixed-dtype pair falls back to numpy.
        """
        flat = []
        for p, g in zip(params, grads):
            if p.flags.c_contiguous and g.flags.c_contiguous and p.dtype == g.dtype:
                flat.append((_axpy(p.dtype), g.reshape(-1), p.reshape(-1)))
            else:
                flat.append((None, g, p))
        self._params, self._grads, self._flat = params, grads, flat

    def __getstate__(self):
        state = dict(self.__dict__)
        state.update(_params=None, _grads=None, _flat=[])  # caches, not state
        return state

    def __repr__(self) -> str:
        return (f"PlainGD(scheme={self.scheme!r}, batch_size={self.batch_size}, "
                f"no_single_batches={self.no_single_batches})")


def _check_batch_norm(context: CheckContext) -> str | None:
    """Why batch normalisation cannot run with these settings, or None.

    (The engine itself refuses batch normalisation without a hidden layer.)
    """
    if context.optimizer_params["batch_size"] < 2:
        return "batch normalisation needs at least 2 samples per update (batch_size=1 has no batch variance)"
    return None


def make_bgd():
    return PlainGD("full")


def make_point():
    return PlainGD("cyclic", 1)


def make_sgd():
    return PlainGD("shuffled", 1)


def make_minibatch(batch_size=32):
    return PlainGD("shuffled", batch_size)


def make_minibatch_bn(batch_size=32):
    return PlainGD("shuffled", batch_size, no_single_batches=True)


_BATCH_SIZE = Param("batch_size", 32, "samples per update", low=1)


# Learning-rate grids a sweep tunes over (docs/sweep.md): five rates half a decade apart, two decades
# around each family's usual range (a full-batch step needs a larger rate than a per-sample one). The
# sweep extends a grid at an edge when the best rate sits there, so these need not bracket every problem.
_FULL_BATCH_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)
_PER_SAMPLE_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03)
_MINIBATCH_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)


@hookimpl
def register_optimizers(register):
    register(OptimizerSpec(
        name="bgd",
        description="batch gradient descent: all training samples per update, one update per epoch",
        factory=make_bgd,
        lr_grid=_FULL_BATCH_GRID,
    ))
    register(OptimizerSpec(
        name="point",
        description="point GD: one sample per update, the same fixed order every epoch (cyclic)",
        factory=make_point,
        lr_grid=_PER_SAMPLE_GRID,
    ))
    register(OptimizerSpec(
        name="sgd",
        description="stochastic GD: one sample per update, reshuffled every epoch",
        factory=make_sgd,
        lr_grid=_PER_SAMPLE_GRID,
    ))
    register(OptimizerSpec(
        name="minibatch",
        description="mini-batch GD: batch_size samples per update, reshuffled every epoch",
        factory=make_minibatch,
        params=(_BATCH_SIZE,),
        lr_grid=_MINIBATCH_GRID,
    ))
    register(OptimizerSpec(
        name="minibatch-bn",
        description="mini-batch GD on a network with batch normalisation after each hidden layer",
        factory=make_minibatch_bn,
        params=(_BATCH_SIZE,),
        check=_check_batch_norm,
        batch_norm=True,
        lr_grid=_MINIBATCH_GRID,
    ))
