"""``zooport export onnx MODEL -o model.onnx``: ONNX export of anything zooport loads."""
from __future__ import annotations

_EPILOG = """\
examples:
  zooport export onnx yolov3-tiny.cfg yolov3-tiny.weights -o yolov3-tiny.onnx
  zooport export onnx yolov5n.pt -o yolov5n.onnx --dynamic
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
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="output .onnx path (written atomically)")
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


def _run(args) -> int:
    import time

    from ..errors import UsageError

    if args.imgsz is not None and len(args.imgsz) > 2:
        raise UsageError(f"--imgsz takes H or H W, got {args.imgsz}")
    from tqdm import tqdm

    from ..export.onnx import export_onnx
    from ..loading import load_model

    steps = ["load", "export"] + (["check"] if args.check else [])
    bar = tqdm(total=len(steps), desc="export onnx", unit="step", leave=False, disable=None)  # terminal only
    t0 = time.perf_counter()
    from .model_args import model_kwargs

    model = load_model(args.model, names=args.names, config=args.config, **model_kwargs(args))
    bar.update()
    path = export_onnx(model, args.output, imgsz=args.imgsz, batch=args.batch, dynamic=args.dynamic,
                       nms=args.nms, conf=args.conf, iou=args.iou, max_det=args.max_det, opset=args.opset,
                       half=args.half, raw=args.raw)
    bar.update()
    lines = []
    if args.check:
        lines = _check(model, path, args)
        bar.update()
    bar.close()
    mode = "nms" if args.nms else "raw" if args.raw else "default"
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, {mode} outputs, "
          f"{'float16' if args.half else 'float32'}) in {time.perf_counter() - t0:.1f} s")
    for line in lines:
        print(line)
    return 1 if any(line.startswith("  FAIL") for line in lines) else 0


def _check(model, path, args) -> list[str]:
    from ..export.checks import check_export

    mode = "nms" if args.nms else "raw" if args.raw else "default"
    imgsz = (args.imgsz * 2)[:2] if args.imgsz else None
    return check_export(model, path, mode=mode, conf=args.conf, iou=args.iou, max_det=args.max_det,
                        half=args.half, imgsz=imgsz)
