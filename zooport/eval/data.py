"""COCO and Pascal VOC dataset readers.

Both produce a :class:`Dataset`: an ordered list of :class:`ImageRecord`
(key, path, original width/height) plus the ground truth in the form the
scorer needs. Problems a user can cause raise :class:`~zooport.errors.DatasetError`
naming the file and what was expected: missing annotation file, an image listed
but absent, an XML without ``<size>``, an empty split, malformed JSON/XML.
Corrupt image files are only found when decoding (:func:`read_image` raises
:class:`BadImage`, a DatasetError); the verifier reports them and stops unless
``skip_bad`` is set.

COCO layout: ``--coco DIR`` where DIR is the image folder (``val2017/``) with
``annotations/instances_val2017.json`` beside it, or the dataset root holding
``annotations/instances_*.json`` and the matching image folder; ``ann=`` names
the JSON explicitly. VOC layout: ``DIR/VOC<year>/`` or ``DIR`` itself holding
``Annotations/*.xml``, ``ImageSets/Main/<split>.txt`` and ``JPEGImages/``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# the file readers are the datasets package's (one set of rules); re-exported for the verifier's callers
from ..datasets.files import (DECODERS, BadImage, find_coco, find_voc, parse_voc_xml,  # noqa: F401
                              read_coco_json, read_image)
from ..errors import DatasetError


def skip_or_raise(rec, err: Exception, skip_bad: bool, skipped: list) -> None:
    """A bad image: re-raised, or (``skip_bad``) recorded in ``skipped`` as {image, path, error}."""
    if not skip_bad:
        raise err
    skipped.append({"image": rec.key, "path": str(rec.path), "error": str(err)})


@dataclass
class ImageRecord:
    key: object  # COCO: int image id; VOC: str image id
    path: Path
    width: int
    height: int


@dataclass
class Dataset:
    kind: str  # "coco" | "voc"
    root: Path
    images: list
    names: list  # dataset class names (COCO: category names; VOC: classes seen in the split, sorted)
    ann_file: Path | None = None  # COCO
    cat_ids: list = field(default_factory=list)  # COCO: category id parallel to names
    objects: dict = field(default_factory=dict)  # VOC: key -> list of {name, bbox(1-based incl), difficult}
    year: str | None = None
    split: str | None = None

    def describe(self) -> dict:
        """Absolute paths, so a partial can be merged from any working directory."""
        d = {"kind": self.kind, "root": str(Path(self.root).resolve()), "images": len(self.images)}
        if self.kind == "coco":
            d["ann"] = str(Path(self.ann_file).resolve())
        else:
            d.update(year=self.year, split=self.split)
        return d


# ----------------------------------------------------------------------------- COCO


def load_coco(coco_dir, ann=None) -> Dataset:
    img_dir, ann_file = find_coco(Path(coco_dir), Path(ann) if ann else None)
    data = read_coco_json(ann_file)
    if not data["images"]:
        raise DatasetError(f"{ann_file}: 'images' is empty: nothing to evaluate")
    cats = sorted(data["categories"], key=lambda c: c.get("id", 0))
    try:
        names = [str(c["name"]) for c in cats]
        cat_ids = [int(c["id"]) for c in cats]
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{ann_file}: every category needs 'id' and 'name'") from None
    images = []
    for i, im in enumerate(data["images"]):
        try:
            rec = ImageRecord(int(im["id"]), img_dir / str(im["file_name"]), int(im["width"]), int(im["height"]))
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{ann_file}: images[{i}] needs 'id', 'file_name', 'width', 'height'") from None
        if not rec.path.is_file():
            raise DatasetError(f"{ann_file}: image {rec.key} is listed as '{im['file_name']}' but {rec.path} is missing")
        images.append(rec)
    images.sort(key=lambda r: r.path.name)  # YOLOv5 sorts its file list
    return Dataset("coco", img_dir, images, names, ann_file=ann_file, cat_ids=cat_ids)


# ----------------------------------------------------------------------------- VOC


def load_voc(voc_dir, year: str = "2007", split: str = "test") -> Dataset:
    root = find_voc(Path(voc_dir), str(year))
    split_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not split_file.is_file():
        raise DatasetError(f"{split_file}: split file does not exist (expected ImageSets/Main/{split}.txt)")
    ids = []
    for line in split_file.read_text().splitlines():
        t = line.strip().split()
        if t:
            ids.append(t[0])
    if not ids:
        raise DatasetError(f"{split_file}: split '{split}' lists no images")
    images, objects, names = [], {}, set()
    for i in ids:
        xml = root / "Annotations" / f"{i}.xml"
        if not xml.is_file():
            raise DatasetError(f"{split_file}: image '{i}' is listed but its annotation {xml} is missing")
        w, h, objs = parse_voc_xml(xml)
        jpg = root / "JPEGImages" / f"{i}.jpg"
        if not jpg.is_file():
            alt = [p for p in (root / "JPEGImages").glob(f"{i}.*")] if (root / "JPEGImages").is_dir() else []
            if not alt:
                raise DatasetError(f"{split_file}: image '{i}' is listed but {jpg} is missing")
            jpg = sorted(alt)[0]
        images.append(ImageRecord(i, jpg, w, h))
        objects[i] = objs
        names.update(o["name"] for o in objs)
    return Dataset("voc", root, images, sorted(names), objects=objects, year=str(year), split=split)


def load_dataset(coco=None, voc=None, ann=None, year="2007", split="test") -> Dataset:
    from ..errors import UsageError

    if (coco is None) == (voc is None):
        raise UsageError("give exactly one dataset: coco=DIR or voc=DIR")
    if coco is not None:
        return load_coco(coco, ann)
    return load_voc(voc, year, split)
