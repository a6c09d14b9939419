"""`python -m harness run` (being built)."""
from harness.errors import HarnessError


def configure(parser):
    pass


def execute(args):
    raise HarnessError("the 'run' command is not available yet")
