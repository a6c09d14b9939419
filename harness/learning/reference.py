"""The convex optimum of the training loss, from scikit-learn, as a yardstick.

With no hidden layer the model is softmax/logistic regression and ce, bce and
wce are convex, so an exact solver gives the smallest mean training loss any
optimizer can reach; the sweep stores it per cell (``reference_train_loss``)
and the report plots suboptimality (train loss - reference).

scikit-learn's ``LogisticRegression`` without penalty (``C=inf``) and a tight
tolerance fits the model; its logits are then scored with *our* loss plugin,
so the number is in exactly the units the trainer records:

* ``ce``: multinomial LR (binary: logits (0, z), which softmax-CE scores as LR);
* ``wce``: the same with ``sample_weight`` = our class weight of each sample,
  whose minimiser is the minimiser of the weighted mean loss;
* ``bce``: binary data: one LR; multi-class: one binary LR per class
  (one-vs-rest), since the summed per-class losses separate.

On linearly separable training data the infimum is 0 and not attained; the
solver stops at a large-weight point and the value returned is the small loss
it reached (an upper bound of the infimum). Losses other than these three have
no reference: ``nan``.
"""
from __future__ import annotations

import warnings

import numpy as np

from harness.learning.split import Split
from harness.plugin.specs import resolve_params

SUPPORTED = ("ce", "bce", "wce")


def _fit_logits(X, y, sample_weight=None, tol=1e-10, max_iter=10000) -> np.ndarray:
    """Decision values of an unpenalised LogisticRegression fitted on (X, y)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=np.inf, tol=tol, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # e.g. "Setting penalty=None will ignore C"
        model.fit(X, y, sample_weight=sample_weight)
    return model.decision_function(X)


def convex_optimum(split: Split, loss_name: str, loss_params: dict | None = None, registry=None) -> float:
    """Minimum mean training loss of the model with no hidden layer (``nan`` if unsupported)."""
    if loss_name not in SUPPORTED:
        return float("nan")
    if registry is None:
        from harness.plugin.loader import load_registry

        registry = load_registry(autoload=False)
    spec = registry.get("losses", loss_name)
    params = resolve_params(spec.params, dict(loss_params or {}), f"loss {loss_name}")
    X, y, k = np.asarray(split.X_train, np.float64), np.asarray(split.y_train), split.n_classes
    loss = spec.factory(y, k, **params)

    if loss_name == "bce":
        if k == 2:
            logits = _fit_logits(X, y)[:, None]
        else:
            logits = np.column_stack([_fit_logits(X, (y == c).astype(int)) for c in range(k)])
    else:
        weights = None
        if loss_name == "wce":
            weights = np.asarray(loss.weights)[y]
        z = _fit_logits(X, y, sample_weight=weights)
        logits = np.column_stack([np.zeros_like(z), z]) if z.ndim == 1 else z
    return float(np.mean(loss.per_sample(logits, y)))
