"""The command line: ``main`` parses and dispatches; one module per command with
``configure(parser)`` and ``execute(args) -> int``."""
from harness.cli.main import main

__all__ = ["main"]
