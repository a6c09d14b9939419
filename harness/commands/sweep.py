"""`python -m harness sweep` (being built)."""
from harness.errors import HarnessError


def configure(parser):
    pass


def execute(args):
    raise HarnessError("the 'sweep' command is not available yet")
