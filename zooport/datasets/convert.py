"""``zooport dataset convert voc2coco|coco2voc|yolo2coco|coco2yolo SRC DST``.

Layouts written (every file atomically):

* COCO: ``DST/annotations/instances_<split>.json`` and the images in ``DST/<split>/``, so
  ``zooport verify --coco DST/<split>`` reads it as is; a ``DST`` ending in ``.json`` writes only that file.
* VOC: ``DST/VOC<year>/Annotations/<stem>.xml``, ``ImageSets/Main/<split>.txt``, ``JPEGImages/`` and
  ``classes.txt`` (``id name``: the COCO category ids, restored by a later voc2coco).
* YOLO: ``DST/images/``, ``DST/labels/<stem>.txt``, ``DST/names.txt`` (class index = category order by id).

Images are symlinked (default), copied, or left out (``images="none"``). Box conventions: see
:mod:`zooport.datasets.formats`.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .._io import atomic_path, atomic_write
from ..errors import DatasetError, UsageError
from . import formats as F

KINDS = ("voc2coco", "coco2voc", "yolo2coco", "coco2yolo")
IMAGE_MODES = ("link", "copy", "none")


def _place_images(coco: dict, folder: Path, mode: str, progress=False) -> None:
    from tqdm import tqdm

    if mode == "none":
        return
    folder.mkdir(parents=True, exist_ok=True)
    for im in tqdm(coco["images"], desc="images", unit="img", disable=not progress, leave=False):
        src, dst = Path(im["_path"]), folder / im["file_name"]
        if not src.is_file():
            raise DatasetError(f"{src}: image file of '{im['file_name']}' (id {im['id']}) is missing")
        if dst.resolve() == src.resolve():
            continue
        if mode == "copy":
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
        else:
            tmp = dst.with_name(f".{dst.name}.link")
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(src.resolve(), tmp)
            os.replace(tmp, dst)  # a link appears whole or not at all


def _write_coco(coco: dict, dst: Path, split: str, images: str, progress: bool) -> Path:
    import json

    if dst.suffix.lower() == ".json":
        ann, img_dir, images = dst, None, "none"
    else:
        ann, img_dir = dst / "annotations" / f"instances_{split}.json", dst / split
    ann.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(ann, "w") as f:
        json.dump(F.coco_json(coco), f)
    if img_dir is not None:
        _place_images(coco, img_dir, images, progress)
    return ann


def _by_image(coco: dict) -> dict:
    per = {im["id"]: [] for im in coco["images"]}
    for a in coco["annotations"]:
        per[a["image_id"]].append(a)
    return per


def _write_voc(coco: dict, dst: Path, year: str, split: str, images: str, progress: bool) -> Path:
    root = dst / f"VOC{year}"
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    stems = {}
    for im in coco["images"]:
        stem = Path(im["file_name"]).stem
        if stem in stems:
            raise DatasetError(f"images {stems[stem]} and {im['id']}: both are named '{stem}' (VOC ids must be unique)")
        stems[stem] = im["id"]
    per = _by_image(coco)
    for im in coco["images"]:
        objs = [(names[a["category_id"]], F.voc_box(a["bbox"]), a.get("iscrowd", 0)) for a in per[im["id"]]]
        with atomic_write(root / "Annotations" / f"{Path(im['file_name']).stem}.xml", "w") as f:
            f.write(F.voc_xml(im, objs, f"VOC{year}"))
    with atomic_write(root / "ImageSets" / "Main" / f"{split}.txt", "w") as f:
        f.write("".join(f"{s}\n" for s in stems))
    with atomic_write(root / "classes.txt", "w") as f:
        f.write("".join(f"{c['id']} {c['name']}\n" for c in sorted(coco["categories"], key=lambda c: c["id"])))
    _place_images(coco, root / "JPEGImages", images, progress)
    return root


def _write_yolo(coco: dict, dst: Path, images: str, progress: bool) -> Path:
    cats = sorted(coco["categories"], key=lambda c: c["id"])
    index = {c["id"]: k for k, c in enumerate(cats)}
    (dst / "labels").mkdir(parents=True, exist_ok=True)
    per = _by_image(coco)
    for im in coco["images"]:
        with atomic_write(dst / "labels" / f"{Path(im['file_name']).stem}.txt", "w") as f:
            f.write(F.yolo_lines(im, per[im["id"]], index))
    with atomic_write(dst / "names.txt", "w") as f:
        f.write("".join(f"{c['name']}\n" for c in cats))
    _place_images(coco, dst / "images", images, progress)
    return dst


def _coco_source(src: Path, ann) -> tuple[Path, Path | None]:
    if ann is not None:
        return Path(ann), src
    if src.suffix.lower() == ".json":
        return src, None
    from .files import find_coco

    img_dir, ann_file = find_coco(src, None)
    return ann_file, img_dir


def _yolo_names(src: Path, names) -> list:
    from ..parsers.names import read_names

    f = Path(names) if names else src / "names.txt"
    if not f.is_file():
        raise DatasetError(f"{f}: class names file not found (pass --names FILE, one name per line)")
    return read_names(f)


def convert(kind: str, src, dst, *, images: str = "link", year: str = "2007", split: str | None = None,
            names=None, ann=None, progress: bool = False) -> dict:
    """Convert a dataset (see module doc). Returns ``{"output": path, "images": n, "annotations": n,
    "categories": n}``. ``split``: VOC split to read / name of the split written (default: VOC source:
    every annotation, written as ``test``; others ``val``)."""
    if kind not in KINDS:
        raise UsageError(f"conversion must be one of {', '.join(KINDS)}, got {kind!r}")
    if images not in IMAGE_MODES:
        raise UsageError(f"images must be one of {', '.join(IMAGE_MODES)}, got {images!r}")
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise DatasetError(f"{src}: source dataset does not exist")
    if dst.exists() and not dst.is_dir():
        raise UsageError(f"{dst}: exists and is not a folder")
    if kind == "voc2coco":
        coco = F.read_voc(src, year, split)
    elif kind == "yolo2coco":
        coco = F.read_yolo(src, _yolo_names(src, names))
    else:
        coco = F.read_coco(*_coco_source(src, ann))
    out_split = split or ("test" if kind == "voc2coco" else "val")
    if kind in ("voc2coco", "yolo2coco"):
        out = _write_coco(coco, dst, out_split, images, progress)
    elif kind == "coco2voc":
        out = _write_voc(coco, dst, year, out_split, images, progress)
    else:
        out = _write_yolo(coco, dst, images, progress)
    return {"output": str(out), "images": len(coco["images"]), "annotations": len(coco["annotations"]),
            "categories": len(coco["categories"])}


def coco_as_voc_objects(coco: dict) -> dict:
    """Ground truth of a COCO dict in the VOC scorer's form: image stem -> [{name, bbox (1-based
    inclusive, :func:`formats.voc_box`), difficult (= iscrowd)}] (what coco2voc writes)."""
    names = {c["id"]: c["name"] for c in coco["categories"]}
    per = _by_image(coco)
    return {Path(im["file_name"]).stem: [{"name": names[a["category_id"]], "bbox": [float(v) for v in F.voc_box(a["bbox"])],
                                          "difficult": bool(a.get("iscrowd", 0))} for a in per[im["id"]]]
            for im in coco["images"]}
