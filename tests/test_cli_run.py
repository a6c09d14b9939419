"""`python -m harness run`: the per-epoch table, --set, --csv and one-line errors."""
import subprocess
import sys

import pandas as pd
import pytest

from harness.cli import main
from harness.results.schema import RECORD_COLUMNS

BASE = ["run", "--dataset", "iris", "--loss", "ce", "--epochs", "2"]


def _run(capsys, *extra):
    code = main(BASE + list(extra))
    out, err = capsys.readouterr()
    return code, out, err


def test_prints_one_row_per_epoch_and_the_final_status(capsys):
    code, out, err = _run(capsys, "--optimizer", "bgd", "--hidden", "none")
    assert code == 0 and err == ""
    lines = out.strip().splitlines()
    assert lines[0].startswith("run: dataset=iris") and "hidden=[]" in lines[0]
    header = lines[1].split()
    assert header[:5] == ["epoch", "updates", "samples", "train_s", "lr"]
    assert {"train_loss", "test_loss", "test_acc", "bal_acc", "min_recall"} <= set(header)
    rows = [line.split() for line in lines[2:5]]
    assert [r[0] for r in rows] == ["0", "1", "2"] and [r[1] for r in rows] == ["0", "1", "2"]
    assert lines[-1] == "status: done (reached max epochs (2))"


def test_set_reaches_the_plugins_and_csv_has_the_records(capsys, tmp_path):
    path = tmp_path / "records.csv"
    code, out, _ = _run(capsys, "--optimizer", "minibatch", "--set", "optimizer.batch_size=10",
                        "--loss", "wce", "--set", "loss.normalisation=lecture", "--seed", "1",
                        "--csv", str(path))
    assert code == 0 and "optimizer_params={'batch_size': 10}" in out
    assert "loss_params={'normalisation': 'lecture'}" in out
    df = pd.read_csv(path)
    assert list(df.columns) == list(RECORD_COLUMNS) and len(df) == 3
    n_train = df.samples_seen.iloc[1]
    assert df.updates.iloc[1] == -(-n_train // 10)  # ceil(n / batch_size)


@pytest.mark.parametrize("extra,needle", [
    (["--optimizer", "sdg"], "unknown optimizer 'sdg' (did you mean 'sgd'?)"),
    (["--optimizer", "bgd", "--loss", "bcee"], "unknown loss 'bcee'"),
    (["--optimizer", "minibatch", "--set", "optimizer.batch_size=abc"], "batch_size: expected an integer"),
    (["--optimizer", "minibatch", "--set", "optimizer.batchsize=4"], "unknown hyper-parameter 'batchsize'"),
    (["--optimizer", "bgd", "--set", "model.width=4"], "takes run.*, optimizer.*, loss.* and dataset.* keys"),
    (["--optimizer", "bgd", "--set", "optimizer"], "expected KEY=VALUE"),
    (["--optimizer", "bgd", "--hidden", "8,x"], "run.hidden: expected layer widths like 64x32"),
    (["--optimizer", "bgd", "--hidden", "8x0"], "run.hidden: layer widths must be positive integers"),
    (["--optimizer", "bgd", "--set", "optimizer.sgd.lr=1"], "this run uses optimizer 'bgd'"),
    (["--optimizer", "bgd", "--schedule", "step"], "gamma"),
    (["--optimizer", "minibatch-bn", "--set", "optimizer.batch_size=1"], "refused: optimizer 'minibatch-bn'"),
    (["--optimizer", "minibatch-bn", "--hidden", "none"], "refused: optimizer 'minibatch-bn'"),
])
def test_bad_input_is_one_line_exit_2(capsys, extra, needle):
    code, out, err = _run(capsys, *extra)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1
    assert err.startswith("harness run: error:") and "Traceback" not in err
    assert out == ""  # nothing is printed before the run starts


def test_divergence_is_a_status_with_its_own_exit_code(capsys):
    code, out, _ = _run(capsys, "--optimizer", "sgd", "--lr", "1e6", "--epochs", "3")
    assert code == 3 and "status: diverged (" in out
    code, out, _ = _run(capsys, "--optimizer", "sgd", "--lr", "0.01", "--epochs", "1")
    assert code == 0 and "status: done (" in out


@pytest.mark.slow
def test_as_a_subprocess_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "harness", *BASE, "--optimizer", "sdg"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "did you mean 'sgd'" in proc.stderr and "Traceback" not in proc.stderr
