"""Dataset files on disk, read once for every tool: images, COCO annotation JSON, Pascal VOC XML.

``zooport.datasets`` (convert, browse, stats) and ``zooport.eval`` (verify) both read through these,
so a file has one set of rules and one error per problem (a :class:`~zooport.errors.DatasetError`
naming the file and what was expected). :func:`read_image` decodes as OpenCV does or, for Darknet's
pipeline, bit for bit as stb_image does (:mod:`zooport.jpeg`).
"""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ..errors import DatasetError


class BadImage(DatasetError):
    """An image file exists but cannot be decoded (corrupt or not an image)."""


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


def find_coco(coco_dir: Path, ann: Path | None) -> tuple[Path, Path]:
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


def find_voc(voc_dir: Path, year: str) -> Path:
    voc_dir = Path(voc_dir)
    for cand in (voc_dir / f"VOC{year}", voc_dir / "VOCdevkit" / f"VOC{year}", voc_dir):
        if (cand / "Annotations").is_dir() or (cand / "ImageSets").is_dir():
            return cand
    raise DatasetError(f"{voc_dir}: not a VOC folder (expected VOC{year}/Annotations and VOC{year}/ImageSets/Main)")


def voc_text(node, tag, xml_path, required=True):
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
        w, h = int(float(voc_text(size, "width", xml_path))), int(float(voc_text(size, "height", xml_path)))
    except ValueError:
        raise DatasetError(f"{xml_path}: <size> width/height are not numbers") from None
    if w <= 0 or h <= 0:
        raise DatasetError(f"{xml_path}: <size> {w}x{h} is not a valid image size")
    objs = []
    for k, obj in enumerate(root.findall("object")):
        name = voc_text(obj, "name", xml_path)
        diff = voc_text(obj, "difficult", xml_path, required=False)
        bb = obj.find("bndbox")
        if bb is None:
            raise DatasetError(f"{xml_path}: object {k} ('{name}') has no <bndbox>")
        try:
            box = [float(voc_text(bb, t, xml_path)) for t in ("xmin", "ymin", "xmax", "ymax")]
        except ValueError:
            raise DatasetError(f"{xml_path}: object {k} ('{name}') has a non-numeric <bndbox>") from None
        objs.append({"name": name, "bbox": box, "difficult": bool(int(float(diff))) if diff else False})
    return w, h, objs
