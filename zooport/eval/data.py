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

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DatasetError


class BadImage(DatasetError):
    """An image file exists but cannot be decoded (corrupt or not an image)."""


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


DECODERS = ("auto", "opencv", "stb")


def read_image(path: Path, decoder: str = "opencv") -> np.ndarray:
    """Decode an image to BGR uint8 (H, W, 3).

    ``decoder``: ``opencv`` decodes like ``cv2.imread`` (libjpeg-turbo, EXIF orientation applied);
    ``stb`` decodes JPEG files as Darknet does (:mod:`zooport.jpeg`, equal bit for bit to stb_image,
    which differs from libjpeg by up to 3 levels on about 1 % of values and ignores EXIF orientation);
    other formats are lossless, so they go through OpenCV either way.
    """
    import cv2

    if not os.path.isfile(path):
        raise DatasetError(f"{path}: image file is missing")
    if decoder == "stb":
        from .. import jpeg

        if jpeg.is_jpeg(path):
            try:
                return np.ascontiguousarray(jpeg.read_jpeg(path)[..., ::-1])
            except jpeg.JpegCorrupt as e:
                raise BadImage(str(e)) from None
            except jpeg.JpegUnsupported as e:  # stb_image (so Darknet) refuses it too
                raise BadImage(f"{e}; Darknet's stb_image cannot read it either (decoder 'opencv' can)") from None
    elif decoder != "opencv":
        from ..errors import UsageError

        raise UsageError(f"image decoder must be 'opencv' or 'stb', got {decoder!r}")
    im = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if im is None or im.size == 0:
        raise BadImage(f"{path}: corrupt or unreadable image (could not decode)")
    return im


# ----------------------------------------------------------------------------- COCO


def _find_coco(coco_dir: Path, ann: Path | None) -> tuple[Path, Path]:
    """(image dir, annotation json) from the forms users give."""
    coco_dir = Path(coco_dir)
    if not coco_dir.is_dir():
        raise DatasetError(f"{coco_dir}: COCO image folder does not exist")
    if ann is not None:
        ann = Path(ann)
        if not ann.is_file():
            raise DatasetError(f"{ann}: COCO annotation file does not exist")
        return coco_dir, ann
    cand = coco_dir.parent / "annotations" / f"instances_{coco_dir.name}.json"
    if cand.is_file():
        return coco_dir, cand
    annd = coco_dir / "annotations"
    if annd.is_dir():  # dataset root: pick instances_<split>.json whose <split>/ exists
        for j in sorted(annd.glob("instances_*.json")):
            img_dir = coco_dir / j.stem[len("instances_"):]
            if img_dir.is_dir():
                return img_dir, j
    raise DatasetError(
        f"{coco_dir}: no COCO annotation file found (expected {cand}, or {annd}/instances_<split>.json "
        f"beside a <split>/ image folder); pass --ann FILE"
    )


def read_coco_json(ann_file) -> dict:
    """A COCO annotation file as a dict whose 'images', 'annotations', 'categories' are lists."""
    try:
        with open(ann_file, "rb") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{ann_file}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{ann_file}: expected a JSON object with 'images', 'annotations', 'categories'")
    for k in ("images", "annotations", "categories"):
        if not isinstance(data.get(k), list):
            raise DatasetError(f"{ann_file}: missing or invalid key '{k}' (expected a list)")
    return data


def load_coco(coco_dir, ann=None) -> Dataset:
    img_dir, ann_file = _find_coco(Path(coco_dir), Path(ann) if ann else None)
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


def _find_voc(voc_dir: Path, year: str) -> Path:
    voc_dir = Path(voc_dir)
    for cand in (voc_dir / f"VOC{year}", voc_dir / "VOCdevkit" / f"VOC{year}", voc_dir):
        if (cand / "Annotations").is_dir() or (cand / "ImageSets").is_dir():
            return cand
    raise DatasetError(f"{voc_dir}: not a VOC folder (expected VOC{year}/Annotations and VOC{year}/ImageSets/Main)")


def _text(node, tag, xml_path, required=True):
    el = node.find(tag)
    if el is None or el.text is None or not el.text.strip():
        if required:
            raise DatasetError(f"{xml_path}: missing <{tag}>")
        return None
    return el.text.strip()


def parse_voc_xml(xml_path: Path) -> tuple[int, int, list]:
    """One VOC annotation -> (width, height, objects); boxes stay 1-based inclusive as written."""
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise DatasetError(f"{xml_path}: malformed XML ({e})") from None
    size = root.find("size")
    if size is None:
        raise DatasetError(f"{xml_path}: no <size> element (expected <size><width>, <height>)")
    try:
        w, h = int(float(_text(size, "width", xml_path))), int(float(_text(size, "height", xml_path)))
    except ValueError:
        raise DatasetError(f"{xml_path}: <size> width/height are not numbers") from None
    if w <= 0 or h <= 0:
        raise DatasetError(f"{xml_path}: <size> {w}x{h} is not a valid image size")
    objs = []
    for k, obj in enumerate(root.findall("object")):
        name = _text(obj, "name", xml_path)
        diff = _text(obj, "difficult", xml_path, required=False)
        bb = obj.find("bndbox")
        if bb is None:
            raise DatasetError(f"{xml_path}: object {k} ('{name}') has no <bndbox>")
        try:
            box = [float(_text(bb, t, xml_path)) for t in ("xmin", "ymin", "xmax", "ymax")]
        except ValueError:
            raise DatasetError(f"{xml_path}: object {k} ('{name}') has a non-numeric <bndbox>") from None
        objs.append({"name": name, "bbox": box, "difficult": bool(int(float(diff))) if diff else False})
    return w, h, objs


def load_voc(voc_dir, year: str = "2007", split: str = "test") -> Dataset:
    root = _find_voc(Path(voc_dir), str(year))
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
