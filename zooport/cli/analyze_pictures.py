"""``zooport analyze features|assign|loss``: feature maps, training-assigner positives and loss curves drawn as
pictures (registered by :mod:`.analyze`)."""
from __future__ import annotations

from .dataset_args import load_dataset_dict


def register(s) -> None:
    """``analyze features``, ``analyze assign`` and ``analyze loss``."""
    f = s.add_parser("features", help="feature maps of chosen layers as heat-map PNGs",
                     description="Run MODEL on IMAGE (its own preprocessing) and write the mean |activation| of "
                     "each chosen layer (row index of 'analyze model') as a heat map over the input.")
    f.add_argument("words", nargs="+", metavar="MODEL IMAGE", help="MODEL ('CFG WEIGHTS' or one word) then IMAGE")
    f.add_argument("--layers", nargs="+", required=True, metavar="N", help="layer indices (analyze model rows)")
    f.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    f.add_argument("--imgsz", type=int, help="input size (default the model's)")
    f.add_argument("--names", metavar="FILE", help="class names file for a Darknet MODEL")
    f.set_defaults(func=_features)
    a = s.add_parser("assign", help="positive anchors/points per ground-truth box and level, drawn",
                     description="Which anchors or points the model's training assigner makes positive for each "
                     "ground-truth box of one COCO image (YOLOv3 best anchor, YOLOv5 ratio rule, RetinaNet "
                     "MaxIoU, FCOS, ATSS), one panel per pyramid level.")
    a.add_argument("model", nargs="+", metavar="MODEL")
    g = a.add_mutually_exclusive_group(required=True)
    g.add_argument("--coco", metavar="DIR|JSON", help="COCO image folder (annotations beside it) or the json")
    g.add_argument("--voc", metavar="DIR", help="VOC folder")
    a.add_argument("--image", required=True, help="image id (COCO id or file name stem)")
    a.add_argument("-o", "--output", required=True, metavar="OUT.png", help="output picture")
    a.add_argument("--imgsz", type=int, default=640, help="square input size (default 640)")
    a.add_argument("--assigner", choices=["yolov3", "yolov5", "maxiou", "fcos", "atss"], help="default by model")
    a.add_argument("--names", metavar="FILE", help="class names file for a Darknet MODEL")
    a.set_defaults(func=_assign, year="2007", split=None)
    lo = s.add_parser("loss", help="focal loss and its gradient against cross-entropy, plotted",
                      description="Focal loss curves (loss and gradient w.r.t. the logit over p_t) for a grid of "
                      "gamma at the given alpha, against cross-entropy.")
    lo.add_argument("kind", choices=["focal"])
    lo.add_argument("--alpha", type=float, default=0.25, help="alpha (default 0.25)")
    lo.add_argument("--gamma", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 5.0], help="gammas to plot")
    lo.add_argument("-o", "--output", required=True, metavar="OUT.png", help="output picture")
    lo.add_argument("--json", metavar="FILE", help="also write the curves as JSON")
    lo.set_defaults(func=_loss)


def _features(args) -> int:
    from ..analysis.features import feature_maps, write_feature_maps
    from ..errors import UsageError
    from .predict import split_model

    model, rest = split_model(list(args.words))
    if len(rest) != 1:
        raise UsageError("give MODEL and exactly one IMAGE")
    maps = feature_maps(model, rest[0], args.layers, imgsz=args.imgsz, names=args.names)
    for p in write_feature_maps(maps, args.output):
        print(p)
    return 0


def _assign(args) -> int:
    from ..analysis.assign_model import assign_on_image
    from .model_args import load_for_structure
    from ..inference.outputs import write_image

    model = load_for_structure(args)
    img, pos, kind = assign_on_image(model, load_dataset_dict(args), args.image, args.imgsz, args.assigner)
    write_image(args.output, img)
    print(f"{kind}: {len(pos)} positives for image {args.image} -> {args.output}")
    return 0


def _loss(args) -> int:
    from ..analysis.losses import focal_curves, plot_focal
    from ..inference.outputs import write_json

    c = focal_curves(args.alpha, args.gamma)
    plot_focal(args.output, c)
    if args.json:
        write_json(args.json, c)
    print(f"focal loss curves (alpha {args.alpha}, gamma {args.gamma}) -> {args.output}")
    return 0
