"""`python -m harness list optimizers|losses|datasets`: names, descriptions, hyper-parameters.

Datasets also show size, features, classes and class balance (loading each one;
the embedded face set is built once and cached).
"""
import json
import sys

from harness.plugin.loader import KINDS, env_flag, load_registry
from harness.plugin.specs import SINGULAR, DatasetUnavailable


def configure(parser):
    parser.add_argument("kind", choices=list(KINDS), help="what to list")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def _entry(kind: str, spec) -> dict:
    entry = {"name": spec.name, "description": spec.description,
             "params": [p.to_dict() for p in getattr(spec, "params", ())]}
    if kind == "claims":   # a claim has no hyper-parameters: show what it compares and how
        sides = " vs ".join(map(str, spec.sides))
        entry["compares"] = f"{spec.factor}: {sides}; {spec.direction} {spec.statistic} of {spec.metric}"
        entry["budgets"] = [b.label for b in spec.budgets]
    if kind == "datasets":
        # imported here, not at the top: `harness list optimizers` need not load the engine (startup speed)
        from harness.learning.split import describe

        try:
            entry["info"] = describe(spec.load())
            entry["available"] = True
        except DatasetUnavailable as exc:
            entry["available"] = False
            entry["unavailable"] = str(exc)
    return entry


def _print_text(entries: list, kind: str) -> None:
    for e in entries:
        print(f"{e['name']}: {e['description']}")
        if kind == "datasets":
            info = e.get("info")
            if info:
                counts = ", ".join(f"{k}={v}" for k, v in info["class_counts"].items())
                print(f"    {info['samples']} samples, {info['features']} features, "
                      f"{info['classes']} classes ({counts}); imbalance {info['imbalance_ratio']:.1f}:1")
                if info.get("source"):
                    print(f"    source: {info['source']}")
            else:
                print(f"    unavailable: {e['unavailable']}")
        if kind == "claims":
            print(f"    compares {e['compares']}; at {', '.join(e['budgets'])}")
        for p in e["params"]:
            print(_param_line(p))
    if kind == "claims":
        return
    if kind == "datasets":
        from harness.learning.split import PREPROCESS_PARAMS   # here for startup speed, as in _entry

        print("every dataset also takes (the engine's preprocessing):")
        for p in PREPROCESS_PARAMS:
            print(_param_line(p.to_dict()))
    singular = SINGULAR[kind]
    print(f"(set a parameter with `harness run --set {singular}.PARAM=VALUE`, or sweep a grid with "
          f"`harness sweep --set {singular}.{singular.upper()}.PARAM=V1,V2`, where {singular.upper()} is "
          f"a {singular} name listed above)")


def _range(p: dict) -> str:
    """``, 0.0 <= value < 1.0`` from a param's bounds (exclusive ones with a strict sign), or ''."""
    low = f"{p['low']} {'<' if p.get('low_exclusive') else '<='} " if "low" in p else ""
    high = f" {'<' if p.get('high_exclusive') else '<='} {p['high']}" if "high" in p else ""
    return f", {low}value{high}" if low or high else ""


def _param_line(p: dict) -> str:
    extra = f", one of {', '.join(map(str, p['choices']))}" if "choices" in p else _range(p)
    return f"    {p['name']} = {p['default']!r} ({p['type']}{extra}): {p['help']}"


def execute(args) -> int:
    reg = load_registry()
    for f in reg.failures:
        print(f"warning: {f}", file=sys.stderr)
        if env_flag("HARNESS_DEBUG"):
            print(f.traceback, file=sys.stderr)
    for w in reg.warnings:
        print(f"warning: {w}", file=sys.stderr)
    entries = [_entry(args.kind, spec) for spec in reg.kind(args.kind).values()]
    if args.json:
        print(json.dumps({args.kind: entries}, indent=2, default=str))
    else:
        _print_text(entries, args.kind)
    return 0
