"""``zooport convert yolov5 CKPT [-o OUT] [--format/--to pt|safetensors|yolov5|darknet]``."""
from __future__ import annotations

_FORMATS = ("pt", "safetensors", "yolov5", "darknet")


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
                   help="output file (default: CKPT's name with .zoo.pt, .safetensors or .yolov5-sd.pt); "
                   "for darknet a stem: OUT.cfg, OUT.weights and OUT.names (default: CKPT's stem)")
    p.add_argument("--format", "--to", dest="format", choices=_FORMATS, default=None,
                   help="pt: native checkpoint dict; safetensors: native tensors + JSON metadata; "
                   "yolov5: plain YOLOv5-style state dict (float32); darknet: Darknet cfg + .weights + .names "
                   "(new_coords [yolo] heads; Darknet and OpenCV 4 run it). Default: from OUT's suffix, else pt")
    p.add_argument("--bn-eps", type=float, default=None, metavar="EPS",
                   help="darknet only: batch-norm eps of the program that will run the files, folded into the "
                   "rolling variances (default 1e-5, Darknet's; OpenCV 4's readNetFromDarknet uses 1e-6)")
    p.set_defaults(func=_run)


def _default_output(ckpt, fmt):
    from pathlib import Path

    p = Path(ckpt)
    suffix = {"pt": ".zoo.pt", "safetensors": ".safetensors", "yolov5": ".yolov5-sd.pt"}[fmt]
    return p.with_name(p.stem + suffix)


def _run(args) -> int:
    from pathlib import Path

    from .._io import atomic_path
    from ..errors import UsageError

    fmt = args.format
    if fmt == "darknet":
        return _to_darknet(args)
    if args.bn_eps is not None:
        from ..errors import UsageError

        raise UsageError("--bn-eps applies to --to darknet only")
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

    with tqdm(total=2, desc="convert yolov5", unit="step", leave=False) as bar:
        model = load_yolov5(args.checkpoint)
        bar.update(1)
        if fmt == "yolov5":
            import torch

            sd = {k: v.float() if v.is_floating_point() else v for k, v in to_yolov5_state_dict(model).items()}
            with atomic_path(out) as tmp:
                torch.save(sd, tmp)
        else:
            from ..converters.native import save_native

            save_native(model, out, fmt)
        bar.update(1)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.checkpoint} -> {out} ({fmt}; {len(model.names)} classes, strides {model.stride}, "
          f"{n:,} parameters, weights from '{model.source.get('weights')}')")
    return 0


def _to_darknet(args) -> int:
    from pathlib import Path

    from ..converters.yolov5 import load_yolov5
    from ..converters.yolov5_darknet import default_outputs, save_darknet
    from ..errors import CheckpointError, UsageError

    ckpt = Path(args.checkpoint)
    cfg, weights, names = default_outputs(args.output if args.output else ckpt.with_suffix(""))
    if ckpt.resolve() in {p.resolve() for p in (cfg, weights, names)}:
        raise UsageError(f"output {ckpt} would overwrite the input checkpoint")
    if not ckpt.is_file():
        raise CheckpointError(f"{ckpt}: no such file")
    if args.bn_eps is not None and not 0 < args.bn_eps < 1:
        raise UsageError(f"--bn-eps {args.bn_eps}: expected a small positive number such as 1e-5")
    model = load_yolov5(ckpt)
    kw = {} if args.bn_eps is None else {"bn_eps": args.bn_eps}
    info = save_darknet(model, cfg, weights, names, **kw)
    print(f"{ckpt} -> {cfg}, {weights} ({info['weights_bytes']:,} bytes), {names} (darknet; {len(model.names)} "
          f"classes, {info['layers']} layers, input {model.input_size[1]}x{model.input_size[0]}, strides "
          f"{model.stride})")
    return 0
