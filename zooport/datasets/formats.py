"""Reading and writing detection datasets through one in-memory form: a COCO ``dict``.

Every reader returns ``{"images": [...], "annotations": [...], "categories": [...]}`` as COCO's
``instances_*.json`` holds them (``bbox`` = [x, y, w, h], 0-based continuous pixels), each image also
carrying ``_path`` (its file on disk, dropped when written). Conventions:

* VOC boxes are 1-based inclusive integers: ``xmin = round(x) + 1``, ``xmax = round(x + w)`` (the rule of
  the shared coco-tiny-voc tree); read back as ``x = xmin - 1``, ``w = xmax - xmin + 1``.
  ``difficult`` <-> ``iscrowd``. VOC has no category ids: ``classes.txt`` (``id name`` lines) beside
  ``Annotations/`` keeps them; without it ids are 1..K in the order of the 20 VOC classes (when every name
  is one of them) or of the sorted names.
* YOLO labels: ``images/<stem>.<ext>`` with ``labels/<stem>.txt`` beside, one ``class cx cy w h`` line per
  box (relative to the image), class = index into ``names.txt`` (or ``--names``); crowd boxes are skipped.

Errors name the file and the element (``annotations[12]``, ``object 3``, ``line 7``).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError

VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]


def _num(v, where):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise DatasetError(f"{where}: expected a number, got {v!r}")
    return v


# ------------------------------------------------------------------------------------------ COCO


def _guess_image_dir(ann_file: Path, images: list) -> Path:
    """``../<split>/`` for ``annotations/instances_<split>.json``, else the json's folder or one of its
    sub-folders, whichever holds the first listed image (the json's folder when none does)."""
    split = ann_file.stem[len("instances_"):] if ann_file.stem.startswith("instances_") else ""
    cands = [ann_file.parent.parent / split] if split else []
    cands += [ann_file.parent] + sorted(p for p in ann_file.parent.iterdir() if p.is_dir())
    first = str(images[0].get("file_name", "")) if images and isinstance(images[0], dict) else ""
    for c in cands:
        if c.is_dir() and first and (c / first).is_file():
            return c
    return cands[0] if split and cands[0].is_dir() else ann_file.parent


def read_coco(ann_file, img_dir=None) -> dict:
    """A COCO json, checked element by element; ``_path`` = ``img_dir / file_name`` (default:
    :func:`_guess_image_dir`)."""
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise DatasetError(f"{ann_file}: COCO annotation file does not exist")
    from .files import read_coco_json

    data = read_coco_json(ann_file)
    if img_dir is None:
        img_dir = _guess_image_dir(ann_file, data["images"])
    img_dir = Path(img_dir)
    cats, cat_ids = [], set()
    for i, c in enumerate(data["categories"]):
        where = f"{ann_file}: categories[{i}]"
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise DatasetError(f"{where}: needs 'id' and 'name'")
        cats.append({"id": int(_num(c["id"], where + ".id")), "name": str(c["name"]),
                     "supercategory": str(c.get("supercategory", ""))})
        cat_ids.add(cats[-1]["id"])
    images, img_ids = [], set()
    for i, im in enumerate(data["images"]):
        where = f"{ann_file}: images[{i}]"
        if not isinstance(im, dict) or any(k not in im for k in ("id", "file_name", "width", "height")):
            raise DatasetError(f"{where}: needs 'id', 'file_name', 'width', 'height'")
        rec = {"id": int(_num(im["id"], where + ".id")), "file_name": str(im["file_name"]),
               "width": int(_num(im["width"], where + ".width")), "height": int(_num(im["height"], where + ".height"))}
        rec["_path"] = img_dir / rec["file_name"]
        images.append(rec)
        img_ids.add(rec["id"])
    anns = []
    for i, a in enumerate(data["annotations"]):
        where = f"{ann_file}: annotations[{i}]" + (f" (id {a.get('id')})" if isinstance(a, dict) else "")
        if not isinstance(a, dict):
            raise DatasetError(f"{where}: expected an object")
        b = a.get("bbox")
        if not isinstance(b, list) or len(b) != 4:
            raise DatasetError(f"{where}: bbox must be [x, y, w, h], got {b!r}")
        b = [float(_num(v, where + ".bbox")) for v in b]
        if b[2] < 0 or b[3] < 0:
            raise DatasetError(f"{where}: bbox {b} has a negative width or height")
        if a.get("image_id") not in img_ids:
            raise DatasetError(f"{where}: image_id {a.get('image_id')!r} is not in images")
        if a.get("category_id") not in cat_ids:
            raise DatasetError(f"{where}: category_id {a.get('category_id')!r} is not in categories")
        anns.append({"id": int(a.get("id", i + 1)), "image_id": a["image_id"], "category_id": a["category_id"],
                     "bbox": b, "area": float(a.get("area", b[2] * b[3])), "iscrowd": int(bool(a.get("iscrowd", 0)))})
    return {"images": images, "annotations": anns, "categories": cats}


def coco_json(coco: dict) -> dict:
    """The dict as written to disk (private ``_path`` keys dropped)."""
    return {"images": [{k: v for k, v in im.items() if not k.startswith("_")} for im in coco["images"]],
            "annotations": coco["annotations"], "categories": coco["categories"]}


# ------------------------------------------------------------------------------------------ VOC


def voc_box(bbox) -> list:
    """COCO [x, y, w, h] -> VOC [xmin, ymin, xmax, ymax], 1-based inclusive integers."""
    x, y, w, h = bbox
    return [int(round(x)) + 1, int(round(y)) + 1, int(round(x + w)), int(round(y + h))]


def coco_box(voc) -> list:
    """VOC [xmin, ymin, xmax, ymax] (1-based inclusive) -> COCO [x, y, w, h]."""
    x1, y1, x2, y2 = (float(v) for v in voc)
    return [x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1]


def _voc_categories(root: Path, names: set) -> list:
    f = root / "classes.txt"
    if f.is_file():
        cats = []
        for n, line in enumerate(f.read_text().splitlines(), 1):
            t = line.strip().split(maxsplit=1)
            if not t:
                continue
            if len(t) != 2 or not t[0].lstrip("-").isdigit():
                raise DatasetError(f"{f}:{n}: expected 'id name'")
            cats.append({"id": int(t[0]), "name": t[1], "supercategory": ""})
        missing = names - {c["name"] for c in cats}
        if missing:
            raise DatasetError(f"{f}: classes {sorted(missing)} occur in the annotations but are not listed")
        return cats
    order = VOC_CLASSES if names <= set(VOC_CLASSES) else sorted(names)
    return [{"id": k + 1, "name": n, "supercategory": ""} for k, n in enumerate(order)]


def read_voc(voc_dir, year: str = "2007", split: str | None = None) -> dict:
    """A VOC tree (``DIR/VOC<year>/`` or ``DIR`` itself). ``split``: the images of
    ``ImageSets/Main/<split>.txt``; None: every ``Annotations/*.xml``."""
    from .files import find_voc, parse_voc_xml

    root = find_voc(Path(voc_dir), str(year))
    ann_dir = root / "Annotations"
    if split is not None:
        sf = root / "ImageSets" / "Main" / f"{split}.txt"
        if not sf.is_file():
            raise DatasetError(f"{sf}: split file does not exist")
        ids = [ln.split()[0] for ln in sf.read_text().splitlines() if ln.strip()]
    else:
        ids = sorted(p.stem for p in ann_dir.glob("*.xml"))
    if not ids:
        raise DatasetError(f"{root}: no annotations to convert")
    per, names = [], set()
    for i in ids:
        xml = ann_dir / f"{i}.xml"
        if not xml.is_file():
            raise DatasetError(f"{xml}: annotation of image '{i}' is missing")
        w, h, objs = parse_voc_xml(xml)
        for k, o in enumerate(objs):
            x1, y1, x2, y2 = o["bbox"]
            if x2 < x1 or y2 < y1:
                raise DatasetError(f"{xml}: object {k} ('{o['name']}'): <bndbox> has xmax < xmin or ymax < ymin")
        per.append((i, w, h, objs))
        names.update(o["name"] for o in objs)
    cats = _voc_categories(root, names)
    by_name = {c["name"]: c["id"] for c in cats}
    images, anns = [], []
    # numeric VOC ids (COCO file stems such as 000000000139) become the image ids again
    numeric = all(i.isdigit() for i in ids) and len({int(i) for i in ids}) == len(ids)
    for k, (i, w, h, objs) in enumerate(per, 1):
        n = int(i) if numeric else k
        jpgs = sorted((root / "JPEGImages").glob(f"{i}.*")) if (root / "JPEGImages").is_dir() else []
        path = jpgs[0] if jpgs else root / "JPEGImages" / f"{i}.jpg"
        images.append({"id": n, "file_name": path.name, "width": w, "height": h, "_path": path})
        for o in objs:
            b = coco_box(o["bbox"])
            anns.append({"id": len(anns) + 1, "image_id": n, "category_id": by_name[o["name"]], "bbox": b,
                         "area": b[2] * b[3], "iscrowd": int(o["difficult"])})
    return {"images": images, "annotations": anns, "categories": cats}


def voc_xml(im: dict, objs: list, folder: str) -> str:
    """One VOC annotation file; ``objs``: (name, [xmin, ymin, xmax, ymax], difficult)."""
    from xml.sax.saxutils import escape

    rows = [f"<annotation>\n  <folder>{escape(folder)}</folder>\n  <filename>{escape(im['file_name'])}</filename>\n"
            f"  <size>\n    <width>{im['width']}</width>\n    <height>{im['height']}</height>\n"
            "    <depth>3</depth>\n  </size>\n  <segmented>0</segmented>\n"]
    for name, b, diff in objs:
        rows.append(f"  <object>\n    <name>{escape(name)}</name>\n    <pose>Unspecified</pose>\n"
                    f"    <truncated>0</truncated>\n    <difficult>{int(diff)}</difficult>\n    <bndbox>\n"
                    + "".join(f"      <{t}>{v}</{t}>\n" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), b))
                    + "    </bndbox>\n  </object>\n")
    rows.append("</annotation>\n")
    return "".join(rows)


# ------------------------------------------------------------------------------------------ YOLO


def read_yolo(src, names: list) -> dict:
    """``src/images/*`` with ``src/labels/<stem>.txt`` (a missing label file = no boxes)."""
    from .files import read_image
    from ..inference.sources import IMAGE_EXTS

    src = Path(src)
    img_dir, lab_dir = src / "images", src / "labels"
    if not img_dir.is_dir():
        raise DatasetError(f"{src}: not a YOLO dataset (expected images/ and labels/ folders)")
    files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise DatasetError(f"{img_dir}: no images")
    images, anns = [], []
    for n, p in enumerate(files, 1):
        h, w = read_image(p).shape[:2]
        images.append({"id": n, "file_name": p.name, "width": w, "height": h, "_path": p})
        lab = lab_dir / f"{p.stem}.txt"
        if not lab.is_file():
            continue
        for ln, line in enumerate(lab.read_text().splitlines(), 1):
            t = line.split()
            if not t:
                continue
            try:
                c, cx, cy, bw, bh = int(t[0]), *(float(v) for v in t[1:5])
            except (ValueError, IndexError):
                raise DatasetError(f"{lab}:{ln}: expected 'class cx cy w h', got {line.strip()!r}") from None
            if not 0 <= c < len(names):
                raise DatasetError(f"{lab}:{ln}: class {c} is outside the {len(names)} names")
            if bw < 0 or bh < 0:
                raise DatasetError(f"{lab}:{ln}: negative box size")
            b = [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]
            anns.append({"id": len(anns) + 1, "image_id": n, "category_id": c + 1, "bbox": b,
                         "area": b[2] * b[3], "iscrowd": 0})
    cats = [{"id": k + 1, "name": nm, "supercategory": ""} for k, nm in enumerate(names)]
    return {"images": images, "annotations": anns, "categories": cats}


def yolo_lines(im: dict, anns: list, cat_index: dict) -> str:
    """YOLO label text of one image (crowd boxes skipped); 6 decimals."""
    w, h = im["width"], im["height"]
    out = []
    for a in anns:
        if a.get("iscrowd"):
            continue
        x, y, bw, bh = a["bbox"]
        out.append(f"{cat_index[a['category_id']]} {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} "
                   f"{bw / w:.6f} {bh / h:.6f}\n")
    return "".join(out)
