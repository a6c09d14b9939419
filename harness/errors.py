"""Errors the command line turns into one-line messages instead of tracebacks."""
import difflib
import traceback


class HarnessError(Exception):
    """A failure the user can act on; the CLI prints it on one line, exit status 1."""

    exit_code = 1


class UsageError(HarnessError, ValueError):
    """Bad input (unknown name, bad value); exit status 2."""

    exit_code = 2


class PluginError(HarnessError):
    """A plugin could not be loaded or conflicts with another one."""


def unknown(what: str, name: str, valid) -> UsageError:
    """An error for an unknown ``name`` with a close-match suggestion and the valid choices."""
    valid = sorted(valid)
    close = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UsageError(f"unknown {what} {name!r}{hint}; valid: {', '.join(valid) or 'none'}")


def last_line(exc: BaseException) -> str:
    """``"ExcType: message"`` on one line (the last line of the exception's own text): how a failure is recorded."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    return text[-1] if text else type(exc).__name__
