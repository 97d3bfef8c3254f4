"""``zooport dataset convert|browse|stats``: convert between COCO, VOC and YOLO; look at a dataset."""
from __future__ import annotations

import sys

EPILOG = """examples:
  zooport dataset convert voc2coco VOCdevkit/ coco_out/ --split test     (-> coco_out/annotations/instances_test.json)
  zooport verify yolov5n.pt --coco coco_out/test --class-map coco-voc
  zooport dataset convert coco2voc coco/val2017 voc_out/ --images copy
  zooport dataset convert yolo2coco yolo_ds/ coco_out/ --names classes.txt
  zooport dataset convert coco2yolo coco/annotations/instances_val2017.json yolo_out/ --images none
  zooport dataset browse --coco coco/val2017 -o browse/ --ids 139 285
  zooport dataset stats --voc VOCdevkit -o stats/"""


def _dataset_args(p, ids=False) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--coco", metavar="DIR", help="COCO image folder (annotations found beside it) or root")
    g.add_argument("--voc", metavar="DIR", help="VOCdevkit folder (or VOC<year>/ itself)")
    p.add_argument("--ann", metavar="FILE", help="COCO annotation JSON (default: found beside --coco)")
    p.add_argument("--year", default="2007", help="VOC year (default 2007)")
    p.add_argument("--split", help="VOC split in ImageSets/Main (default: every annotation)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    if ids:
        p.add_argument("--ids", nargs="+", metavar="ID", help="only these image ids (COCO id or VOC name)")
        p.add_argument("--limit", type=int, metavar="N", help="at most N images (default all)")


def register(sub) -> None:
    import argparse

    p = sub.add_parser("dataset", help="convert COCO/VOC/YOLO datasets, draw and count their boxes",
                       description="Dataset tools: format conversion, a ground-truth browser, statistics.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="dataset_cmd", metavar="TOOL")
    s.required = True
    c = s.add_parser("convert", help="voc2coco, coco2voc, yolo2coco, coco2yolo",
                     description="Convert a dataset. VOC boxes are 1-based inclusive (xmin = round(x) + 1, "
                     "xmax = round(x + w)); difficult <-> iscrowd; category ids and names kept (VOC: classes.txt).",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("kind", choices=["voc2coco", "coco2voc", "yolo2coco", "coco2yolo"])
    c.add_argument("src", metavar="SRC", help="source: VOC folder, COCO image folder/root/.json, YOLO folder")
    c.add_argument("dst", metavar="DST", help="output folder (voc2coco/yolo2coco: or a .json file)")
    c.add_argument("--images", choices=["link", "copy", "none"], default="link",
                   help="symlink (default), copy or leave out the image files")
    c.add_argument("--year", default="2007", help="VOC year to read/write (default 2007)")
    c.add_argument("--split", help="VOC split to read (default: every annotation) and the split name written")
    c.add_argument("--names", metavar="FILE", help="yolo2coco: class names, one per line (default SRC/names.txt)")
    c.add_argument("--ann", metavar="FILE", help="coco2*: the COCO json when SRC is the image folder")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=_convert)
    b = s.add_parser("browse", help="draw the ground-truth boxes on the images",
                     description="Draw every ground-truth box (class colours as zooport predict, crowd/difficult "
                     "dashed-grey) on the images and write them to DIR.")
    _dataset_args(b, ids=True)
    b.set_defaults(func=_browse)
    t = s.add_parser("stats", help="images, instances per class, box size/shape histograms (JSON + PNG)",
                     description="Dataset statistics written as DIR/stats.json and PNG plots (matplotlib).")
    _dataset_args(t)
    t.set_defaults(func=_stats)


def _progress(args) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def _convert(args) -> int:
    from ..datasets.convert import convert

    r = convert(args.kind, args.src, args.dst, images=args.images, year=args.year, split=args.split,
                names=args.names, ann=args.ann, progress=_progress(args))
    print(f"{args.kind}: {r['images']} images, {r['annotations']} boxes, {r['categories']} classes -> {r['output']}")
    return 0


def _load(args):
    from ..datasets.load import load_any

    return load_any(coco=args.coco, voc=args.voc, ann=args.ann, year=args.year, split=args.split)


def _browse(args) -> int:
    from ..datasets.browse import browse

    r = browse(_load(args), args.output, ids=args.ids, limit=args.limit, progress=_progress(args))
    for bad in r["failed"]:
        print(f"zooport: skipped {bad['path']}: {bad['error']}", file=sys.stderr)
    print(f"{r['written']} images with {r['boxes']} boxes -> {args.output}")
    return 1 if r["failed"] else 0


def _stats(args) -> int:
    from ..datasets.stats import dataset_stats, write_stats

    st = dataset_stats(_load(args), progress=_progress(args))
    files = write_stats(st, args.output)
    print(f"{st['images']} images, {st['instances']} instances, {len(st['per_class'])} classes -> "
          + ", ".join(str(f) for f in files))
    return 0
