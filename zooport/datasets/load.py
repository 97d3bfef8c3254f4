"""One reader for the dataset tools: ``--coco DIR|JSON`` or ``--voc DIR`` -> the COCO dict of :mod:`.formats`."""
from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from . import formats as F


def load_any(coco=None, voc=None, ann=None, year: str = "2007", split: str | None = None) -> dict:
    """COCO: an image folder (annotations found beside it, as ``zooport verify`` finds them), a dataset root,
    or the json itself (``ann`` names it explicitly); VOC: the VOCdevkit or VOC<year> folder (``split``:
    that ImageSets list, None: every annotation)."""
    if (coco is None) == (voc is None):
        raise UsageError("give exactly one of --coco or --voc")
    if coco is not None:
        p = Path(coco)
        if ann is not None:
            return F.read_coco(ann, p)
        if p.suffix.lower() == ".json":
            return F.read_coco(p)
        from .files import find_coco

        img_dir, ann_file = find_coco(p, None)
        return F.read_coco(ann_file, img_dir)
    return F.read_voc(voc, year, split)
