"""Run one configuration or a whole sweep from Python, through the command line's own path.

``run`` is ``harness run`` (same settings grammar, same RunConfig, same trainer
with BLAS on one thread); ``run_sweep`` is ``harness sweep`` (same config
reader, plan, runner, store and report). Nothing here decides anything the
engine decides: keyword settings are spelled as ``--set`` items
(:mod:`harness.api.settings`) and handed to the same functions the CLI calls.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from harness.api.folder import Sweep
from harness.api.settings import spell, to_sets
from harness.api.toml_text import dumps
from harness.learning.trainer import single_thread_blas, train
from harness.plugin.loader import load_registry
from harness.sweep.config import SweepConfig, load_config, load_run_settings
from harness.sweep.plan import single_run
from harness.report import build_report
from harness.sweep.runner import run_sweep as _run_sweep

__all__ = ["run", "run_sweep", "DICT_NAME", "CONFIG_FILE"]

DICT_NAME = "sweep"          # the name of a sweep given as a dict without a "name" key
CONFIG_FILE = "config.toml"  # where a dict config is written, inside its sweep folder


def run(dataset: str, loss: str, optimizer: str, *, seed: int = 0,
        optimizer_params: Mapping[str, Any] | None = None, loss_params: Mapping[str, Any] | None = None,
        dataset_params: Mapping[str, Any] | None = None,
        progress: Callable[[dict], None] | None = None, **settings: Any) -> pd.DataFrame:
    """Train one configuration and return its per-epoch records (what ``harness run --csv`` writes).

    ``settings`` are the engine settings of ``harness run`` (``epochs=10``,
    ``lr=0.05``, ``hidden=(64, 32)`` or ``"64x32"``, ``schedule="inverse:0.001"``, ...)
    and any dotted key of its grammar (``**{"optimizer.batch_size": 16}``); the
    ``*_params`` dicts set the chosen plugins' hyper-parameters. Values are
    validated exactly as on the command line (a bad one raises
    ``harness.errors.UsageError``; a refused combination ``harness.plugin.Refused``).
    ``progress`` is called with each epoch's row as it is measured.

    The frame has one row per epoch (epoch 0 is before the first update) with
    the columns of ``harness.results.schema.RECORD_COLUMNS``; ``frame.attrs["config"]``
    holds the fully resolved configuration.

    >>> import harness
    >>> frame = harness.run("iris", "ce", "sgd", epochs=3, lr=0.01, hidden=())
    >>> frame[["epoch", "train_loss", "test_accuracy"]]            # doctest: +SKIP
    """
    registry = load_registry()
    sets = to_sets(settings, sweep=False)
    for kind, name, params in (("optimizer", optimizer, optimizer_params), ("loss", loss, loss_params),
                               ("dataset", dataset, dataset_params)):
        sets += [f"{kind}.{name}.{key}={spell(key, value)}" for key, value in (params or {}).items()]
    config = single_run(load_run_settings(dataset, loss, optimizer, seed=spell("seed", seed), sets=sets,
                                          registry=registry), registry)
    with single_thread_blas():
        records = train(config, registry=registry, progress=progress)
    records.attrs["config"] = config.to_dict()
    return records


def run_sweep(config: Mapping[str, Any] | str | os.PathLike | None = None, *, quiet: bool = True,
              force: bool = False, report: bool = True, csv: bool = False, **settings: Any) -> Sweep:
    """Run a sweep (the ``harness sweep`` command) and return its folder as a :class:`Sweep`.

    ``config`` is a TOML path, a preset name, ``None`` (the default preset) or a
    dict shaped like the TOML file (``{"datasets": ["iris"], "run": {"epochs": 3}, ...}``;
    docs/sweep.md lists every key). A dict is written to ``OUT/NAME/config.toml``
    and read from there, so the manifest records a command that reruns it; a dict
    without ``"name"`` names its sweep ``"sweep"``. ``settings`` override keys as
    the command line does (``epochs=3``, ``seeds=2``, ``optimizers=["sgd", "bgd"]``,
    ``tune={"seeds": [0]}``, ``**{"optimizer.minibatch.batch_size": [16, 64]}``; a
    list is a grid). Stored cells are reused unless ``force``; ``report=False``
    skips the report; ``csv`` also writes ``results.csv``. Quiet by default (no
    progress bar or messages).

    >>> import harness
    >>> sweep = harness.run_sweep({"name": "two", "datasets": ["iris"], "losses": ["ce"],
    ...                            "optimizers": ["sgd", "bgd"], "seeds": 2,
    ...                            "run": {"epochs": 3, "hidden": [], "lr": 0.05}})   # doctest: +SKIP
    >>> sweep.outcomes.groupby("optimizer")["test_accuracy"].mean()   # doctest: +SKIP
    """
    registry = load_registry()
    sets = to_sets(settings, sweep=True)
    if isinstance(config, Mapping):
        resolved, path = _from_dict(config, sets, registry)
    else:
        path = None if config is None else str(config)
        resolved = load_config(path, sets=sets, registry=registry)
    if not quiet:
        for note in resolved.notes:
            print(note, flush=True)
    argv = ["sweep"] + (["--config", path] if path else []) + [a for item in sets for a in ("--set", item)]
    argv += [flag for flag, on in (("--force", force), ("--csv", csv), ("--no-report", not report)) if on]
    outcome = _run_sweep(resolved, registry=registry, argv=argv, quiet=quiet, force=force, csv=csv,
                         echo=print if not quiet else _silent)
    if report and outcome is not None:   # the runner stores results; the page is the report layer's job
        build_report(outcome.sweep_dir, results=outcome.results, manifest=outcome.manifest)
    return Sweep(resolved.sweep_dir)


def _silent(_: str) -> None:
    """The runner's summary lines, dropped when quiet."""


def _from_dict(table: Mapping[str, Any], sets: list, registry) -> tuple[SweepConfig, str]:
    """Validate ``table`` as TOML text, then keep that text in the sweep folder as its config file."""
    text = dumps({"name": DICT_NAME, **table})
    with tempfile.TemporaryDirectory(prefix="harness-config-") as tmp:
        draft = Path(tmp) / CONFIG_FILE
        draft.write_text(text, encoding="utf-8")
        checked = load_config(str(draft), sets=sets, registry=registry)   # every error before any write
    checked.sweep_dir.mkdir(parents=True, exist_ok=True)
    path = checked.sweep_dir / CONFIG_FILE
    path.write_text(text, encoding="utf-8")
    return replace(checked, source=str(path)), str(path)
