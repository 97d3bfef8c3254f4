"""``zooport verify``: measure a model's mAP on COCO or Pascal VOC with the official protocols.

Exit status: 0 success; 2 bad input (any ZooportError); 1 when ``--expect``
is given and a metric falls outside the tolerance of the zoo manifest's value.
"""
from __future__ import annotations

import sys

EPILOG = """examples:
  zooport verify yolov5n.pt --coco coco/val2017 --json yolov5n_coco.json
  zooport verify yolov3-tiny.cfg yolov3-tiny.weights --coco coco/val2017 --backend onnxruntime
  zooport verify yolov5n.pt --voc VOCdevkit --year 2007 --split test --class-map coco-voc
  zooport verify yolov5n.pt --coco coco/val2017 --shard 0/4 --json part0.json   (one per shard)
  zooport verify --merge part0.json part1.json part2.json part3.json --json final.json
  torchrun --nproc_per_node 2 -m zooport verify yolov5n.pt --coco coco/val2017   (rank 0 scores)

exit status: 0 ok, 2 bad input, 1 a --expect check failed."""


def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "verify", help="score a model on COCO or VOC (pycocotools / VOC protocol)",
        description="Run MODEL over a COCO or Pascal VOC dataset and score it the way the reference "
        "implementations do. MODEL is 'CFG WEIGHTS', a checkpoint or a zoo name.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="*", metavar="MODEL", help="CFG [WEIGHTS] | checkpoint | zoo name")
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
    d.add_argument("--skip-bad", action="store_true", help="skip (and report) corrupt images instead of failing")
    r = p.add_argument_group("pipeline (defaults from the model's metadata)")
    r.add_argument("--imgsz", type=int, help="input size (letterbox: long side; resize: square net size)")
    r.add_argument("--batch", type=int, default=16, help="batch size (default 16; shapes rectangular batches)")
    r.add_argument("--workers", type=int, default=2, help="image loading threads (default 2)")
    r.add_argument("--conf", type=float, help="score threshold (default 0.001 YOLOv5 NMS, 0.005 Darknet)")
    r.add_argument("--iou", type=float, help="NMS IoU threshold (default 0.65 YOLOv5 NMS, 0.45 Darknet)")
    r.add_argument("--max-det", type=int, default=300, help="max detections per image, YOLOv5 NMS (300)")
    r.add_argument("--preprocess", choices=["letterbox", "resize", "mmdet"],
                   help="letterbox (YOLOv5), resize (Darknet) or mmdet (MMDetection pipeline + test_cfg)")
    r.add_argument("--postprocess", choices=["yolov5", "darknet"], help="NMS flavour (default by family)")
    r.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch", help="inference backend")
    o = p.add_argument_group("output")
    o.add_argument("--json", metavar="OUT", help="write the result (or the shard partial) as JSON, atomically")
    o.add_argument("--expect", metavar="NAME", help="compare with the zoo manifest's metric for model NAME")
    o.add_argument("--expect-dataset", metavar="KEY", help="manifest metrics key to compare with (default: "
                   "from the dataset folder name, e.g. coco-tiny, coco-tiny-voc, coco-val2017)")
    o.add_argument("--tolerance", type=float, default=0.005, help="allowed |ours - manifest| (default 0.005)")
    o.add_argument("--shard", metavar="I/N", help="run only shard I of N and write a partial (needs --json)")
    o.add_argument("--merge", nargs="+", metavar="FILE", help="combine shard partials into one score")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _print_table(res: dict) -> None:
    m = res["metrics"]
    print("  ".join(f"{k} {v:.4f}" for k, v in m.items()))
    rows = res.get("per_class") or []
    if rows:
        keys = [k for k in rows[0] if k not in ("class", "category_id", "npos", "ndet")]
        print(f"{'class':<16}" + "".join(f"{k:>10}" for k in keys))
        for r in rows:
            print(f"{r['class'][:16]:<16}" + "".join(
                f"{'-':>10}" if r[k] is None else f"{r[k]:>10.4f}" for k in keys))


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
    from ..eval.shard import write_json
    from ..eval.verify import merge, verify

    progress = not args.no_progress and sys.stderr.isatty()
    if args.merge:
        if args.model or args.shard:
            raise UsageError("--merge combines partial files: give no MODEL and no --shard")
        res = merge(args.merge, coco=args.coco, voc=args.voc, ann=args.ann, year=args.year, split=args.split)
    else:
        if not args.model:
            raise UsageError("MODEL is required (or --merge FILES)")
        if (args.coco is None) == (args.voc is None):
            raise UsageError("give exactly one of --coco DIR or --voc DIR")
        if args.shard and not args.json:
            raise UsageError("--shard writes a partial result: give --json OUT")
        res = verify(args.model, coco=args.coco, voc=args.voc, ann=args.ann, year=args.year, split=args.split,
                     imgsz=args.imgsz, batch=args.batch, workers=args.workers, conf=args.conf, iou=args.iou,
                     max_det=args.max_det, preprocess=args.preprocess, postprocess=args.postprocess,
                     backend=args.backend, class_map=args.class_map, skip_bad=args.skip_bad,
                     shard=args.shard, progress=progress, names=args.names)
    if res.get("partial"):
        if "shard" in res and args.json:
            write_json(res, args.json)
            print(f"shard {res['shard'][0]}/{res['shard'][1]}: {len(res['images'])} images -> {args.json}")
        return 0
    for s in res.get("skipped", []):
        print(f"skipped: {s['error']}", file=sys.stderr)
    _print_table(res)
    if args.json:
        write_json(res, args.json)
    if args.expect:
        fails = check_expect(res, args.expect, args.tolerance, args.expect_dataset)
        for f in fails:
            print(f"zooport: expect {args.expect}: {f}", file=sys.stderr)
        if fails:
            return 1
        print(f"expect {args.expect}: within {args.tolerance}")
    return 0


