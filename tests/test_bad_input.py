"""Bad input (issue 12): each case is one line on stderr and exit status 2, before anything is built or written."""
import os
import subprocess
import sys

import pytest

from harness.cli import main
from harness.cli.main import join_negative_values
from harness.errors import UsageError
from harness.plugin.loader import load_registry
from harness.sweep.config import MAX_SEEDS, load_config

RUN = ["run", "--dataset", "iris", "--loss", "ce", "--optimizer", "bgd", "--epochs", "1"]


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def sweep(tmp_path, *argv):
    return ["sweep", "--out", str(tmp_path / "out"), "--datasets", "iris", "--losses", "ce",
            "--optimizers", "bgd", "--lr", "0.1", "--quiet", *argv]


def one_line_exit_2(capsys, argv, needle):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.startswith(f"harness {argv[0]}: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert needle in err, err
    return out


@pytest.mark.parametrize("seeds, needle", [
    ("1e9", f"seeds: at most {MAX_SEEDS} seeds, got a count of 1000000000"),
    (str(MAX_SEEDS + 1), f"at most {MAX_SEEDS} seeds"),
    (",".join(map(str, range(MAX_SEEDS + 1))), f"at most {MAX_SEEDS} seeds, got a list of {MAX_SEEDS + 1}"),
    ("-1,2", "seeds: must be integers >= 0"),
    ("-3", "seeds: expected a count >= 1"),
    ("0,,2", "empty seed"),
])
def test_seeds_are_bounded_and_non_negative(tmp_path, capsys, seeds, needle):
    one_line_exit_2(capsys, sweep(tmp_path, "--seeds", seeds), needle)
    assert not (tmp_path / "out").exists()


def test_negative_values_reach_validation_instead_of_argparse():
    assert join_negative_values(["sweep", "--seeds", "-1,2", "--jobs", "2"]) == ["sweep", "--seeds=-1,2", "--jobs", "2"]
    assert join_negative_values(["run", "--lr", "-0.1"]) == ["run", "--lr=-0.1"]
    assert join_negative_values(["sweep", "--seeds=-1"]) == ["sweep", "--seeds=-1"]
    assert join_negative_values(["sweep", "-q", "--dry-run"]) == ["sweep", "-q", "--dry-run"]


def test_a_negative_learning_rate_in_run_is_one_line(capsys):
    one_line_exit_2(capsys, RUN + ["--lr", "-0.1"], "run.lr: -0.1 is below the minimum")


def test_config_file_with_a_non_utf8_byte(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    one_line_exit_2(capsys, sweep(tmp_path, "--config", str(path)), "not UTF-8 text (byte 0xe9 at offset 11)")


@pytest.mark.parametrize("option", ["--out", "--name"])
def test_out_or_name_with_non_utf8_bytes(tmp_path, capsys, option):
    name = os.fsdecode(b"caf\xe9")   # how Python hands such a command-line argument over: a surrogate
    argv = [a for a in sweep(tmp_path) if a != "--quiet"]
    if option == "--out":
        argv[argv.index("--out") + 1] = str(tmp_path / name)
    else:
        argv += ["--name", name]
    one_line_exit_2(capsys, argv, f"{option[2:]}: ")
    main(argv)
    assert "holds bytes that are not UTF-8; use a UTF-8 name" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.slow
def test_non_utf8_name_as_a_real_command_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness", "sweep", "--dry-run", "--out", str(tmp_path),
                           "--name", b"caf\xe9"], capture_output=True, timeout=120)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2 and "Traceback" not in err and err.count("\n") == 1
    assert "name: 'caf\\udce9' holds bytes that are not UTF-8" in err


@pytest.mark.parametrize("where", ["run", "sweep"])
def test_max_samples_leaving_too_few_per_class_is_refused_at_validation(tmp_path, capsys, where):
    argv = RUN if where == "run" else sweep(tmp_path)
    one_line_exit_2(capsys, argv + ["--set", "dataset.iris.max_samples=3"],
                    "dataset iris with max_samples=3: class 'setosa' has only 1 sample(s)")
    # 30 samples: 10 per class leave one per class for validation
    one_line_exit_2(capsys, argv + ["--set", "dataset.max_samples=30"],
                    "the val part keeps 1 sample(s) of class")
    assert not (tmp_path / "out").exists()


def test_max_samples_large_enough_is_accepted(registry):
    cfg = load_config(sets=["dataset.iris.max_samples=60,0", "dataset.iris.imbalance=0.5"],
                      overrides={"datasets": "iris"}, registry=registry)
    assert cfg.param_grids("dataset", "iris")["max_samples"] == (60, 0)


@pytest.mark.parametrize("argv, needle", [
    (RUN + ["--set", "run.epochs=1.5"], "run.epochs: expected an integer, got '1.5'"),
    (RUN[:-2] + ["--set", "run.epochs=1.5", "--epochs", "1"], "run.epochs: expected an integer, got '1.5'"),
    (RUN + ["--set", "run.lr=0", "--lr", "0.1"], "run.lr: 0.0 is below the minimum"),
    (RUN + ["--set", "optimizer.bgd.nothing=1", "--set", "run.epochs=2"], "unknown hyper-parameter 'nothing'"),
])
def test_an_overridden_value_is_still_validated_in_run(capsys, argv, needle):
    one_line_exit_2(capsys, argv, needle)


def test_an_overridden_value_is_still_validated_in_sweep(tmp_path, capsys):
    one_line_exit_2(capsys, sweep(tmp_path, "--set", "run.epochs=1.5", "--epochs", "1"),
                    "run.epochs: expected an integer, got '1.5'")
    one_line_exit_2(capsys, sweep(tmp_path, "--set", "jobs=two", "--jobs", "1"), "jobs: expected an integer")
    one_line_exit_2(capsys, sweep(tmp_path, "--set", "optimizer.minibatch.batch_size=0",
                                  "--set", "optimizer.batch_size=4"), "optimizer.minibatch.batch_size")
    assert not (tmp_path / "out").exists()


def test_timeout_setting(registry, tmp_path):
    assert load_config(registry=registry).timeout == 1800.0
    assert load_config(overrides={"timeout": "0"}, registry=registry).timeout == 0.0
    path = tmp_path / "t.toml"
    path.write_text("timeout = 60\n")
    cfg = load_config(str(path), registry=registry)
    assert cfg.timeout == 60.0 and cfg.to_dict()["timeout"] == 60.0
    for bad, needle in (("-1", "timeout: -1.0 is below the minimum 0.0"), ("soon", "timeout: expected a number"),
                        ("inf", "timeout: expected a finite number")):
        with pytest.raises(UsageError, match=needle):
            load_config(overrides={"timeout": bad}, registry=registry)


def test_timeout_on_the_command_line(tmp_path, capsys):
    one_line_exit_2(capsys, sweep(tmp_path, "--timeout", "-5"), "timeout: -5.0 is below the minimum")
