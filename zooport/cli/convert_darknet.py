"""``zooport convert darknet CFG WEIGHTS [--to pt|safetensors|darknet|mmdet] [-o OUT] [--num-classes N]``.

Writes a native checkpoint (``.pt``: a plain dict loadable with ``torch.load(weights_only=True)``;
``.safetensors``: tensors + JSON metadata), a Darknet ``.weights`` file again (byte-identical), or an
MMDetection YOLOV3 checkpoint. The output is written atomically: on any error no output file is left.
``--num-classes N`` re-heads the model for N classes (fine-tuning) and reports the layers it could not
load.
"""
from __future__ import annotations

import argparse
import time

SUPPORTED = ("pt", "safetensors", "darknet", "mmdet")


def register(sub) -> None:
    from .convert import add_output_args

    p = sub.add_parser(
        "darknet",
        help="Darknet cfg + .weights -> native .pt / .safetensors (or .weights again, or MMDetection)",
        description="Convert a Darknet cfg + .weights pair into zooport's native checkpoint (.pt, a plain dict "
        "loadable with torch.load(weights_only=True)), safetensors, a Darknet .weights file (writing a loaded "
        "file back is byte-identical) or an MMDetection YOLOV3 checkpoint (Darknet yolov3.cfg layout only). "
        "Output is written atomically.",
        epilog="examples:\n  zooport convert darknet yolov3-tiny.cfg yolov3-tiny.weights --names coco.names\n"
        "  zooport convert darknet yolov4.cfg yolov4.weights --to safetensors\n"
        "  zooport convert darknet yolov3-tiny.cfg yolov3-tiny.weights --num-classes 3 -o tiny3.pt\n"
        "  zooport convert darknet yolov3.cfg yolov3.weights --to mmdet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("cfg", metavar="CFG", help="Darknet .cfg file")
    p.add_argument("weights", metavar="WEIGHTS", help="Darknet .weights file matching CFG")
    add_output_args(p, SUPPORTED, "beside WEIGHTS, WEIGHTS' name with the target's extension")
    p.add_argument("--names", metavar="FILE", default=None,
                   help="class names file, one per line (default: class0, class1, ...)")
    p.add_argument("--num-classes", dest="num_classes", type=int, metavar="N", default=None,
                   help="rebuild the heads for N classes; every other layer is loaded (for fine-tuning)")
    p.add_argument("--classes", dest="deprecated_classes", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_run)


def check_args(args) -> None:
    """Every argument check of ``convert darknet``, before anything is read."""
    from ..errors import UsageError
    from ..loading import source_hint
    from . import _args

    if args.deprecated_classes is not None:
        _args.warn("--classes is deprecated for convert darknet; use --num-classes")
        if args.num_classes is None:
            args.num_classes = args.deprecated_classes
    _args.at_least("--num-classes", args.num_classes, 1)
    if args.cfg.endswith(".weights") and args.weights.endswith(".cfg"):
        raise UsageError(f"{args.cfg} {args.weights}: arguments swapped? the order is CFG WEIGHTS")
    for path, what in ((args.cfg, "Darknet cfg"), (args.weights, "Darknet weights")):
        _args.input_file(path, what)
        hint = source_hint(path, "darknet")
        if hint:
            raise UsageError(hint)
    if args.cfg.endswith(".weights"):
        raise UsageError(f"{args.cfg}: a .weights file where the cfg is expected: the order is CFG WEIGHTS")
    if args.names is not None:
        _args.input_file(args.names, "names")


def _run(args) -> int:
    from .convert import output_path, resolve_target

    t0 = time.perf_counter()
    target = resolve_target(args, "darknet", SUPPORTED)
    check_args(args)
    out = output_path(args, target, args.weights, (args.cfg, args.weights))
    return _convert(args, target, out, t0)  # a failed write is a WriteError from the writer itself (zooport._io)


def _convert(args, target: str, out, t0: float) -> int:
    from ..converters.darknet.load import load_darknet, save_darknet_weights
    from ._args import progress, report_written

    with progress(total=2, desc="convert darknet", unit="step") as steps:
        steps.set_postfix_str("loading")
        model = load_darknet(args.cfg, args.weights, names=args.names, num_classes=args.num_classes)
        steps.update(1)
        steps.set_postfix_str(f"writing {target}")
        if target == "darknet":
            save_darknet_weights(model, out)
        elif target == "mmdet":
            from ..converters.mmdet.darknet_bridge import save_mmdet_checkpoint

            save_mmdet_checkpoint(model, out, names=model.names)
        else:
            from ..converters.native import save_native

            save_native(model, out, fmt=target)
        steps.update(1)
    report_written(out, target, t0)
    skipped = model.darknet_load.skipped
    if args.num_classes is not None:
        if skipped:
            print(f"--num-classes {args.num_classes}: not loaded (class-dependent, freshly initialised): "
                  + ", ".join(skipped))
        else:
            print(f"--num-classes {args.num_classes}: same as the cfg's classes; every layer loaded")
    return 0
