"""``zooport analyze anchors``: the fit of anchors to a dataset's boxes, k-means anchors (registered by :mod:`.analyze`)."""
from __future__ import annotations

import sys

from .dataset_args import add_dataset_args, load_dataset_dict


def register(s) -> None:
    """``analyze anchors``."""
    a = s.add_parser("anchors", help="BPR / anchors-above-threshold / avg IoU of anchors; k-means anchors",
                     description="Fit of anchors to a dataset's box sizes: YOLOv5's best possible recall (BPR) and "
                     "anchors above threshold (AAT) of the width/height ratio test, Darknet's average IoU; then "
                     "k-means (IoU distance, seeded) and optional evolution to new anchors with the same metrics.")
    add_dataset_args(a)
    a.add_argument("--model", nargs="+", metavar="MODEL", help="take the anchors (and input size) from MODEL")
    a.add_argument("--anchors", metavar="W,H ...", help="anchors to evaluate, e.g. '10,13 16,30 33,23'")
    a.add_argument("-n", type=int, default=None, help="k-means anchors (default: as many as evaluated, else 9)")
    a.add_argument("--imgsz", type=int, help="network input size (default the model's, else 640)")
    a.add_argument("--preprocess", choices=["letterbox", "resize"], help="box scaling (default from the model)")
    a.add_argument("--thr", type=float, default=4.0, help="width/height ratio threshold (default 4.0)")
    a.add_argument("--seed", type=int, default=0, help="k-means seed (default 0)")
    a.add_argument("--gen", type=int, default=0, help="evolution generations after k-means (default 0)")
    a.add_argument("--plot", metavar="OUT.png", help="scatter plot of box sizes with the anchors")
    a.add_argument("--write-cfg", metavar="OUT", help="write the k-means anchors into a copy of the Darknet cfg "
                   "(MODEL is a .cfg) or the YOLOv5 model yaml (OUT.yaml)")
    a.add_argument("--json", action="store_true", help="print the result as JSON")
    a.add_argument("--names", metavar="FILE", help="class names file for a Darknet MODEL")
    a.set_defaults(func=_anchors)


def _anchors(args) -> int:
    import json

    import numpy as np

    from ..analysis import anchors as A
    from ..errors import UsageError

    model = None
    if args.model:
        from .model_args import load_for_structure

        model = load_for_structure(args)
    k = A.parse_anchors(args.anchors) if args.anchors else (A.model_anchors(model) if model is not None else None)
    mode = args.preprocess or ((model.preprocess or {}).get("mode", "letterbox") if model is not None else "letterbox")
    imgsz = args.imgsz or (max(model.input_size) if model is not None else 640)
    if mode == "resize" and model is not None and not args.imgsz:
        imgsz = list(model.input_size)
    wh = A.box_sizes(load_dataset_dict(args), imgsz, mode)
    n = args.n or (len(k) if k is not None else 9)
    res = A.analyze_anchors(wh, k, n=n, thr=args.thr, seed=args.seed, gen=args.gen)
    res.update(imgsz=imgsz, preprocess=mode, thr=args.thr)
    if args.plot:
        from ..analysis.anchors_io import plot_anchors

        plot_anchors(args.plot, wh, k, np.asarray(res["kmeans"]["anchors"]))
    if args.write_cfg:
        from ..analysis.anchors_io import write_darknet_cfg, write_yolov5_yaml

        new = np.asarray(res["kmeans"]["anchors"])
        if args.model and args.model[0].lower().endswith(".cfg"):
            write_darknet_cfg(args.model[0], args.write_cfg, new)
        elif model is not None and getattr(model, "family", "") == "yolov5":
            write_yolov5_yaml(model, args.write_cfg, new)
        else:
            raise UsageError("--write-cfg needs --model: a Darknet .cfg or a YOLOv5 model")
    if args.json:
        print(json.dumps(res))
        return 0
    if k is not None:
        print("anchors " + ", ".join(f"{w:.0f},{h:.0f}" for w, h in k))
        print(f"  BPR {res['bpr']:.4f}  AAT {res['aat']:.4f}  avg IoU {res['avg_iou']:.4f}  ({res['boxes']} boxes, "
              f"thr {args.thr})")
    km = res["kmeans"]
    print("k-means " + ", ".join(f"{w:.0f},{h:.0f}" for w, h in km["anchors"]))
    print(f"  BPR {km['bpr']:.4f}  AAT {km['aat']:.4f}  avg IoU {km['avg_iou']:.4f}  (initial avg IoU "
          f"{km['init_avg_iou']:.4f}, seed {args.seed}, gen {args.gen})")
    for f in (args.plot, args.write_cfg):
        if f:
            print(f"wrote {f}", file=sys.stderr)
    return 0
