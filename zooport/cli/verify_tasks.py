"""``zooport verify`` for YOLOv5 segmentation and classification models (the non-detection tasks).

:func:`verify_task` loads MODEL once; a segmentation model is scored on COCO
(``bbox_*`` and ``segm_*`` metrics, :func:`zooport.eval.segm.verify_segmentation`),
a classification model on an ImageFolder tree given with ``--folder``
(``top1``/``top5``, :func:`zooport.eval.classify.verify_classifier`). Any other
model is handed back for the detection verifier.
"""
from __future__ import annotations


def _class_map(spec):
    """``--class-map`` for a classifier: a YAML file ``folder name: model class index or name``."""
    if spec is None:
        return None
    import yaml

    from ..errors import UsageError

    try:
        with open(spec, encoding="utf-8") as f:
            d = yaml.safe_load(f)
    except OSError as e:
        raise UsageError(f"--class-map {spec}: cannot read ({e.strerror})") from None
    if not isinstance(d, dict):
        raise UsageError(f"--class-map {spec}: expected a mapping 'folder name: model class'")
    return d


def verify_task(args, progress: bool):
    """``(model or MODEL spec, result or None)``: the result when MODEL is a segmentation/classification model."""
    from ..errors import UsageError

    if args.model[0].endswith(".cfg") or (args.coco is not None and args.voc is not None) \
            or not (args.folder or args.coco or args.voc):
        return args.model, None  # Darknet (detection only) or a usage error the detection path reports
    # cheap dataset checks before the model loads
    if args.folder:
        from ..eval.classify import load_image_folder

        load_image_folder(args.folder)
    else:
        from ..eval.data import load_dataset

        load_dataset(coco=args.coco, voc=args.voc, ann=args.ann, year=args.year, split=args.split)
    from ..loading import load_model

    model = load_model(args.model, names=args.names)
    from ..families import task_of

    task = task_of(model)
    if task == "segment":
        if args.coco is None or args.voc is not None or args.folder:
            raise UsageError("a YOLOv5 segmentation model is verified on COCO: give --coco DIR (and --ann)")
        from ..eval.segm import verify_segmentation

        return model, verify_segmentation(model, args.coco, args.ann, imgsz=args.imgsz or 640, batch=args.batch,
                                          conf=args.conf, iou=args.iou, max_det=args.max_det,
                                          class_map=args.class_map, progress=progress)
    if task == "classify":
        if not args.folder or args.coco or args.voc:
            raise UsageError("a YOLOv5 classification model is verified on an ImageFolder tree: give --folder DIR")
        from ..eval.classify import verify_classifier

        cmap = _class_map(args.class_map)
        if cmap:
            idx = {n: i for i, n in enumerate(model.names)}
            cmap = {str(k): (v if isinstance(v, int) else idx.get(str(v), -1)) for k, v in cmap.items()}
            bad = [k for k, v in cmap.items() if not 0 <= v < len(model.names)]
            if bad:
                raise UsageError(f"--class-map {args.class_map}: folder {bad[0]!r} maps to no model class")
        res = verify_classifier(model, args.folder, class_map=cmap, batch=args.batch)
        res.pop("predictions", None)
        return model, res
    if args.folder:
        raise UsageError(f"--folder is for classification models; MODEL is a {task}ion model")
    return model, None


def report_task(res: dict, args) -> int:
    """Print a segmentation / classification score (metrics line, per-class table) and write ``--json``."""
    import sys

    from ..eval.shard import write_json

    if not getattr(args, "quiet", False):
        print("  ".join(f"{k} {v:.4f}" for k, v in res["metrics"].items()))
        rows = res.get("per_class") or []
        if rows:
            keys = [k for k in rows[0] if k not in ("class", "category_id")]
            print(f"{'class':<16}" + "".join(f"{k:>10}" for k in keys))
            for r in rows:
                print(f"{r['class'][:16]:<16}" + "".join(
                    f"{'-':>10}" if r.get(k) is None else f"{r[k]:>10.4f}" for k in keys))
    if args.json:
        write_json(res, args.json)
    if getattr(args, "expect", None):
        print(f"zooport: --expect checks detection metrics; {args.expect!r} not checked for this model",
              file=sys.stderr)
    return 0
