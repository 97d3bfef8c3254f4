"""``zooport convert mmdet CKPT [--config FILE] [--to pt|safetensors|darknet] [-o OUT] [--names FILE]``."""
from __future__ import annotations

import time

SUPPORTED = ("pt", "safetensors", "darknet")


def register(sub) -> None:
    from .convert import add_output_args

    p = sub.add_parser(
        "mmdet",
        help="convert an MMDetection checkpoint to a native checkpoint, or YOLOv3 to Darknet .weights",
        description="Read an MMDetection checkpoint (.pth, loaded with weights_only=True) of RetinaNet, FCOS, "
        "ATSS, GFL, YOLOX or YOLOv3. The config comes from --config (an MMDetection .py config, read without "
        "executing it, or a resolved .json/.yaml) or from the config text stored in the checkpoint's meta. "
        "--to pt / safetensors writes zooport's checkpoint; --to darknet writes a Darknet .weights file for "
        "MMDetection's YOLOV3 (Darknet-53), for use with Darknet's yolov3.cfg.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="MMDetection checkpoint (.pth)")
    p.add_argument("--config", help="MMDetection config (.py/.json/.yaml); default: the checkpoint's meta['cfg']")
    add_output_args(p, SUPPORTED, "beside CKPT, CKPT's name with the target's extension")
    p.add_argument("--names", metavar="FILE", help="class names file, one per line (overrides the config's classes)")
    p.set_defaults(func=_run)


def check_args(args) -> None:
    from ..errors import UsageError
    from ..loading import source_hint
    from . import _args

    _args.input_file(args.checkpoint, "MMDetection checkpoint")
    hint = source_hint(args.checkpoint, "mmdet")
    if hint:
        raise UsageError(hint)
    for path, what in ((args.config, "MMDetection config"), (args.names, "names")):
        if path is not None:
            _args.input_file(path, what)


def _run(args) -> int:
    from pathlib import Path

    from ..parsers.names import read_names
    from ._args import progress, report_written
    from .convert import output_path, resolve_target

    t0 = time.perf_counter()
    target = resolve_target(args, "mmdet", SUPPORTED)
    check_args(args)
    ckpt = Path(args.checkpoint)
    out = output_path(args, target, ckpt, (ckpt, args.config, args.names))
    names = read_names(args.names) if args.names else None
    with progress(total=2, desc="convert mmdet", unit="step") as bar:
        if target == "darknet":
            _to_darknet(ckpt, args, out, bar)
        else:
            from ..converters.mmdet.load import load_mmdet
            from ..converters.native import save_native

            model = load_mmdet(ckpt, args.config, names=names)
            bar.update(1)
            save_native(model, out, target)
            bar.update(1)
    report_written(out, target, t0)
    return 0


def _to_darknet(ckpt, args, out, bar) -> None:
    from ..converters.mmdet.load import read_checkpoint, resolve_config
    from ..converters.mmdet.darknet_bridge import write_darknet_weights
    from ..parsers.mmdet.config import model_section

    sd, meta = read_checkpoint(ckpt)
    cfg = model_section(resolve_config(args.config, meta, str(ckpt)), str(args.config or ckpt))
    bar.update(1)
    write_darknet_weights(out, sd, cfg, header=meta.get("darknet_header"), where=str(ckpt))
    bar.update(1)
