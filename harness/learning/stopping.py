"""When a run ends, and the explicit status and reason it ends with.

Checked after every epoch's evaluation, in this order (the first that fires wins):

1. ``diverged``: the train loss is not finite, or exceeds ``DIVERGENCE_FACTOR``
   times max(initial train loss, 1) (the trainer also stops mid-epoch as soon
   as an update's batch loss is not finite);
2. ``stopped`` by ``tol``: train loss <= tol (tol > 0);
3. ``stopped`` by ``lecture_stop``: train loss <= 1/sqrt(t), t = updates so far
   (the lecture's "E = 1/sqrt(m)", reading m as the update count per the errata);
4. ``stopped`` by ``patience``: no strict improvement of the best train loss
   for ``patience`` epochs (patience > 0);
5. ``stopped`` by ``time_budget``: training seconds (evaluation excluded) >=
   the budget (> 0); checked at epoch ends, so a run may overshoot by one epoch;
6. ``done``: ``epochs`` epochs completed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

DIVERGENCE_FACTOR = 1e3


@dataclass(frozen=True)
class Outcome:
    status: str   # one of harness.results.schema.STATUSES
    reason: str


class Stopper:
    """Stateful judge of one run: feed it each epoch's train loss."""

    def __init__(self, config):
        self.max_epochs = int(config.epochs)
        self.tol = float(config.tol)
        self.lecture_stop = bool(config.lecture_stop)
        self.patience = int(config.patience)
        self.time_budget = float(config.time_budget)
        self.limit = math.inf
        self.best = math.inf
        self.best_epoch = 0

    def check(self, epoch: int, train_loss: float, updates: int, seconds: float) -> Outcome | None:
        """The outcome if the run must end after this epoch, else None (epoch 0 = initial state)."""
        if not math.isfinite(train_loss):
            return Outcome("diverged", f"train loss is {train_loss} at epoch {epoch}")
        if epoch == 0:
            self.limit = DIVERGENCE_FACTOR * max(train_loss, 1.0)
        elif train_loss > self.limit:
            return Outcome("diverged", f"train loss {train_loss:.4g} exceeds {DIVERGENCE_FACTOR:g} x "
                                       f"max(initial loss, 1) = {self.limit:.4g} at epoch {epoch}")
        if train_loss < self.best:
            self.best, self.best_epoch = train_loss, epoch
        if epoch == 0:
            return Outcome("done", "reached max epochs (0)") if self.max_epochs <= 0 else None
        if self.tol > 0 and train_loss <= self.tol:
            return Outcome("stopped", f"tol: train loss {train_loss:.4g} <= {self.tol:g} at epoch {epoch}")
        if self.lecture_stop and updates > 0 and train_loss <= 1.0 / math.sqrt(updates):
            return Outcome("stopped", f"lecture_stop: train loss {train_loss:.4g} <= 1/sqrt({updates}) "
                                      f"= {1.0 / math.sqrt(updates):.4g} at epoch {epoch}")
        if self.patience > 0 and epoch - self.best_epoch >= self.patience:
            return Outcome("stopped", f"patience: no improvement of the train loss for {self.patience} "
                                      f"epochs (best {self.best:.4g} at epoch {self.best_epoch})")
        if self.time_budget > 0 and seconds >= self.time_budget:
            return Outcome("stopped", f"time_budget: {seconds:.3g} s of training >= {self.time_budget:g} s "
                                      f"at epoch {epoch}")
        if epoch >= self.max_epochs:
            return Outcome("done", f"reached max epochs ({self.max_epochs})")
        return None
