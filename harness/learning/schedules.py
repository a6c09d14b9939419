"""Learning-rate schedules; ``t`` counts parameter updates, not epochs.

``t`` is the number of updates made before the current one (0 for the first
update of a run), so one epoch of BGD advances ``t`` by 1 and one epoch of SGD
by the number of training samples. Counting updates is what the convergence
results the lecture quotes (alpha_t ~ 1/t, 1/sqrt(t)) are stated in, and it
makes every schedule well defined for every batching scheme.

* ``constant``:     lr0
* ``inverse``:      lr0 / (1 + k t)                 (k = ``RunConfig.decay``)
* ``inverse_sqrt``: lr0 / sqrt(1 + t)
* ``step``:         lr0 * gamma ** floor(t / step_every)
  (gamma = ``RunConfig.decay``, in (0, 1]; ``step_every`` = updates between
  drops, 0 meaning once per epoch)
"""
from __future__ import annotations

import math
from typing import Callable

SCHEDULES = ("constant", "inverse", "inverse_sqrt", "step")


def validate(name: str, lr: float, decay: float, step_every: int) -> None:
    """Raise ValueError (one line) for a schedule that cannot be computed."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if name == "inverse" and not decay >= 0:
        raise ValueError(f"schedule 'inverse' needs decay k >= 0, got {decay!r}")
    if name == "step":
        if not 0 < decay <= 1:
            raise ValueError(f"schedule 'step' needs decay (gamma) in (0, 1], got {decay!r}")
        if step_every < 0:
            raise ValueError(f"step_every must be >= 0, got {step_every!r}")


def make_schedule(name: str, lr: float, decay: float = 0.0, step_every: int = 0,
                  updates_per_epoch: int = 1) -> Callable[[int], float]:
    """A function ``t -> learning rate`` (t = updates made so far)."""
    validate(name, lr, decay, step_every)
    lr0, k = float(lr), float(decay)
    if name == "constant":
        return lambda t: lr0
    if name == "inverse":
        return lambda t: lr0 / (1.0 + k * t)
    if name == "inverse_sqrt":
        return lambda t: lr0 / math.sqrt(1.0 + t)
    every = int(step_every) if step_every > 0 else max(int(updates_per_epoch), 1)
    return lambda t: lr0 * k ** (t // every)


def from_config(config, updates_per_epoch: int) -> Callable[[int], float]:
    """The schedule a RunConfig asks for."""
    return make_schedule(config.schedule, config.lr, config.decay, config.step_every, updates_per_epoch)
