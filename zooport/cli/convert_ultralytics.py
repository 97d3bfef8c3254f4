"""``zooport convert ultralytics CKPT [-o OUT] [--to pt|safetensors|ultralytics]``."""
from __future__ import annotations

_TARGETS = ("pt", "safetensors", "ultralytics")


def register(sub) -> None:
    p = sub.add_parser(
        "ultralytics",
        help="convert an Ultralytics YOLOv8 / YOLO11 detection .pt checkpoint to a native checkpoint",
        description="Read an Ultralytics YOLOv8 / YOLO11 detection .pt checkpoint without the ultralytics "
        "package and without unsafe unpickling, and write it as a zooport native checkpoint (.pt loadable "
        "with torch.load(weights_only=True), or .safetensors), or as an Ultralytics-style state dict "
        "{'model.N...': tensor} that DetectionModel(yaml).load_state_dict accepts. Segment, pose, OBB and "
        "classify checkpoints are refused. The output is written atomically.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="Ultralytics .pt file (e.g. yolov8n.pt, yolo11n.pt)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file (default: CKPT's name with .zoo.pt, .safetensors or .ultralytics-sd.pt)")
    p.add_argument("--to", choices=_TARGETS, default=None,
                   help="pt: native checkpoint dict; safetensors: native tensors + JSON metadata; "
                   "ultralytics: plain Ultralytics-style state dict (float32). Default: from OUT's suffix, else pt")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from pathlib import Path

    from .._io import atomic_path
    from ..errors import CheckpointError, UsageError

    fmt = args.to
    if fmt is None:
        fmt = "safetensors" if args.output and Path(args.output).suffix == ".safetensors" else "pt"
    src = Path(args.checkpoint)
    suffix = {"pt": ".zoo.pt", "safetensors": ".safetensors", "ultralytics": ".ultralytics-sd.pt"}[fmt]
    out = Path(args.output) if args.output else src.with_name(src.stem + suffix)
    if out.resolve() == src.resolve():
        raise UsageError(f"output {out} would overwrite the input checkpoint")
    if not src.is_file():
        raise CheckpointError(f"{src}: no such file")

    from ..converters.ultralytics.load import load_ultralytics, to_ultralytics_state_dict

    model = load_ultralytics(src)
    if fmt == "ultralytics":
        import torch

        sd = {k: v.float() if v.is_floating_point() else v for k, v in to_ultralytics_state_dict(model).items()}
        with atomic_path(out) as tmp:
            torch.save(sd, tmp)
    else:
        from ..converters.native import save_native

        save_native(model, out, fmt)
    n = sum(p.numel() for p in model.parameters())
    print(f"{src} -> {out} ({fmt}; {model.source.get('head')} head, {len(model.names)} classes, strides "
          f"{model.stride}, {n:,} parameters, weights from '{model.source.get('weights')}')")
    return 0
