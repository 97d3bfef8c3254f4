"""``zooport export onnx MODEL [-o model.onnx]``: ONNX export of anything zooport loads.

Every argument is checked before the model is loaded; ``--imgsz`` is range-checked first and rounded up
to a multiple of the model's max stride after the load (with a warning), as Ultralytics does.
"""
from __future__ import annotations

_EPILOG = """\
examples:
  zooport export onnx yolov3-tiny.cfg yolov3-tiny.weights -o yolov3-tiny.onnx
  zooport export onnx yolov5n.pt --dynamic                  (writes yolov5n.onnx beside yolov5n.pt)
  zooport export onnx model.safetensors -o det.onnx --nms --conf 0.25 --iou 0.45 --max-det 100

outputs: default 'output' (B, N, 4+1+nc) xywh pixels, objectness, class scores;
--raw the per-head raw tensors 'raw0..'; --nms 'num_dets' (B,1), 'boxes' (B,max_det,4) xyxy,
'scores' (B,max_det), 'classes' (B,max_det). Input 'images' (B,3,H,W) RGB in [0,1]."""


def register(sub) -> None:
    import argparse

    from .model_args import add_random_weights

    p = sub.add_parser(
        "export",
        help="export a model to ONNX (onnxruntime / OpenCV 5 ready)",
        description="Export a detector to ONNX: Conv+BN fused, decode (and optionally class-aware NMS) in the "
        "graph, metadata (names, stride, anchors, input size, preprocessing, source sha256) in the file.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("format", choices=["onnx"], help="target format (only onnx)")
    p.add_argument("model", nargs="+", metavar="MODEL",
                   help="'CFG WEIGHTS' (Darknet), a native .pt/.safetensors, a YOLOv5 .pt, an MMDetection .pth "
                        "or a zoo name")
    p.add_argument("-o", "--output", metavar="FILE", help="output .onnx path, written atomically (default: beside "
                   "the model file (WEIGHTS for 'CFG WEIGHTS') with .onnx; ./NAME.onnx for a zoo name)")
    p.add_argument("--imgsz", type=int, nargs="+", metavar="PX",
                   help="input size: H, or H W (default: the model's input_size)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--batch", type=int, default=1, metavar="N", help="fixed batch size (default 1)")
    g.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width")
    m = p.add_mutually_exclusive_group()
    m.add_argument("--nms", action="store_true", help="class-aware NMS in the graph, fixed-size outputs")
    m.add_argument("--raw", action="store_true", help="output the raw per-head tensors only")
    p.add_argument("--conf", type=float, default=0.25, help="NMS score threshold (default 0.25)")
    p.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    p.add_argument("--max-det", type=int, default=300, help="NMS detections per image (default 300)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17, 11..20)")
    p.add_argument("--half", action="store_true", help="float16 weights, input and outputs")
    p.add_argument("--names", metavar="FILE", help="class names file (Darknet models)")
    p.add_argument("--config", metavar="FILE", help="MMDetection config (when not in the checkpoint)")
    add_random_weights(p)
    p.add_argument("--check", action="store_true",
                   help="after export, run onnxruntime on the bundled check image and print the parity with "
                   "PyTorch (--nms: before NMS, and detection by detection after it)")
    p.set_defaults(func=_run)


def check_args(args) -> None:
    """Every argument check of ``export onnx``, before anything is loaded."""
    from . import _args

    _args.model_words(args.model)
    _args.imgsz(args.imgsz)
    _args.at_least("--batch", args.batch, 1)
    _args.at_least("--max-det", args.max_det, 1)
    _args.unit_interval("--conf", args.conf)
    _args.unit_interval("--iou", args.iou)
    _args.opset(args.opset)
    for path, what in ((args.names, "names"), (args.config, "MMDetection config")):
        if path is not None:
            _args.input_file(path, what)
    args.output = _args.output_file(args.output or default_output(args.model), args.model)


def default_output(words):
    """Beside the model's file (WEIGHTS of 'CFG WEIGHTS'), named like it with .onnx; ./NAME.onnx for a zoo name."""
    from pathlib import Path

    from ._args import default_output as beside

    p = Path(words[-1])
    return beside(p if p.exists() else Path(p.name), "onnx", words)


def _run(args) -> int:
    import time

    from ..export.onnx import export_onnx
    from ..loading import load_model
    from ._args import progress, report_written, round_imgsz

    check_args(args)
    steps = ["load", "export"] + (["check"] if args.check else [])
    t0 = time.perf_counter()
    with progress(total=len(steps), desc="export onnx", unit="step") as bar:
        from .model_args import model_kwargs

        model = load_model(args.model, names=args.names, config=args.config, **model_kwargs(args))
        bar.update()
        args.imgsz = round_imgsz(args.imgsz, max(getattr(model, "stride", None) or [32]))
        path = export_onnx(model, args.output, imgsz=args.imgsz, batch=args.batch, dynamic=args.dynamic,
                           nms=args.nms, conf=args.conf, iou=args.iou, max_det=args.max_det, opset=args.opset,
                           half=args.half, raw=args.raw)
        bar.update()
        lines = []
        if args.check:
            lines = _check(model, path, args)
            bar.update()
    mode = "nms" if args.nms else "raw" if args.raw else "default"
    report_written(path, f"onnx {mode}{' float16' if args.half else ''}", t0)
    for line in lines:
        print(line)
    return 1 if any(line.startswith("  FAIL") for line in lines) else 0


def _check(model, path, args) -> list[str]:
    from ..export.checks import check_export

    mode = "nms" if args.nms else "raw" if args.raw else "default"
    imgsz = (args.imgsz * 2)[:2] if args.imgsz else None
    return check_export(model, path, mode=mode, conf=args.conf, iou=args.iou, max_det=args.max_det,
                        half=args.half, imgsz=imgsz)
