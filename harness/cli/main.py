"""``python -m harness``: parse the command line and dispatch to ``harness.cli.*``.

Every user error ends as one line on stderr and exit status 2 (bad usage) or 1
(a failure the user can act on), never a traceback.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import re
import sys

from harness.errors import HarnessError

# command name -> module in harness.cli (each has configure(parser) and execute(args) -> int)
COMMANDS = {
    "plugins": ("plugins", "list installed plugins, what they registered and what failed to load"),
    "list": ("listing", "list optimizers, losses or datasets with their hyper-parameters"),
    "run": ("run", "train one configuration and print a per-epoch table"),
    "sweep": ("sweep", "run a grid of configurations and write the convergence report"),
    "report": ("report", "rebuild a sweep's report from its stored results"),
    "export": ("export", "export a sweep's stored runs to MLflow or CSV"),
}


class VersionAction(argparse.Action):
    """``--version``: the installed version, looked up only when asked (importlib.metadata is slow to import)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show the version and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        import harness

        print(f"harness {harness.__version__}")
        parser.exit()


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors and close-match suggestions for bad choices."""

    def error(self, message: str):  # noqa: D401 - argparse API
        m = re.search(r"invalid choice: '?([^'\s]+)'? \(choose from (.*)\)", message)
        if m:
            choices = [c.strip(" '\"") for c in m.group(2).split(",")]
            close = difflib.get_close_matches(m.group(1), choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            message = f"invalid choice {m.group(1)!r}{hint}; valid: {', '.join(choices)}"
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message}\n")


def command_in(argv: list) -> str | None:
    """The command named on the command line: the first word not an option (the top level takes no values)."""
    return next((token for token in argv if not token.startswith("-")), None)


def build_parser(argv: list | None = None) -> Parser:
    """The whole parser; given ``argv``, only the command it names has its options configured.

    Configuring a command imports its module and what its help text needs (the engine, numpy);
    `harness --help` and `harness plugins` would pay for every command's imports otherwise.
    """
    wanted = set(COMMANDS) if argv is None else {command_in(argv)}
    parser = Parser(
        prog="harness",
        description="Benchmark gradient-descent optimizers and classification losses on real data. "
        "Optimizers, losses and datasets are plugins (see `harness plugins`).",
        epilog="Start with `python -m harness sweep` (the default sweep on embedded data, "
        "about 7 minutes on 2 cores); `python -m harness COMMAND --help` explains each command.",
    )
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        p.set_defaults(_module=module)
        if name in wanted:
            importlib.import_module(f"harness.cli.{module}").configure(p)
    return parser


# a value that starts like a negative number or list (-1,2): argparse would take it for an option
_NEGATIVE_VALUE = re.compile(r"^-\d[\d.eE+\-]*(,[\s\d.eE+\-]*)*$")


def join_negative_values(argv: list) -> list:
    """``--seeds -1,2`` -> ``--seeds=-1,2``, so the value reaches validation ("seeds must be >= 0")."""
    out: list = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE_VALUE.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv=None) -> int:
    argv = join_negative_values(list(sys.argv[1:] if argv is None else argv))
    args = build_parser(argv).parse_args(argv)
    module = importlib.import_module(f"harness.cli.{args._module}")
    try:
        return int(module.execute(args) or 0)
    except HarnessError as exc:
        print(f"harness {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"harness {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `harness list datasets | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
