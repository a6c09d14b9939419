"""Small digits splits shared by the compiled-path equality tests (plain, batch norm, stacked), and one
configuration trained on both paths: the compiled kernels, then the reference numpy path."""
from __future__ import annotations

from sklearn.datasets import load_digits

from harness.learning import kernels
from harness.learning.model import MLP
from harness.learning.split import Split
from harness.learning.trainer import train
from harness.plugin.loader import load_registry

REG = load_registry(autoload=False)
N_TRAIN = 90
LOSS_COLUMNS = ["train_loss", "val_loss", "test_loss"]
_d = load_digits()
X_DIGITS = (_d.data - _d.data.mean(0)) / (_d.data.std(0) + 1.0)   # all 1797 samples, standardised
Y_DIGITS = _d.target


def _split(n_classes: int) -> Split:
    keep = Y_DIGITS < n_classes
    X, y = X_DIGITS[keep][:150], Y_DIGITS[keep][:150]
    return Split(X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:120], y[N_TRAIN:120], X[120:], y[120:],
                 tuple(map(str, range(n_classes))))


SPLITS = {2: _split(2), 4: _split(4)}


def on_both_paths(monkeypatch, config, split):
    """Yield ``(compiled, records, trained model)``: the compiled path first, then the reference path.

    The path's switch (``HARNESS_FASTPATH``) stays set while the caller's loop body runs.
    """
    real_init = MLP.__init__
    for flag in ("1", "0"):
        monkeypatch.setenv(kernels.ENV_SWITCH, flag)
        built = []

        def spy(self, *a, **k):  # keep the trainer's model to compare its final state
            real_init(self, *a, **k)
            built.append(self)

        monkeypatch.setattr(MLP, "__init__", spy)
        frame = train(config, split=split, registry=REG)
        monkeypatch.setattr(MLP, "__init__", real_init)
        yield flag == "1", frame, built[-1]
