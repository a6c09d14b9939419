"""`python -m harness report` (being built)."""
from harness.errors import HarnessError


def configure(parser):
    pass


def execute(args):
    raise HarnessError("the 'report' command is not available yet")
