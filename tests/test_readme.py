"""The README's set-up works as written: CI runs its two commands verbatim, with the pip a fresh venv ships."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / ".ci" / "run"


def setup_block() -> list[str]:
    """The command lines of the fenced bash block under README.md's "## Set-up" heading."""
    text = (ROOT / "README.md").read_text().split("## Set-up", 1)[1].split("\n## ", 1)[0]
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_commands():
    printed = subprocess.run([str(CI), "--print"], capture_output=True, text=True, check=True).stdout
    assert printed.splitlines() == setup_block()
    assert len(setup_block()) == 2


def test_readme_install_suits_the_pip_of_a_fresh_python_3_11_venv():
    install = setup_block()[0]
    # pip 23.2.1 cannot match the example plugin's `harness-gd` to `.[test]` alone: the bare checkout must be named
    assert " -e . " in install and '-e ".[test]"' in install and "./plugins/examples/harness-momentum" in install
    assert " -q " in install                              # a quiet install
    assert install.endswith("python -m harness sweep")
    assert setup_block()[1] == "python -m pytest"


def test_ci_does_not_upgrade_pip_or_rewrite_the_commands():
    script = CI.read_text()
    assert "upgrade pip" not in script and "pip install" not in script   # only the README's own install runs
    assert "HARNESS_REQUIRE_EXAMPLE_PLUGIN=1" in script and "HARNESS_DATA_HOME" in script
