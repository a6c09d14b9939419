"""The convex optimum of the training loss, as a yardstick: each loss says how to reach it.

With no hidden layer the model is a linear map from features to logits, and
for convex losses an exact solver gives the smallest mean training loss any
optimizer can reach; the sweep stores it per cell (``reference_train_loss``)
and the report plots suboptimality (train loss - reference).

The solver belongs to the loss, not to the engine: a loss object may offer
``optimum_logits(X, y) -> logits`` (docs/plugins.md), the logits on ``X`` of
the linear model minimising its mean loss over ``(X, y)``. The engine scores
them with the loss's own ``per_sample``, so the number is in exactly the
units the trainer records. A loss without the method (or returning None)
has no reference: ``nan``.

On linearly separable training data the infimum is 0 and not attained; a
solver then stops at a large-weight point and the value is the small loss it
reached (an upper bound of the infimum).
"""
from __future__ import annotations

import numpy as np

from harness.learning.split import Split
from harness.plugin.specs import resolve_params


def optimum_logits(loss, X: np.ndarray, y: np.ndarray, name: str) -> np.ndarray | None:
    """The loss's ``optimum_logits(X, y)`` as float64 ``(n, n_outputs)``, or None when it offers none.

    One column of log-odds (shape ``(n,)``) is taken as ``(n, 1)``; any other
    shape is a ValueError naming the loss. Shared by ``convex_optimum`` and the
    conformance kit (``harness.testing.check_loss_optimum_logits``).
    """
    solve = getattr(loss, "optimum_logits", None)
    got = solve(X, y) if callable(solve) else None
    if got is None:
        return None
    logits = np.asarray(got, np.float64)
    if logits.ndim == 1:
        logits = logits[:, None]
    if logits.shape != (len(y), loss.n_outputs):
        raise ValueError(f"loss {name}: optimum_logits returned shape {np.shape(got)}, "
                         f"expected ({len(y)}, {loss.n_outputs})")
    return logits


def convex_optimum(split: Split, loss_name: str, loss_params: dict | None = None, registry=None) -> float:
    """Minimum mean training loss of the model with no hidden layer, from the loss's ``optimum_logits``.

    ``nan`` when the loss offers no solver.
    """
    if registry is None:
        from harness.plugin.loader import load_registry

        registry = load_registry()
    spec = registry.get("losses", loss_name)
    params = resolve_params(spec.params, dict(loss_params or {}), f"loss {loss_name}")
    X, y = np.asarray(split.X_train, np.float64), np.asarray(split.y_train)
    loss = spec.factory(y, split.n_classes, **params)
    logits = optimum_logits(loss, X, y, loss_name)
    return float("nan") if logits is None else float(np.mean(loss.per_sample(logits, y)))
