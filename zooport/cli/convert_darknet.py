"""``zooport convert darknet CFG WEIGHTS`` and ``zooport info darknet CFG``.

Convert writes a native checkpoint (``.pt``: a plain dict loadable with ``torch.load(weights_only=True)``;
``.safetensors``: tensors + JSON metadata) or a Darknet ``.weights`` file again. The output is written
atomically: on any error no output file is left. ``--classes N`` re-heads the model for N classes
(fine-tuning) and reports the layers it could not load.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

FORMATS = ("pt", "safetensors", "darknet", "mmdet")
_SUFFIX = {"pt": ".pt", "safetensors": ".safetensors", "darknet": ".weights", "mmdet": "_mmdet.pth"}


def register(sub) -> None:
    p = sub.add_parser(
        "darknet",
        help="Darknet cfg + .weights -> native .pt / .safetensors (or .weights again)",
        description="Convert a Darknet cfg + .weights pair into zooport's native checkpoint (.pt, a plain dict "
        "loadable with torch.load(weights_only=True)), safetensors, or a Darknet .weights file. Writing a "
        "loaded file back with --format darknet is byte-identical. Output is written atomically.",
        epilog="examples:\n  zooport convert darknet yolov3-tiny.cfg yolov3-tiny.weights --names coco.names\n"
        "  zooport convert darknet yolov4.cfg yolov4.weights --format safetensors -o yolov4.safetensors\n"
        "  zooport convert darknet yolov3-tiny.cfg yolov3-tiny.weights --classes 3 -o tiny3.pt\n"
        "  zooport convert darknet yolov3.cfg yolov3.weights --to mmdet -o yolov3_mmdet.pth",
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
    )
    p.add_argument("cfg", metavar="CFG", help="Darknet .cfg file")
    p.add_argument("weights", metavar="WEIGHTS", help="Darknet .weights file matching CFG")
    p.add_argument("-o", "--output", metavar="OUT", default=None,
                   help="output file (default: beside WEIGHTS: NAME.pt, NAME.safetensors, or "
                   "NAME.converted.weights for --format darknet)")
    p.add_argument("--names", metavar="FILE", default=None,
                   help="class names file, one per line (default: class0, class1, ...)")
    p.add_argument("--format", "--to", dest="format", choices=FORMATS, default=None,
                   help="output format (default: from OUT's suffix, else pt); 'mmdet' writes an MMDetection "
                   "YOLOV3 checkpoint (Darknet yolov3.cfg layout only) that MMDetection loads strictly")
    p.add_argument("--classes", type=int, metavar="N", default=None,
                   help="rebuild the heads for N classes; every other layer is loaded (for fine-tuning)")
    p.set_defaults(func=_run)


def _pick_format(args) -> str:
    if args.format:
        return args.format
    if args.output:
        suffix = Path(args.output).suffix
        return {".safetensors": "safetensors", ".weights": "darknet"}.get(suffix, "pt")
    return "pt"


def _default_output(weights: str, fmt: str, classes) -> Path:
    w = Path(weights)
    stem = w.stem + (f"-{classes}cls" if classes is not None else "")
    if fmt == "darknet":
        return w.with_name(stem + ".converted.weights")
    return w.with_name(stem + _SUFFIX[fmt])


def _run(args) -> int:
    from ..errors import UsageError

    fmt = _pick_format(args)
    out = Path(args.output) if args.output else _default_output(args.weights, fmt, args.classes)
    if args.classes is not None and args.classes < 1:
        raise UsageError(f"--classes {args.classes}: expected a positive number of classes")
    try:
        if out.exists() and Path(args.weights).exists() and os.path.samefile(out, args.weights):
            raise UsageError(f"{out}: output would overwrite the input weights; choose another -o")
    except OSError:
        pass
    return _convert(args, fmt, out)  # a failed write is a WriteError from the writer itself (zooport._io)


def _convert(args, fmt: str, out: Path) -> int:
    from tqdm import tqdm

    from ..converters.darknet import load_darknet, save_darknet_weights

    steps = tqdm(total=2, desc="convert darknet", unit="step", disable=None, file=sys.stderr)
    steps.set_postfix_str("loading")
    model = load_darknet(args.cfg, args.weights, names=args.names, num_classes=args.classes)
    steps.update(1)
    steps.set_postfix_str(f"writing {fmt}")
    if fmt == "darknet":
        save_darknet_weights(model, out)
    elif fmt == "mmdet":
        from ..converters.mmdet_darknet import save_mmdet_checkpoint

        save_mmdet_checkpoint(model, out, names=model.names)
    else:
        from ..converters.native import save_native

        save_native(model, out, fmt=fmt)
    steps.update(1)
    steps.close()
    n_params = sum(p.numel() for p in model.state_dict().values())
    print(f"wrote {out} ({fmt}, {len(model.layers)} layers, {n_params} parameters, {len(model.names)} classes)")
    skipped = model.darknet_load.skipped
    if args.classes is not None:
        if skipped:
            print(f"--classes {args.classes}: not loaded (class-dependent, freshly initialised): "
                  + ", ".join(skipped))
        else:
            print(f"--classes {args.classes}: same as the cfg's classes; every layer loaded")
    return 0


def info_darknet(cfg_path: str, as_json: bool = False) -> int:
    """Print layer count, parameter count and the exact .weights size Darknet would write for a cfg."""
    from ..converters.darknet import info

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
