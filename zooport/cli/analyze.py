"""``zooport analyze model|anchors|features|assign|loss``: look inside a model, its anchors and losses."""
from __future__ import annotations

import argparse
import sys

EPILOG = """examples:
  zooport analyze model yolov5n.pt --imgsz 640 --time
  zooport analyze model yolov5s --flops-convention yolov5 --json
  zooport analyze model yolov4-tiny.cfg --json           (Darknet's own per-layer BFLOPS)
  zooport analyze anchors --coco coco/val2017 --model yolov5n.pt --plot anchors.png --json
  zooport analyze anchors --voc VOCdevkit -n 9 --write-cfg yolov3-custom.cfg --model yolov3.cfg
  zooport analyze features yolov5n.pt bus.jpg --layers 4 6 9 -o feats/
  zooport analyze assign yolov5n.pt --coco coco/val2017 --image 139 -o assign.png
  zooport analyze loss focal --alpha 0.25 --gamma 2 -o focal.png"""


def register(sub) -> None:
    p = sub.add_parser("analyze", help="FLOPs, receptive fields, timing, anchors, features, assignment, losses",
                       description="Analyse a model (layers, FLOPs, receptive fields, inference time), a dataset's "
                       "boxes against its anchors, feature maps, training-time assignment and loss curves.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="analyze_cmd", metavar="TOOL")
    s.required = True
    m = s.add_parser("model", help="per-layer table, parameters, FLOPs, receptive fields, timing",
                     description="Per-layer type, output shape, parameters and FLOPs (2 x multiply-adds; Darknet "
                     "models: Darknet's own BFLOPS rules; --flops-convention yolov5: thop as YOLOv5's model_info), "
                     "totals, the receptive field and stride of every head, and with --time the inference time "
                     "per backend (torch eager, torch fused, onnxruntime).")
    m.add_argument("model", nargs="+", metavar="MODEL", help="CFG [WEIGHTS] | checkpoint | zoo name")
    m.add_argument("--imgsz", type=int, nargs="+", metavar="PX", help="input size H [W] (default the model's)")
    m.add_argument("--flops-convention", choices=["zooport", "darknet", "yolov5"],
                   help="zooport: 2 x MACs of conv/linear; darknet: Darknet's bflops (default for Darknet "
                   "models); yolov5: YOLOv5 model_info via thop (BN counted, profiled at the stride, scaled)")
    m.add_argument("--fuse", action="store_true", help="analyse the Conv+BN fused model")
    m.add_argument("--time", action="store_true", help="also time eager / fused / onnxruntime inference")
    m.add_argument("--warmup", type=int, default=2, help="untimed runs per backend (default 2)")
    m.add_argument("--repeats", type=int, default=10, help="timed runs per backend (default 10)")
    m.add_argument("--json", action="store_true", help="print the report as JSON")
    m.add_argument("--names", metavar="FILE", help="class names file for a Darknet MODEL")
    m.set_defaults(func=_model)
    from . import analyze_anchors, analyze_pictures

    analyze_anchors.register(s)
    analyze_pictures.register(s)


def _imgsz(v):
    from ..errors import UsageError

    if v is None:
        return None
    if len(v) > 2:
        raise UsageError(f"--imgsz takes H or H W, got {v}")
    return v[0] if len(v) == 1 else list(v)


def _model(args) -> int:
    import copy
    import json

    from ..analysis.model import analyze_model, format_table
    from .model_args import load_for_structure

    model = load_for_structure(args)
    if args.fuse:
        try:
            model = copy.deepcopy(model).fuse()
        except NotImplementedError:
            print("zooport: this model family has no fuse(); analysing it unfused", file=sys.stderr)
    res = analyze_model(model, _imgsz(args.imgsz), convention=args.flops_convention, timing=args.time,
                        warmup=args.warmup, repeats=args.repeats)
    if args.json:
        print(json.dumps(res))
    else:
        print(format_table(res))
    return 0
