"""The dataset options the ``analyze`` verbs share (``--coco`` | ``--voc``, ``--year``, ``--split``)."""
from __future__ import annotations


def add_dataset_args(p) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--coco", metavar="DIR|JSON", help="COCO image folder (annotations beside it) or the json")
    g.add_argument("--voc", metavar="DIR", help="VOCdevkit folder (or VOC<year>/ itself)")
    p.add_argument("--year", default="2007", help="VOC year (default 2007)")
    p.add_argument("--split", default=None, help="VOC split (default: every annotation)")


def load_dataset_dict(args):
    """The dataset the options name, as a COCO-style dict."""
    from ..datasets.load import load_any

    return load_any(coco=args.coco, voc=args.voc, year=args.year, split=args.split)
