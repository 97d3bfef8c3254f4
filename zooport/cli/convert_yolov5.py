"""``zooport convert yolov5 CKPT [--to pt|safetensors|yolov5|darknet|mmdet-mini] [-o OUT] [--names FILE]
[--bn-eps EPS] [--bn-scale K]``."""
from __future__ import annotations

import time

from .. import families

SUPPORTED = families.get("yolov5").targets


def register(sub) -> None:
    from .convert import add_output_args

    p = sub.add_parser(
        "yolov5",
        help="convert an Ultralytics YOLOv5 .pt checkpoint (any release) to a native checkpoint or Darknet",
        description="Read a YOLOv5 .pt checkpoint (v1.0 ... v7.0) without YOLOv5's code and without "
        "unsafe unpickling, and write it as a zooport native checkpoint (--to pt: .pt loadable with "
        "torch.load(weights_only=True); --to safetensors), as a YOLOv5-style state dict "
        "{'model.N...': tensor} that YOLOv5's DetectionModel(cfg).load_state_dict accepts (--to yolov5, "
        "float32), or as a Darknet network (--to darknet: OUT.cfg + OUT.weights + OUT.names with "
        "new_coords [yolo] heads, which Darknet and OpenCV 4 run), or (--to mmdet-mini, YOLOv5 v3.0 s/m/l/x) "
        "the .pth mmdetection-mini's convert_yolov5_weights_step1/2 write. Outputs are written atomically.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="YOLOv5 .pt file (e.g. yolov5s.pt)")
    add_output_args(p, SUPPORTED, "beside CKPT, CKPT's name with the target's extension, "
                    "'.converted' inserted when that is CKPT itself; for darknet a stem: OUT.cfg, OUT.weights, "
                    "OUT.names")
    p.add_argument("--names", metavar="FILE", default=None, help="class names file overriding the checkpoint's")
    p.add_argument("--bn-eps", type=float, default=None, metavar="EPS",
                   help="--to darknet only: batch-norm eps of the program that will run the files, folded into "
                   "the rolling variances exactly (default 1e-5, Darknet's). Not needed for OpenCV 4 (eps 1e-6): "
                   "the export is scaled so that any eps up to 6e-5 gives the same result")
    p.add_argument("--bn-scale", type=int, default=None, metavar="K",
                   help="--to darknet only: power of two multiplying conv weights and rolling means (variances by "
                   "K*K), exact for batch norm (default 1024); 1 writes YOLOv5's own magnitudes, e.g. to fine-tune "
                   "in Darknet, and is exact for --bn-eps only")
    p.set_defaults(func=_run)


def check_args(args) -> None:
    from ..errors import UsageError
    from ..checkpoints import source_hint
    from . import _args

    _args.input_file(args.checkpoint, "YOLOv5 checkpoint")
    hint = source_hint(args.checkpoint, "yolov5")
    if hint:
        raise UsageError(hint)
    if args.names is not None:
        _args.input_file(args.names, "names")
    if args.bn_eps is not None and not 0 < args.bn_eps < 1:
        raise UsageError(f"--bn-eps {args.bn_eps}: expected a small positive number such as 1e-5")
    if args.bn_scale is not None:
        from ..converters.yolov5.bn_fold import check_scale

        check_scale(args.bn_scale, "--bn-scale")


def _run(args) -> int:
    from ..errors import UsageError
    from .convert import output_path, resolve_target, write_model

    t0 = time.perf_counter()
    target = resolve_target(args, "yolov5", SUPPORTED)
    check_args(args)
    for flag, value in (("--bn-eps", args.bn_eps), ("--bn-scale", args.bn_scale)):
        if value is not None and target != "darknet":
            raise UsageError(f"{flag} applies to --to darknet only")
    if target == "darknet":
        return _to_darknet(args, t0)
    out = output_path(args, target, args.checkpoint, (args.checkpoint,))
    if target == "mmdet-mini":
        from ..converters.mini.yolov5 import save_mini_from_yolov5
        from ._args import report_written

        if args.names is not None:
            raise UsageError("--names with --to mmdet-mini: mini's .pth holds tensors only")
        save_mini_from_yolov5(args.checkpoint, out)
        report_written(out, target, t0)
        return 0

    from ..converters.yolov5.load import load_yolov5, to_yolov5_state_dict
    from ._args import progress, report_written

    with progress(total=2, desc="convert yolov5", unit="step") as bar:
        model = load_yolov5(args.checkpoint, names=args.names)
        bar.update(1)
        write_model(model, out, target, "yolov5", to_yolov5_state_dict)
        bar.update(1)
    report_written(out, target, t0)
    return 0


def _to_darknet(args, t0: float) -> int:
    from pathlib import Path

    from ..converters.yolov5.load import load_yolov5
    from ..converters.yolov5.to_darknet import default_outputs, save_darknet
    from ..errors import UsageError
    from . import _args
    from ._args import progress, report_written

    ckpt = Path(args.checkpoint)
    cfg, weights, names = default_outputs(args.output if args.output else ckpt.with_suffix(""))
    if ckpt.resolve() in {p.resolve() for p in (cfg, weights, names)}:
        raise UsageError(f"output {ckpt} would overwrite the input checkpoint")
    for p in (cfg, weights, names):
        _args.output_file(p, (args.checkpoint,))
    with progress(total=2, desc="convert yolov5", unit="step") as bar:
        model = load_yolov5(ckpt, names=args.names)
        bar.update(1)
        opts = {k: v for k, v in (("bn_eps", args.bn_eps), ("bn_scale", args.bn_scale)) if v is not None}
        save_darknet(model, cfg, weights, names, **opts)
        bar.update(1)
    for p in (cfg, weights, names):
        report_written(p, "darknet", t0)
    return 0
