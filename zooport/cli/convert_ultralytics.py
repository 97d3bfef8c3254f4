"""``zooport convert ultralytics CKPT [--to pt|safetensors|ultralytics] [-o OUT] [--names FILE]``."""
from __future__ import annotations

import time

from .. import families

SUPPORTED = families.get("ultralytics").targets


def register(sub) -> None:
    from .convert import add_output_args

    p = sub.add_parser(
        "ultralytics",
        help="convert an Ultralytics YOLOv8 / YOLO11 detection .pt checkpoint to a native checkpoint",
        description="Read an Ultralytics YOLOv8 / YOLO11 detection .pt checkpoint without the ultralytics "
        "package and without unsafe unpickling, and write it as a zooport native checkpoint (--to pt: .pt "
        "loadable with torch.load(weights_only=True); --to safetensors), or as an Ultralytics-style state dict "
        "{'model.N...': tensor} that DetectionModel(yaml).load_state_dict accepts (--to ultralytics, float32). "
        "Segment, pose, OBB and classify checkpoints are refused. Outputs are written atomically.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="Ultralytics .pt file (e.g. yolov8n.pt, yolo11n.pt)")
    add_output_args(p, SUPPORTED, "beside CKPT, CKPT's name with the target's extension, "
                    "'.converted' inserted when that is CKPT itself")
    p.add_argument("--names", metavar="FILE", default=None, help="class names file overriding the checkpoint's")
    p.set_defaults(func=_run)


def check_args(args) -> None:
    from ..checkpoints import source_hint
    from ..errors import UsageError
    from . import _args

    _args.input_file(args.checkpoint, "Ultralytics checkpoint")
    hint = source_hint(args.checkpoint, "ultralytics")
    if hint:
        raise UsageError(hint)
    if args.names is not None:
        _args.input_file(args.names, "names")


def _run(args) -> int:
    from .convert import output_path, resolve_target, write_model

    t0 = time.perf_counter()
    target = resolve_target(args, "ultralytics", SUPPORTED)
    check_args(args)
    out = output_path(args, target, args.checkpoint, (args.checkpoint,))

    from ..converters.ultralytics.load import load_ultralytics, to_ultralytics_state_dict
    from ._args import progress, report_written

    with progress(total=2, desc="convert ultralytics", unit="step") as bar:
        model = load_ultralytics(args.checkpoint, names=args.names)
        bar.update(1)
        write_model(model, out, target, "ultralytics", to_ultralytics_state_dict)
        bar.update(1)
    report_written(out, target, t0)
    return 0
