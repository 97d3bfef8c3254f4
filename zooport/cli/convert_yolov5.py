"""``zooport convert yolov5 CKPT [-o OUT] [--format pt|safetensors|yolov5]``."""
from __future__ import annotations

_FORMATS = ("pt", "safetensors", "yolov5")


def register(sub) -> None:
    p = sub.add_parser(
        "yolov5",
        help="convert an Ultralytics YOLOv5 .pt checkpoint (any release) to a native checkpoint",
        description="Read a YOLOv5 .pt checkpoint (v1.0 ... v7.0) without YOLOv5's code and without "
        "unsafe unpickling, and write it as a zooport native checkpoint (.pt loadable with "
        "torch.load(weights_only=True), or .safetensors), or as a YOLOv5-style state dict "
        "{'model.N...': tensor} that YOLOv5's DetectionModel(cfg).load_state_dict accepts. "
        "The output is written atomically.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="YOLOv5 .pt file (e.g. yolov5s.pt)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file (default: CKPT's name with .zoo.pt, .safetensors or .yolov5-sd.pt)")
    p.add_argument("--format", choices=_FORMATS, default=None,
                   help="pt: native checkpoint dict; safetensors: native tensors + JSON metadata; "
                   "yolov5: plain YOLOv5-style state dict (float32). Default: from OUT's suffix, else pt")
    p.set_defaults(func=_run)


def _default_output(ckpt, fmt):
    from pathlib import Path

    p = Path(ckpt)
    suffix = {"pt": ".zoo.pt", "safetensors": ".safetensors", "yolov5": ".yolov5-sd.pt"}[fmt]
    return p.with_name(p.stem + suffix)


def _run(args) -> int:
    from pathlib import Path

    from .._io import save_torch
    from ..errors import UsageError

    fmt = args.format
    if fmt is None:
        fmt = "safetensors" if args.output and Path(args.output).suffix == ".safetensors" else "pt"
    out = Path(args.output) if args.output else _default_output(args.checkpoint, fmt)
    if out.resolve() == Path(args.checkpoint).resolve():
        raise UsageError(f"output {out} would overwrite the input checkpoint")
    if not Path(args.checkpoint).is_file():
        from ..errors import CheckpointError

        raise CheckpointError(f"{args.checkpoint}: no such file")

    from tqdm import tqdm

    from ..converters.yolov5 import load_yolov5, to_yolov5_state_dict

    with tqdm(total=2, desc="convert yolov5", unit="step", leave=False, disable=None) as bar:  # terminal only
        model = load_yolov5(args.checkpoint)
        bar.update(1)
        if fmt == "yolov5":
            sd = {k: v.float() if v.is_floating_point() else v for k, v in to_yolov5_state_dict(model).items()}
            save_torch(sd, out)
        else:
            from ..converters.native import save_native

            save_native(model, out, fmt)
        bar.update(1)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.checkpoint} -> {out} ({fmt}; {len(model.names)} classes, strides {model.stride}, "
          f"{n:,} parameters, weights from '{model.source.get('weights')}')")
    return 0
