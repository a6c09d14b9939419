"""`python -m harness plugins`: every plugin, its distribution and version, and what it registered."""
import json

from harness.plugin.loader import load_registry


def configure(parser):
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def execute(args) -> int:
    reg = load_registry()
    if args.json:
        doc = {"plugins": [p.to_dict() for p in reg.plugins],
               "failures": [f.to_dict() for f in reg.failures]}
        print(json.dumps(doc, indent=2))
        return 0
    for p in reg.plugins:
        origin = "built-in" if p.builtin else "third-party"
        print(f"{p.name}  ({p.distribution} {p.version}, {origin}, module {p.module})")
        for kind, names in p.registered.items():
            if names:
                print(f"    {kind}: {', '.join(names)}")
    for f in reg.failures:
        print(f"FAILED {f.name}  ({f.distribution} {f.version}): {f.error}")
    if not reg.plugins and not reg.failures:
        print("no plugins found: is harness installed (pip install -e .)?")
    return 0
