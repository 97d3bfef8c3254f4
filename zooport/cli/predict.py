"""``zooport predict MODEL SOURCE...``: detections drawn on images and videos, JSON / YOLO txt outputs.

Exit status: 0 when every input was processed; 1 when some inputs were unreadable (each is reported on
stderr and skipped, the others are still written); 2 bad arguments or model.
"""
from __future__ import annotations

import sys

EPILOG = """examples:
  zooport predict yolov5n.pt bus.jpg zidane.jpg -o out/
  zooport predict yolov5n.pt images/ --square --imgsz 640 --conf 0.25 --iou 0.45 --save-json
  zooport predict yolov3-tiny.cfg yolov3-tiny.weights 'photos/*.jpg' --names coco.names --save-txt
  zooport predict yolov5s street.mp4 -o out/ --classes 0 2      (a video in, a video with boxes out)

outputs in DIR: one drawn image per input (<stem>.png, or --ext), one video per video (<stem>.mp4);
--save-json: predictions.json, a list of {"image": path, "detections": [{"box": [x1, y1, x2, y2],
"score": s, "class": id, "name": name}]} (boxes in original-image pixels); --save-txt: labels/<stem>.txt,
YOLO format 'class cx cy w h' relative to the image (+ score with --save-conf); video frames <stem>_<frame>.

exit status: 0 ok, 1 some inputs were unreadable (reported and skipped), 2 bad arguments."""


def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "predict", help="run a model on images/videos and draw the detections",
        description="Run MODEL on image files, folders, glob patterns or videos with the model family's own "
        "preprocessing and post-processing (the verifier's code) and draw the boxes in original-image pixels.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("words", nargs="+", metavar="MODEL SOURCE",
                   help="MODEL ('CFG WEIGHTS', a checkpoint or a zoo name) then one or more SOURCEs")
    p.add_argument("-o", "--output", default="runs/predict", metavar="DIR", help="output folder (default runs/predict)")
    p.add_argument("--imgsz", type=int, nargs="+", metavar="PX", help="input size: long side (letterbox) or "
                   "H [W] (resize); default the model's input size")
    p.add_argument("--square", action="store_true", help="letterbox to imgsz x imgsz (as ONNX exports) instead "
                   "of YOLOv5 detect.py's minimal stride-aligned rectangle")
    p.add_argument("--conf", type=float, default=0.25, help="score threshold (default 0.25)")
    p.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    p.add_argument("--max-det", type=int, default=300, help="detections per image (default 300)")
    p.add_argument("--classes", type=int, nargs="+", metavar="ID", help="keep only these class ids")
    p.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch", help="inference backend")
    p.add_argument("--resize-interp", choices=["darknet", "opencv"], default="darknet",
                   help="resize models: Darknet's own bilinear (default, as darknet detector test) or OpenCV's")
    p.add_argument("--decoder", choices=["auto", "opencv", "stb"], default="auto",
                   help="JPEG decoding: stb (bit for bit as Darknet's stb_image), opencv, or auto (default: stb "
                   "for a Darknet model run the Darknet way, else opencv)")
    p.add_argument("--names", metavar="FILE", help="class names file for a Darknet MODEL")
    p.add_argument("--save-json", action="store_true", help="write DIR/predictions.json")
    p.add_argument("--save-txt", action="store_true", help="write YOLO-format DIR/labels/<stem>.txt per image")
    p.add_argument("--save-conf", action="store_true", help="append the score to each --save-txt line")
    p.add_argument("--no-draw", action="store_true", help="do not write drawn images/videos")
    p.add_argument("--ext", default="png", help="drawn image format (png, jpg, ...; default png)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def split_model(words: list) -> tuple[list, list]:
    """MODEL words (``CFG [WEIGHTS]`` or one word) and the SOURCE words after them."""
    n = 1
    if words and words[0].lower().endswith(".cfg") and len(words) > 1 and words[1].lower().endswith(".weights"):
        n = 2
    return words[:n], words[n:]


def _run(args) -> int:
    from ..errors import UsageError

    model, sources = split_model(list(args.words))
    if not sources:
        raise UsageError("give MODEL and at least one SOURCE (image, folder, glob or video)")
    if args.imgsz is not None and len(args.imgsz) > 2:
        raise UsageError(f"--imgsz takes one or two sizes, got {args.imgsz}")
    from pathlib import Path

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: output exists and is not a folder")
    from ..inference.api import Predictor
    from ..inference.run import run_sources

    imgsz = None if args.imgsz is None else (args.imgsz[0] if len(args.imgsz) == 1 else args.imgsz)
    pred = Predictor(model, imgsz=imgsz, conf=args.conf, iou=args.iou, max_det=args.max_det, classes=args.classes,
                     square=args.square, backend=args.backend, names=args.names, resize_interp=args.resize_interp,
                     decoder=args.decoder)
    res = run_sources(pred, sources, out, draw=not args.no_draw, save_json=args.save_json,
                      save_txt=args.save_txt, save_conf=args.save_conf, ext=args.ext,
                      progress=not args.no_progress and sys.stderr.isatty())
    for bad in res["failed"]:
        print(f"zooport: skipped {bad['path']}: {bad['error']}", file=sys.stderr)
    print(res["summary"])
    return 1 if res["failed"] else 0
