"""Example third-party harness plugin: heavy-ball momentum and the focal loss.

Installed with ``pip install plugins/examples/harness-momentum``; harness finds
it through the ``harness.plugins`` entry point in this package's pyproject.
"""
import numpy as np

from harness.plugin import LossSpec, OptimizerSpec, Param, hookimpl


class Momentum:
    """Mini-batch GD with heavy-ball momentum: v <- mu v - lr g; w <- w + v.

    The velocity is kept per position: the engine passes the same parameter
    arrays in the same order at every step of a run.
    """

    def __init__(self, momentum: float = 0.9, batch_size: int = 32):
        self.momentum = momentum
        self.batch_size = batch_size
        self.velocity = None

    def batches(self, n_samples, rng):
        order = rng.permutation(n_samples)
        for start in range(0, n_samples, self.batch_size):
            yield order[start:start + self.batch_size]

    def step(self, params, grads, lr):
        if self.velocity is None:
            self.velocity = [np.zeros_like(p) for p in params]
        for p, g, v in zip(params, grads, self.velocity):
            v *= self.momentum
            v -= lr * g
            p += v


class FocalLoss:
    """Softmax focal loss, mean over the batch: -(1 - p_y)^gamma log p_y (Lin et al. 2017).

    gamma = 0 is categorical cross-entropy; larger gamma down-weights easy samples.
    """

    def __init__(self, n_classes: int, gamma: float):
        self.n_outputs = n_classes
        self.gamma = gamma

    def _log_softmax(self, logits):
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def _parts(self, logits, y):
        logp = self._log_softmax(logits)
        log_pt = logp[np.arange(len(y)), y]
        q = -np.expm1(log_pt)            # 1 - p_y, accurate when p_y is near 1
        return logp, log_pt, q

    def per_sample(self, logits, y):
        _, log_pt, q = self._parts(logits, y)
        return -(q ** self.gamma) * log_pt

    def loss_grad(self, logits, y, grad_out):
        logp, log_pt, q = self._parts(logits, y)
        pt = np.exp(log_pt)
        # dL/dz_j = c * (delta_jy - p_j) with c = gamma q^gamma pt log(pt)/q - q^gamma
        safe_q = np.where(q > 0, q, 1.0)
        ratio = np.where(q > 0, log_pt / safe_q, -1.0)   # log(pt)/(1-pt) -> -1 as pt -> 1
        c = self.gamma * q ** self.gamma * pt * ratio - q ** self.gamma
        np.exp(logp, out=grad_out)
        grad_out *= -c[:, None]
        grad_out[np.arange(len(y)), y] += c
        grad_out /= len(y)
        return float(np.mean(-(q ** self.gamma) * log_pt))

    def predict_proba(self, logits):
        return np.exp(self._log_softmax(logits))


MOMENTUM = OptimizerSpec(
    name="momentum",
    description="mini-batch GD with heavy-ball momentum (v <- mu v - lr g; w <- w + v)",
    factory=Momentum,
    params=(Param("momentum", 0.9, "momentum coefficient mu", low=0.0, high=1.0, high_exclusive=True),
            Param("batch_size", 32, "samples per update", low=1)),
    lr_grid=(0.003, 0.01, 0.03, 0.1, 0.3),   # tuned over this unless the sweep config gives a grid
)

FOCAL = LossSpec(
    name="focal",
    description="softmax focal loss -(1-p_y)^gamma log p_y; gamma=0 is cross-entropy",
    factory=lambda y_train, n_classes, gamma: FocalLoss(n_classes, gamma),
    params=(Param("gamma", 2.0, "focusing parameter", low=0.0),),
)


@hookimpl
def register_optimizers(register):
    register(MOMENTUM)


@hookimpl
def register_losses(register):
    register(FOCAL)
