"""``zooport convert SOURCE ... [--to TARGET] [-o OUT]``: one sub-verb per source format, each in its own module.

One vocabulary for every source: ``--to {pt,safetensors,darknet,yolov5,mmdet,mmdet-mini}`` (default: from OUT's
suffix, else ``pt``), ``-o OUT`` (default: beside the input, see :mod:`zooport.cli._args`), one
success line ``wrote PATH (SIZE, TARGET) in T s``. ``--format`` and ``--to native`` are deprecated
aliases (a one-line warning on stderr).
"""
from __future__ import annotations

import argparse
import importlib

from .. import families

# source format -> module defining register(subparsers): the family records' cli_module
SOURCES = {name: fam.cli_module for name, fam in families.FAMILIES.items() if fam.cli_module}
# every target of --to (each source writes its record's ``targets``)
TARGETS = families.convert_targets()
_FROM_SUFFIX = {".safetensors": "safetensors", ".weights": "darknet", ".pth": "mmdet"}


def register(sub) -> None:
    p = sub.add_parser(
        "convert",
        help="convert Darknet / YOLOv5 / MMDetection weights to a native checkpoint (or back)",
        description="Convert foreign detector weights into zooport's native checkpoint "
        "(a plain dict loadable with torch.load(weights_only=True)), safetensors, or back "
        "to the foreign format. Outputs are written atomically. Every source takes --to TARGET "
        f"({', '.join(TARGETS)}; default from -o's suffix, else pt). Default output: beside the input "
        "(WEIGHTS for darknet), named after it with the target's extension (.pt, .safetensors, .weights, "
        ".pth); '.converted' is inserted when that name is the input itself. An output never overwrites "
        "an input. Success prints 'wrote PATH (SIZE, TARGET) in T s'.",
    )
    fmt = p.add_subparsers(dest="source", metavar="SOURCE")
    fmt.required = True
    for module in SOURCES.values():
        importlib.import_module(module).register(fmt)


def add_output_args(p, supported: tuple, default_help: str) -> None:
    """``-o/--output`` and ``--to`` (plus the hidden deprecated ``--format``) on a convert sub-parser."""
    p.add_argument("-o", "--output", metavar="OUT", default=None,
                   help=f"output file (default: {default_help}; see 'zooport convert --help')")
    p.add_argument("--to", dest="to", choices=TARGETS + ("native",), default=None,
                   metavar="{" + ",".join(TARGETS) + "}",
                   help=f"what to write: {', '.join(supported)} for this source (default: from OUT's suffix "
                   "(.safetensors, .weights, .pth), else pt)")
    p.add_argument("--format", dest="deprecated_format", choices=TARGETS + ("native",), default=None,
                   help=argparse.SUPPRESS)


def resolve_target(args, source: str, supported: tuple) -> str:
    """The target of a convert call: ``--to``, else deprecated ``--format``, else OUT's suffix, else pt."""
    from pathlib import Path

    from ..errors import UsageError
    from ._args import warn

    to = args.to
    if args.deprecated_format is not None:
        warn("--format is deprecated; use --to")
        to = to or args.deprecated_format
    if to == "native":
        warn("--to native is deprecated; use --to pt (or --to safetensors)")
        to = "safetensors" if args.output and Path(args.output).suffix == ".safetensors" else "pt"
    if to is None:
        to = _FROM_SUFFIX.get(Path(args.output).suffix, "pt") if args.output else "pt"
        if to not in supported:
            to = "pt"
    if to not in supported:
        raise UsageError(f"convert {source} --to {to}: not supported; {source} converts to {', '.join(supported)}")
    return to


def output_path(args, target: str, beside, inputs):
    """``-o`` checked (folder exists, not an input), or the default name (see :mod:`zooport.cli._args`)."""
    from ._args import default_output, output_file

    out = args.output if args.output else default_output(beside, target, inputs)
    return output_file(out, inputs)


def write_model(model, out, target: str, foreign: str, to_state_dict) -> None:
    """Write a loaded model as ``target``: its family's own state dict (``target == foreign``, floats as float32,
    through ``to_state_dict(model)``) or a native checkpoint (pt / safetensors). Atomic either way."""
    if target == foreign:
        from .._io import save_torch

        save_torch({k: v.float() if v.is_floating_point() else v for k, v in to_state_dict(model).items()}, out)
    else:
        from ..converters.native import save_native

        save_native(model, out, target)
