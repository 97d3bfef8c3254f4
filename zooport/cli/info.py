"""``zooport info``: facts about a Darknet cfg (``info darknet CFG``) or a zoo model (``info NAME``)."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser(
        "info",
        help="describe a Darknet cfg (layers, params, .weights size) or a zoo model",
        description="'zooport info darknet CFG [--json]' prints the layer count, parameter count and the "
        "exact .weights size Darknet would write; 'zooport info NAME' prints a zoo entry.",
    )
    p.add_argument("target", nargs="+", metavar="TARGET", help="'darknet CFG' or a zoo model name")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from ..errors import UsageError

    if args.target[0] == "darknet":
        if len(args.target) != 2:
            raise UsageError("usage: zooport info darknet CFG [--json]")
        from ._args import input_file

        input_file(args.target[1], "Darknet cfg")
        return info_darknet(args.target[1], as_json=args.json)
    if len(args.target) != 1:
        raise UsageError("usage: zooport info NAME [--json]  (or: zooport info darknet CFG)")
    from .zoo import info_model

    return info_model(args.target[0], as_json=args.json)


def info_darknet(cfg_path: str, as_json: bool = False) -> int:
    """Print layer count, parameter count and the exact .weights size Darknet would write for a cfg."""
    from ..converters.darknet.load import info

    facts = info(cfg_path)
    if as_json:
        print(json.dumps(facts, indent=2))
        return 0
    print(f"{facts['cfg']}: {facts['layers']} layers, {facts['params']:,} parameters, "
          f".weights {facts['weights_bytes']:,} bytes")
    print(f"input {facts['input']} -> output {facts['output']}")
    for h in facts["heads"]:
        print(f"  head layer {h['layer']}: [{h['type']}] {h['shape']} classes={h['classes']}")
    return 0
