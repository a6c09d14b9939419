"""`python -m harness plugins`: every plugin, its distribution and version, and what it registered.

Exit status 1 when a plugin failed to load (so a CI step notices), 0 otherwise;
warnings (a hook function without ``@hookimpl``) do not change it.
"""
import json
import sys

from harness.plugin.loader import env_flag, load_registry

EXIT_STATUS = "Exit status: 0 when every plugin loaded, 1 when one failed to load (listed as FAILED)."


def configure(parser):
    parser.description = f"{parser.description} {EXIT_STATUS}"
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("--traceback", action="store_true",
                        help="show each failed plugin's full traceback (also: HARNESS_DEBUG=1)")


def execute(args) -> int:
    reg = load_registry()
    tracebacks = args.traceback or env_flag("HARNESS_DEBUG")
    if args.json:
        failures = [f.to_dict(traceback=tracebacks) for f in reg.failures]
        doc = {"plugins": [p.to_dict() for p in reg.plugins], "failures": failures, "warnings": reg.warnings}
        print(json.dumps(doc, indent=2))
        return 1 if reg.failures else 0
    for p in reg.plugins:
        origin = "built-in" if p.builtin else "third-party"
        print(f"{p.name}  ({p.distribution} {p.version}, {origin}, module {p.module})")
        for kind, names in p.registered.items():
            if names:
                print(f"    {kind}: {', '.join(names)}")
    for f in reg.failures:
        where = f" (raised in {f.raised_in})" if f.raised_in else ""
        print(f"FAILED {f.name}  ({f.distribution} {f.version}): {f.error}{where}")
        if tracebacks:
            print(f.traceback, file=sys.stderr)
    for w in reg.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if not reg.plugins and not reg.failures:
        print("no plugins found: is harness installed (pip install -e .)?")
    if reg.failures and not tracebacks:
        print("(run `harness plugins --traceback` or set HARNESS_DEBUG=1 for full tracebacks)", file=sys.stderr)
    return 1 if reg.failures else 0
