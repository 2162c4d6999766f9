"""``rl-commons schema``: the JSON Schema of every event on the wire."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of the events (decision, outcome, reward, dlq)",
        description=(
            "Print a JSON object mapping each event model name (DecisionEvent, OutcomeEvent, "
            "RewardEvent, DLQRecord) to its JSON Schema, or only one with --type. "
            "Topics and keys are described in docs/events.md."
        ),
    )
    p.add_argument(
        "--type",
        dest="event_type",
        metavar="NAME",
        help="only this event: a model name (DecisionEvent) or a type (decision, outcome, "
        "reward, dlq)",
    )
    p.add_argument("--indent", type=int, default=2, help="JSON indentation (default 2)")
    p.set_defaults(func=run)


def _by_name(schemas: dict[str, dict], name: str) -> tuple[str, dict] | None:
    wanted = name.strip().lower()
    for model, schema in schemas.items():
        type_default = schema.get("properties", {}).get("type", {}).get("default")
        if wanted in (model.lower(), str(type_default).lower()):
            return model, schema
    return None


def run(args: argparse.Namespace) -> int:
    from producers import json_schemas

    schemas = json_schemas()
    if args.event_type:
        found = _by_name(schemas, args.event_type)
        if found is None:
            types = ", ".join(
                f"{m} ({s.get('properties', {}).get('type', {}).get('default')})"
                for m, s in schemas.items()
            )
            print(f"error: no event named {args.event_type!r}; use one of {types}", file=sys.stderr)
            return 2
        schemas = {found[0]: found[1]}
    json.dump(schemas, sys.stdout, indent=args.indent or None, sort_keys=False)
    sys.stdout.write("\n")
    return 0
