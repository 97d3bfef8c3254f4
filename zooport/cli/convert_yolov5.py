"""``zooport convert yolov5 CKPT [--to pt|safetensors|yolov5] [-o OUT] [--names FILE]``."""
from __future__ import annotations

import time

SUPPORTED = ("pt", "safetensors", "yolov5")


def register(sub) -> None:
    from .convert import add_output_args

    p = sub.add_parser(
        "yolov5",
        help="convert an Ultralytics YOLOv5 .pt checkpoint (any release) to a native checkpoint",
        description="Read a YOLOv5 .pt checkpoint (v1.0 ... v7.0) without YOLOv5's code and without "
        "unsafe unpickling, and write it as a zooport native checkpoint (--to pt: .pt loadable with "
        "torch.load(weights_only=True); --to safetensors), or as a YOLOv5-style state dict "
        "{'model.N...': tensor} that YOLOv5's DetectionModel(cfg).load_state_dict accepts (--to yolov5, "
        "float32). The output is written atomically.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="YOLOv5 .pt file (e.g. yolov5s.pt)")
    add_output_args(p, SUPPORTED, "beside CKPT, CKPT's name with the target's extension, "
                    "'.converted' inserted when that is CKPT itself")
    p.add_argument("--names", metavar="FILE", default=None, help="class names file overriding the checkpoint's")
    p.set_defaults(func=_run)


def check_args(args) -> None:
    from ..errors import UsageError
    from ..loading import source_hint
    from . import _args

    _args.input_file(args.checkpoint, "YOLOv5 checkpoint")
    hint = source_hint(args.checkpoint, "yolov5")
    if hint:
        raise UsageError(hint)
    if args.names is not None:
        _args.input_file(args.names, "names")


def _run(args) -> int:
    from .convert import output_path, resolve_target

    t0 = time.perf_counter()
    target = resolve_target(args, "yolov5", SUPPORTED)
    check_args(args)
    out = output_path(args, target, args.checkpoint, (args.checkpoint,))

    from ..converters.yolov5 import load_yolov5, to_yolov5_state_dict
    from ._args import progress, report_written

    with progress(total=2, desc="convert yolov5", unit="step") as bar:
        model = load_yolov5(args.checkpoint, names=args.names)
        bar.update(1)
        if target == "yolov5":
            from .._io import save_torch

            sd = {k: v.float() if v.is_floating_point() else v for k, v in to_yolov5_state_dict(model).items()}
            save_torch(sd, out)
        else:
            from ..converters.native import save_native

            save_native(model, out, target)
        bar.update(1)
    report_written(out, target, t0)
    return 0
