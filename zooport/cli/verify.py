"""``zooport verify``: measure a model's mAP on COCO or Pascal VOC with the official protocols.

Exit status: 0 success; 2 bad input (any ZooportError); 1 when ``--expect``
is given and a metric falls outside the tolerance of the zoo manifest's value.
"""
from __future__ import annotations

import sys

EPILOG = """examples:
  zooport verify yolov5n.pt --coco coco/val2017 --json yolov5n_coco.json
  zooport verify yolov3-tiny.cfg yolov3-tiny.weights --coco coco/val2017 --backend torch --device cuda
  zooport verify yolov5n.pt --voc VOCdevkit --year 2007 --split test --class-map coco-voc
  zooport verify yolov5n.pt --coco coco/val2017 --shard 0/4 --json part0.json   (one per shard)
  zooport verify --merge part0.json part1.json part2.json part3.json --json final.json
  torchrun --nproc_per_node 2 -m zooport verify yolov5n.pt --coco coco/val2017   (rank 0 scores)
  zooport verify yolov5n.pt --coco coco/val2017 --quiet   (the metrics line only)

exit status: 0 ok, 2 bad input, 1 a --expect check failed."""


def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "verify", help="score a model on COCO or VOC (pycocotools / VOC protocol)",
        description="Run MODEL over a COCO or Pascal VOC dataset and score it the way the reference "
        "implementations do. MODEL is 'CFG WEIGHTS', a checkpoint or a zoo name.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="*", metavar="MODEL", help="CFG WEIGHTS | checkpoint | zoo name (CFG alone needs --random-weights)")
    p.add_argument("--names", metavar="FILE", help="class names file for a Darknet MODEL (e.g. coco.names)")
    d = p.add_argument_group("dataset")
    d.add_argument("--coco", metavar="DIR", help="COCO image folder (e.g. val2017/, with "
                   "../annotations/instances_val2017.json) or the dataset root")
    d.add_argument("--ann", metavar="FILE", help="COCO annotation JSON (default: found beside --coco)")
    d.add_argument("--voc", metavar="DIR", help="VOCdevkit folder (or VOC<year>/ itself)")
    d.add_argument("--year", default="2007", help="VOC year (default 2007)")
    d.add_argument("--split", default="test", help="VOC split in ImageSets/Main (default test)")
    d.add_argument("--class-map", metavar="NAME|YAML", help="map model classes to dataset classes: "
                   "'coco-voc' (built in) or a YAML file 'model name: dataset name'; unmapped are dropped")
    d.add_argument("--folder", metavar="DIR", help="ImageFolder tree (DIR/CLASS/IMAGE) for a classification "
                   "MODEL: top-1 / top-5 (folder names = model class names, or --class-map)")
    d.add_argument("--skip-bad", action="store_true", help="skip (and report) corrupt images instead of failing")
    r = p.add_argument_group("pipeline (defaults from the model's metadata)")
    r.add_argument("--imgsz", type=int, help="input size (letterbox: long side; resize: square net size)")
    r.add_argument("--batch", type=int, default=16, help="batch size (default 16; shapes rectangular batches)")
    r.add_argument("--workers", type=int, default=2, help="image loading threads (default 2)")
    r.add_argument("--conf", type=float, help="score threshold (default: YOLOv5 0.001, Ultralytics 0.001, "
                   "Darknet 0.001, MMDetection its test_cfg score_thr)")
    r.add_argument("--iou", type=float, help="NMS IoU threshold (default: YOLOv5 0.65, Ultralytics YOLOv8/11 0.7, "
                   "Darknet 0.6, MMDetection its test_cfg)")
    r.add_argument("--max-det", type=int, help="max detections per image (default: YOLOv5 300, Darknet none, "
                   "MMDetection its test_cfg max_per_img)")
    r.add_argument("--preprocess", choices=["letterbox", "resize", "mmdet"],
                   help="letterbox (YOLOv5), resize (Darknet) or mmdet (MMDetection's pipeline; default for "
                   "MMDetection models)")
    r.add_argument("--postprocess", choices=["yolov5", "darknet", "mmdet"], help="post-processing flavour "
                   "(default by family: Darknet detector valid, MMDetection test_cfg, else YOLOv5 val.py)")
    r.add_argument("--decoder", choices=["auto", "opencv", "stb"], default="auto",
                   help="JPEG decoding: stb (bit for bit as Darknet's stb_image, whose pixels Darknet's own mAP "
                   "comes from), opencv, or auto (default: stb with Darknet post-processing, else opencv)")
    r.add_argument("--backend", choices=["auto", "torch", "onnxruntime"], default="auto",
                   help="inference backend (default auto: onnxruntime when installed and the model exports "
                   "to it on the CPU, else torch)")
    r.add_argument("--device", metavar="DEV", help="torch device, e.g. cpu, cuda, cuda:1 (default: the CPU; "
                   "the model is copied there)")
    from .model_args import add_random_weights

    add_random_weights(p)
    o = p.add_argument_group("output")
    o.add_argument("--json", metavar="OUT", help="write the result (or the shard partial) as JSON, atomically")
    o.add_argument("--expect", metavar="NAME", help="compare with the zoo manifest's metric for model NAME")
    o.add_argument("--expect-dataset", metavar="KEY", help="manifest metrics key to compare with (default: "
                   "from the dataset folder name, e.g. coco-tiny, coco-tiny-voc, coco-val2017)")
    o.add_argument("--tolerance", type=float, default=0.005, help="allowed |ours - manifest| (default 0.005)")
    o.add_argument("--shard", metavar="I/N", help="run only shard I of N and write a partial (needs --json)")
    o.add_argument("--merge", nargs="+", metavar="FILE", help="combine shard partials into one score")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument("--quiet", action="store_true", help="print only the metrics line (no table, "
                   "no speed line, no progress bar)")
    p.set_defaults(func=_run)


def _print_table(res, quiet: bool = False) -> None:
    """The metrics line; unless ``quiet``, a ``yolo val``-style table (Class, Images, Instances, P, R,
    the AP columns; an "all" row first) and the speed line."""
    m = res.metrics
    print("  ".join(f"{k} {v:.4f}" for k, v in m.items()))
    rows = res.per_class or []
    if quiet or not rows:
        return
    aps = [k for k in rows[0] if k not in ("class", "category_id", "npos", "ndet", "P", "R", "instances", "images")]
    print(f"{'Class':<16}{'Images':>8}{'Instances':>11}{'P':>9}{'R':>9}" + "".join(f"{k:>10}" for k in aps))
    total = sum(r.get("instances", 0) for r in rows)
    mean_ap = {"AP": m.get("AP"), "AP50": m.get("AP50"), "AP_voc07": m.get("mAP_voc07"), "AP_voc10": m.get("mAP_voc10")}
    print(f"{'all':<16}{res.images:>8}{total:>11}{m.get('P', 0):>9.3f}{m.get('R', 0):>9.3f}" + "".join(
        f"{'-':>10}" if mean_ap.get(k) is None else f"{mean_ap[k]:>10.4f}" for k in aps))
    for r in rows:
        if not r.get("instances"):
            continue  # as yolo val: only classes present in the dataset
        print(f"{r['class'][:16]:<16}{r['images']:>8}{r['instances']:>11}{r['P']:>9.3f}{r['R']:>9.3f}" + "".join(
            f"{'-':>10}" if r[k] is None else f"{r[k]:>10.4f}" for k in aps))
    sp = res.speed or {}
    if sp:
        print(f"Speed: {sp.get('preprocess', 0):.1f}ms preprocess, {sp.get('inference', 0):.1f}ms inference, "
              f"{sp.get('nms', 0):.1f}ms NMS per image ({res.settings.get('backend')}, "
              f"batch {res.settings.get('batch')})")


def expect_dataset_key(res: dict, metrics: dict, override: str | None = None) -> str | None:
    """Which ``metrics`` key of a manifest entry this run measured.

    ``override`` wins; otherwise the dataset folder's name or one of its parents'
    (``coco-tiny``, ``coco-tiny-voc``), then ``coco-val2017`` for a COCO ``val2017``
    folder, then ``voc<year>``.
    """
    if override:
        return override if override in metrics else None
    from pathlib import Path

    ds = res["dataset"]
    root = Path(ds["root"]).resolve()
    cands = [root.name, root.parent.name, root.parent.parent.name]
    if ds["kind"] == "coco":
        cands.append(f"coco-{root.name}")
    else:
        cands.append(f"voc{ds.get('year')}")
    return next((c for c in cands if c in metrics), None)


def check_expect(res: dict, name: str, tol: float, dataset_key: str | None = None) -> list:
    """Compare ``res`` metrics with the zoo manifest entry's published ones; returns the failures."""
    from ..errors import ManifestError
    from ..zoo.api import get_entry

    metrics = dict(get_entry(name).metrics or {})
    key = expect_dataset_key(res, metrics, dataset_key)
    if key is None:
        raise ManifestError(f"zoo manifest entry '{name}' has no metrics for this dataset "
                            f"(it has: {', '.join(metrics) or 'none'}); use --expect-dataset KEY")
    fails, compared = [], 0
    for k, v in metrics[key].items():
        if k in res["metrics"] and isinstance(v, (int, float)):
            compared += 1
            if abs(res["metrics"][k] - float(v)) > tol:
                fails.append(f"{key} {k}: ours {res['metrics'][k]:.4f}, manifest {float(v):.4f} (tolerance {tol})")
    if not compared:
        raise ManifestError(f"zoo manifest entry '{name}', metrics '{key}': no metric in common with this run")
    return fails


def _run(args) -> int:
    from ..errors import UsageError
    from ._args import check_verify_args

    check_verify_args(args)  # every argument, before the dataset or the model is read
    from ..eval.shard import write_json
    from ..eval.verify import merge, verify

    import os

    progress = not (args.no_progress or args.quiet) and sys.stderr.isatty()
    res = None
    if args.merge:
        if args.model or args.shard:
            raise UsageError("--merge combines partial files: give no MODEL and no --shard")
        res = merge(args.merge, coco=args.coco, voc=args.voc, ann=args.ann, year=args.year, split=args.split)
    else:
        if not args.model:
            raise UsageError("MODEL is required (or --merge FILES)")
        from .verify_tasks import verify_task  # YOLOv5 segmentation / classification models

        model, res = verify_task(args, progress)
        if res is not None:  # a segmentation / classification score: a plain dict of its own
            from .verify_tasks import report_task

            return report_task(res, args)
    if res is None:
        if (args.coco is None) == (args.voc is None):
            raise UsageError("give exactly one of --coco DIR or --voc DIR")
        if args.shard and not args.json:
            raise UsageError("--shard writes a partial result: give --json OUT")
        if args.random_weights and isinstance(model, (list, tuple)):  # a cfg alone: loaded here, seeded
            from ..loading import load_model
            from .model_args import model_kwargs

            model = load_model(args.model, names=args.names, **model_kwargs(args))
        res = verify(model, coco=args.coco, voc=args.voc, ann=args.ann, year=args.year, split=args.split,
                     imgsz=args.imgsz, batch=args.batch, workers=args.workers, conf=args.conf, iou=args.iou,
                     max_det=args.max_det, preprocess=args.preprocess, postprocess=args.postprocess,
                     backend=args.backend, device=args.device, class_map=args.class_map, skip_bad=args.skip_bad,
                     shard=args.shard, progress=progress, names=args.names, decoder=args.decoder,
                     # under torchrun every rank runs its shard and rank 0 scores
                     distributed=not args.shard and int(os.environ.get("WORLD_SIZE", "1")) > 1)
    if res.partial is not None:
        if args.json:
            write_json(res, args.json)
            print(f"shard {res.partial['shard'][0]}/{res.partial['shard'][1]}: {res.images} images -> {args.json}")
        return 0
    if not res.scored:  # a non-zero torchrun rank: rank 0 prints the score
        return 0
    for s in res.skipped:
        print(f"skipped: {s['error']}", file=sys.stderr)
    _print_table(res, quiet=args.quiet)
    if args.json:
        write_json(res, args.json)
    if args.expect:
        fails = check_expect(res, args.expect, args.tolerance, args.expect_dataset)
        for f in fails:
            print(f"zooport: expect {args.expect}: {f}", file=sys.stderr)
        if fails:
            return 1
        if not args.quiet:
            print(f"expect {args.expect}: within {args.tolerance}")
    return 0


