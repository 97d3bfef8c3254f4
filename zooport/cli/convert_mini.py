"""``zooport convert mmdet-mini CKPT --config FILE [--to pt|safetensors|darknet|yolov5] [-o OUT] [--names FILE]``.

Reads an mmdetection-mini checkpoint (its own RR* YOLO models: yolov3, yolov4, tiny_yolov3, tiny_yolov4,
yolov5 v3.0) with its mini ``.py`` config into the native model, then writes zooport's checkpoint or,
for the Darknet-derived models, a Darknet ``.weights`` file (byte-identical to the file a
``convert darknet --to mmdet-mini`` came from; ``--cfg-out`` also writes the matching Darknet cfg), or
for yolov5 the YOLOv5 v3.0 state dict (``--to yolov5``: ``{"model.N...": tensor}``, dtypes kept, Detect's
anchors / anchor_grid restored: the tensors of the ``.pt`` mini's converter read).
"""
from __future__ import annotations

import time

SUPPORTED = ("pt", "safetensors", "darknet", "yolov5")


def register(sub) -> None:
    from .convert import add_output_args

    p = sub.add_parser(
        "mmdet-mini",
        help="convert an mmdetection-mini checkpoint (RR* YOLO models) to a native checkpoint or Darknet .weights",
        description="Read a checkpoint in mmdetection-mini's own layout (.pth, loaded with weights_only=True) "
        "with its mini config (.py, read without executing it): RRDarknet53 / RRCSPDarknet53 / RRTinyYolov3 / "
        "RRTinyYolov4 detectors (Darknet yolov3, yolov4, yolov3-tiny, yolov4-tiny) and RRYoloV5 (YOLOv5 v3.0). "
        "--to pt / safetensors writes zooport's checkpoint; --to darknet writes Darknet .weights for the "
        "Darknet-derived ones (--cfg-out FILE: the matching cfg); --to yolov5 writes the YOLOv5 v3.0 state dict "
        "of a mini yolov5 (tensors and dtypes of the .pt it was converted from, anchors restored).",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="mmdetection-mini checkpoint (.pth)")
    p.add_argument("--config", required=True, help="the model's mmdetection-mini config (.py)")
    add_output_args(p, SUPPORTED, "beside CKPT, CKPT's name with the target's extension")
    p.add_argument("--names", metavar="FILE", help="class names file, one per line")
    p.add_argument("--cfg-out", dest="cfg_out", metavar="FILE", help="with --to darknet: also write the Darknet cfg")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from pathlib import Path

    from ..errors import UsageError
    from . import _args
    from ._args import report_written
    from .convert import output_path, resolve_target

    t0 = time.perf_counter()
    target = resolve_target(args, "mmdet-mini", SUPPORTED)
    _args.input_file(args.checkpoint, "mmdetection-mini checkpoint")
    _args.input_file(args.config, "mmdetection-mini config")
    if args.names is not None:
        _args.input_file(args.names, "names")
    if args.cfg_out is not None and target != "darknet":
        raise UsageError("--cfg-out goes with --to darknet")
    ckpt = Path(args.checkpoint)
    out = output_path(args, target, ckpt, (ckpt, args.config, args.names))
    from ..converters.mini.load import load_mini, resolve_arch

    arch = resolve_arch(args.config)
    if target == "yolov5":
        if arch.kind != "yolov5":
            raise UsageError(f"{args.config}: --to yolov5 is for mini's yolov5; {arch.kind} converts to darknet")
        from .._io import save_torch
        from ..converters.mini.yolov5 import mini_to_yolov5_state_dict

        save_torch(mini_to_yolov5_state_dict(_raw_state_dict(ckpt), arch), out)
    elif target == "darknet":
        if arch.kind == "yolov5":
            raise UsageError(f"{args.config}: mini's yolov5 has no Darknet counterpart; use --to pt or safetensors")
        from ..converters.mini.darknet import write_darknet_from_mini
        from ..converters.mmdet.load import read_checkpoint

        sd, meta = read_checkpoint(ckpt)
        write_darknet_from_mini(sd, meta, arch, out, str(ckpt), out_cfg=args.cfg_out)
    else:
        from ..converters.native import save_native
        from ..parsers.names import read_names

        model = load_mini(ckpt, arch, names=read_names(args.names) if args.names else None)
        save_native(model, out, target)
    report_written(out, target, t0)
    return 0


def _raw_state_dict(ckpt):
    """The checkpoint's state dict with its stored dtypes (weights_only load; nothing executed)."""
    import torch

    from ..errors import CheckpointError

    try:
        obj = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle / zip errors of many kinds; weights_only never executes the file
        raise CheckpointError(f"{ckpt}: not loadable with weights_only=True ({type(e).__name__}: {str(e)[:200]})") from None
    sd = obj.get("state_dict") if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{ckpt}: expected {{'state_dict': {{key: tensor}}}}")
    return sd
