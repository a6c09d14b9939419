"""The per-cell speed-ups change no stored value.

* the stacked evaluator (one forward pass over train+val+test) gives the rows of
  the former per-part evaluation, kept here as the reference;
* ``cell_frame``/``status_frame`` build the frame the former per-column coercion
  made, dtypes included, for done, diverged, error and skipped cells, and
  ``write_cell`` stores it unchanged;
* ``load_split`` returns cached read-only splits equal to freshly computed ones;
* a small sweep run through the fast paths stores the losses of the reference
  path (``HARNESS_FASTPATH=0``).
"""
import json
import math

import numpy as np
import pandas as pd
import pytest

from harness.learning import kernels, metrics, split as split_module
from harness.learning.model import MLP
from harness.learning.runconfig import RunConfig
from harness.learning.split import load_split
from harness.learning.trainer import _Evaluator, train
from harness.plugin.loader import load_registry
from harness.results import store
from harness.results.schema import METRICS, SPLITS
from harness_momentum import FocalLoss

REG = load_registry()


# --------------------------------------------------------------------------- evaluator
def reference_scores(cm: np.ndarray, minority: int) -> dict:
    """The former per-matrix scores (checked against scikit-learn in test_trainer)."""
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    total = support.sum()
    present = support > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / support
        denom = support + predicted
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    used = denom > 0
    return {
        "accuracy": float(tp.sum() / total) if total else float("nan"),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else float("nan"),
        "macro_f1": float(f1[used].mean()) if used.any() else float("nan"),
        "minority_recall": float(recall[minority]) if support[minority] > 0 else float("nan"),
    }


def reference_row(model, loss, parts, n_classes, minority) -> dict:
    """The former evaluation: one forward pass, loss and metrics per part."""
    row = {}
    for part in SPLITS:
        X, y = parts[part]
        if len(y) == 0:
            row.update({f"{part}_{key}": float("nan") for key in METRICS})
            confusion = np.zeros((n_classes, n_classes), np.int64)
        else:
            logits = model.forward(X, train=False).copy()
            row[f"{part}_loss"] = float(np.mean(loss.per_sample(logits, y)))
            pred = np.argmax(loss.predict_proba(logits), axis=1)
            confusion = np.zeros((n_classes, n_classes), np.int64)
            for t, p in zip(y, pred):      # counted one by one, independent of the bincount
                confusion[t, p] += 1
            row.update({f"{part}_{k}": v for k, v in reference_scores(confusion, minority).items()})
        if part == "test":
            row["test_confusion"] = json.dumps(confusion.tolist())
    return row


def _losses(y_train, n_classes):
    out = {name: REG.get("losses", name).factory(y_train, n_classes)
           for name in REG.losses if not REG.get("losses", name).params}
    out["focal (plugin from tests)"] = FocalLoss(n_classes, 2.0)
    return out


@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("hidden,batch_norm", [((), False), ((7,), False), ((6, 4), True)])
@pytest.mark.parametrize("empty_val", [False, True])
def test_stacked_evaluator_equals_per_part_evaluation(n_classes, hidden, batch_norm, empty_val):
    rng = np.random.default_rng(n_classes * 10 + len(hidden))
    sizes = {"train": 40, "val": 0 if empty_val else 13, "test": 17}
    parts = {p: (rng.normal(size=(n, 5)), rng.integers(0, n_classes, n)) for p, n in sizes.items()}
    for name, loss in _losses(parts["train"][1], n_classes).items():
        if loss.n_outputs == 1 and n_classes != 2:
            continue
        model = MLP(5, loss.n_outputs, hidden, "tanh", batch_norm=batch_norm, seed=1)
        for W, b in zip(model.W, model.b):   # a trained-looking model (batch-norm scale and shift left at 1, 0)
            W += rng.normal(scale=1.0, size=W.shape)
            b += rng.normal(scale=0.1, size=b.shape)
        for mean, var in zip(model.running_mean, model.running_var):
            mean[:] = rng.normal(size=mean.size)
            var[:] = rng.uniform(0.5, 2.0, size=var.size)
        minority = metrics.minority_class(parts["train"][1], n_classes)
        got = _Evaluator(model, loss, parts, n_classes, minority)()
        want = reference_row(model, loss, parts, n_classes, minority)
        assert math.isnan(got.pop("bn_batch_shift"))   # no batch-shift measure was asked for
        assert got.keys() == want.keys(), name
        assert got["test_confusion"] == want["test_confusion"], name
        for key in want:
            if key != "test_confusion":
                np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=1e-12, err_msg=f"{name} {key}")
        assert len(np.flatnonzero(np.array(json.loads(got["test_confusion"])).sum(axis=0))) > 1, name  # not constant


@pytest.mark.parametrize("seed", range(5))
def test_scores_by_part_equal_the_former_scores(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 4, size=(4, 6, 6)) * (rng.random((4, 6, 6)) < 0.5)
    counts[1, 2, :] = 0       # a class absent from one part
    counts[2] = 0             # an empty part
    for cm, got in zip(counts, metrics.scores_by_part(counts, minority=2)):
        want = reference_scores(cm, 2)
        np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=1e-14, atol=0)
        assert got.keys() == want.keys()


# --------------------------------------------------------------------------- cell frames
def reference_cell_frame(records, config, **meta):
    """The former cell_frame: the records plus repeated config values, then per-column coercion."""
    frame = records.copy()
    reference = meta.pop("reference", None)
    for col, value in store._cell_values(config, reference=reference, **meta).items():
        frame[col] = [value] * len(frame)
    return store._coerce(frame)


CONFIG = RunConfig.make("digits", loss="ce", optimizer="minibatch", lr=0.1, epochs=3, seed=2, hidden=(8,),
                        optimizer_params={"batch_size": 32}, dataset_params={"max_samples": 300})
META = dict(sweep="s", cell_id="c1", phase="tune")


def _records(**kw):
    return train(RunConfig.make(**{**CONFIG.to_dict(), **kw}) if kw else CONFIG, registry=REG)


@pytest.mark.parametrize("case", ["done", "diverged", "error", "skipped", "reference", "odd text"])
def test_cell_frame_equals_former_coercion(tmp_path, case):
    if case in ("error", "skipped"):
        reason = "boom \udcff" + "x" * 3000 if case == "error" else "refused"
        got = store.status_frame(CONFIG, case, reason, **META)
        row = {col: math.nan for col in store.RECORD_COLUMNS}
        row.update(epoch=0, updates=0, samples_seen=0, train_seconds=0.0, learning_rate=CONFIG.lr,
                   test_confusion="", status=case, reason=store.safe_text(reason))
        want = reference_cell_frame(pd.DataFrame([row]), CONFIG, **META)
    else:
        records = _records(lr=1e6) if case == "diverged" else _records()
        if case == "odd text":   # what a plugin could put in: None, NaN, a lone surrogate
            records["reason"] = pd.Series([None, math.nan, "bad \udcfe", "ok"][:len(records)], dtype=object)
        assert records["status"].iloc[-1] == ("diverged" if case == "diverged" else "done")
        reference = 0.25 if case == "reference" else None
        got = store.cell_frame(records, CONFIG, reference=reference, **META)
        want = reference_cell_frame(records, CONFIG, reference=reference, **META)
    pd.testing.assert_frame_equal(got, want, check_dtype=True, check_exact=True)
    assert store._is_stored_form(got)
    path = store.write_cell(tmp_path, got)
    pd.testing.assert_frame_equal(store._coerce(pd.read_parquet(path)), want, check_exact=True)
    want.to_parquet(tmp_path / "pandas.parquet", index=False)      # how cells were written before
    assert path.read_bytes() == (tmp_path / "pandas.parquet").read_bytes()


def test_write_cell_stores_the_bytes_pandas_to_parquet_stored(tmp_path):
    frame = store.cell_frame(_records(), CONFIG, **META)
    path = store.write_cell(tmp_path, frame)
    frame.to_parquet(tmp_path / "pandas.parquet", index=False)
    assert path.read_bytes() == (tmp_path / "pandas.parquet").read_bytes()


def test_a_relabelled_cell_stays_in_stored_form():
    frame = store.cell_frame(_records(), CONFIG, **META)
    final = store.relabel_cell(frame, cell_id="c2", phase="final")
    assert store._is_stored_form(final) and set(final["cell_id"]) == {"c2"} and set(final["phase"]) == {"final"}
    pd.testing.assert_frame_equal(final.drop(columns=["cell_id", "phase"]), frame.drop(columns=["cell_id", "phase"]))
    assert set(frame["cell_id"]) == {"c1"}                 # the tuning frame is left as it was


def test_write_cell_coerces_a_frame_not_in_stored_form(tmp_path):
    frame = store.cell_frame(_records(), CONFIG, **META)
    loose = frame.astype({"epoch": "float64"}).drop(columns="bn_batch_shift")
    assert not store._is_stored_form(loose)
    stored = pd.read_parquet(store.write_cell(tmp_path, loose))
    assert stored["epoch"].dtype == np.int64 and stored["bn_batch_shift"].isna().all()
    pd.testing.assert_frame_equal(store._coerce(stored), frame.assign(bn_batch_shift=np.nan), check_exact=True)


def test_a_cell_stored_before_bn_batch_shift_reads_with_nan_and_runs_again(tmp_path):
    frame = store.cell_frame(_records(), CONFIG, **META)
    folder = store.results_dir(tmp_path)
    folder.mkdir()
    frame.drop(columns="bn_batch_shift").to_parquet(folder / "c1.parquet", index=False)
    read = store.read_results(tmp_path, all_cells=True)
    assert read["bn_batch_shift"].isna().all() and len(read) == len(frame)
    assert store.check_cell_file(folder / "c1.parquet") == "not a result file (wrong columns)"


# --------------------------------------------------------------------------- split cache
def _uncached(*args, **kw):
    split_module._SPLITS.clear()
    return load_split(*args, registry=REG, **kw)


def test_cached_split_is_read_only_and_equals_a_fresh_one():
    fresh = _uncached("digits", seed=4, max_samples=200)
    first = load_split("digits", seed=4, registry=REG, max_samples=200)
    again = load_split("digits", seed=4, registry=REG, max_samples=200)
    assert again.X_train is first.X_train                 # served from the cache, not recomputed
    for name in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(again, name), getattr(fresh, name))
        with pytest.raises(ValueError, match="read-only"):
            getattr(again, name)[0] = 0
    again.meta["samples"] = -1                            # a caller's meta is its own
    assert load_split("digits", seed=4, registry=REG, max_samples=200).meta == fresh.meta
    other = load_split("digits", seed=5, registry=REG, max_samples=200)
    assert not np.array_equal(other.y_train, fresh.y_train)   # the seed is part of the key


def test_split_cache_is_bounded_and_keeps_errors_out():
    split_module._SPLITS.clear()
    for seed in range(split_module.SPLIT_CACHE_SIZE + 3):
        load_split("digits", seed=seed, registry=REG, max_samples=100)
    assert len(split_module._SPLITS) == split_module.SPLIT_CACHE_SIZE
    from harness.errors import UsageError
    for _ in range(2):   # a refused call is refused every time, never served from the cache
        with pytest.raises(UsageError):
            load_split("digits", seed=1, registry=REG, max_samples=100, nonsense=1)
        with pytest.raises(UsageError):
            load_split("digits", seed=True, registry=REG, max_samples=100)


def test_training_on_a_cached_split_equals_training_on_a_fresh_one():
    fresh = train(CONFIG, split=_uncached("digits", seed=CONFIG.seed, max_samples=300), registry=REG)
    load_split("digits", seed=CONFIG.seed, registry=REG, max_samples=300)
    cached = train(CONFIG, registry=REG)
    pd.testing.assert_frame_equal(cached.drop(columns="train_seconds"), fresh.drop(columns="train_seconds"),
                                  check_exact=True)


# --------------------------------------------------------------------------- a small sweep, both paths
@pytest.mark.slow
@pytest.mark.skipif(kernels.numba is None, reason="numba not installed")
def test_small_sweep_fast_paths_store_the_reference_paths_losses(tmp_path, monkeypatch):
    from harness.cli import main
    from harness.results.store import read_results

    frames = {}
    for flag in ("1", "0"):   # workers are forked per sweep, so each sweep runs on the path its flag names
        monkeypatch.setenv(kernels.ENV_SWITCH, flag)
        code = main(["sweep", "--out", str(tmp_path), "--name", f"path{flag}", "--datasets", "digits",
                     "--losses", "ce,wce", "--optimizers", "sgd,minibatch,bgd,minibatch-bn", "--seeds", "1",
                     "--epochs", "3", "--set", "run.hidden=8", "--set", "dataset.digits.max_samples=200",
                     "--set", "run.lr=0.01,0.1", "--set", "tune.max_extensions=0", "--jobs", "1",
                     "--quiet", "--no-report"])
        assert code == 0
        frames[flag] = read_results(tmp_path / f"path{flag}").sort_values(["cell_id", "epoch"]).reset_index(drop=True)
    fast, ref = frames["1"], frames["0"]
    assert fast["cell_id"].tolist() == ref["cell_id"].tolist() and len(fast) > 20
    cols = ["train_loss", "val_loss", "test_loss", "bn_batch_shift"]
    np.testing.assert_allclose(fast[cols].to_numpy(), ref[cols].to_numpy(), rtol=1e-10, atol=1e-10)
    assert (fast["status"] == ref["status"]).all()
    bn = fast["optimizer"] == "minibatch-bn"
    assert bn.any() and fast.loc[bn, "bn_batch_shift"].gt(0).all() and fast.loc[~bn, "bn_batch_shift"].isna().all()
