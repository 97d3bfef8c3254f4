"""``zooport analyze assign``: a model's levels and training assigner, positives drawn on one image.

The image is letterboxed square to ``imgsz`` (YOLOv5's ``letterbox``, pad 114) and the ground truth mapped
into that input; each panel (one per pyramid level) shows the boxes and, in each box's colour, its positive
anchors (thin boxes) or points (dots) on that level.
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError


def assigner_for(model) -> str:
    """The training assigner of a model: its family's (:mod:`zooport.families`), else by its head's type."""
    from ..families import lookup

    fam = lookup(model)
    if fam is not None and fam.assigner:
        return fam.assigner
    head = type(getattr(model, "bbox_head", None)).__name__
    for key, kind in (("YOLOV3", "yolov3"), ("Retina", "maxiou"), ("FCOS", "fcos"), ("ATSS", "atss"), ("GFL", "atss")):
        if key.lower() in head.lower():
            return kind
    raise UsageError(f"no assigner known for {getattr(model, 'family', '') or 'this'} model (head {head}); "
                     "pass --assigner")


def model_levels(model, imgsz: int) -> list:
    """``[(stride, H, W, anchors (A, 2), offset), ...]`` for a square input of ``imgsz``."""
    strides = [int(s) for s in (getattr(model, "stride", None) or [])]
    if not strides:
        raise UsageError("the model reports no strides")
    gen = getattr(getattr(model, "bbox_head", None), "prior_generator", None)
    levels = []
    for i, s in enumerate(strides):
        h = w = int(np.ceil(imgsz / s))
        anc, off = np.zeros((1, 2)), 0.5
        if model.anchors:
            anc = np.asarray(model.anchors[i], np.float64).reshape(-1, 2)
        elif gen is not None and hasattr(gen, "level"):
            b = np.asarray(gen.level(i, 1, 1), np.float64).reshape(-1, 4)  # the base anchors at cell (0, 0)
            anc = np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)
            off = float((b[0, 0] + b[0, 2]) / 2 / s)
        levels.append((s, h, w, anc, off))
    return levels


def draw_assignment(img, gt, classes, positives, levels, names) -> np.ndarray:
    """One panel per level, side by side: GT boxes thick, positives thin (anchors) or dots (points)."""
    import cv2

    from ..inference.draw import class_color, draw_boxes
    from .assign import level_anchors

    panels = []
    for li, lv in enumerate(levels):
        s = lv[0]
        cols = [class_color(g) for g in range(len(gt))]
        im = draw_boxes(img, gt, [f"{names[int(c)] if int(c) < len(names) else c} #{g}" for g, c in enumerate(classes)],
                        cols)
        boxes, idx = level_anchors(lv)
        lookup = {tuple(v): n for n, v in enumerate(idx.tolist())}
        for g, lj, a, y, x in positives:
            if lj != li:
                continue
            cx, cy = (x + lv[4] if len(lv) > 4 else x + 0.5) * s, (y + (lv[4] if len(lv) > 4 else 0.5)) * s
            if np.asarray(lv[3]).reshape(-1, 2).any():
                x1, y1, x2, y2 = (int(round(v)) for v in boxes[lookup[(y, x, a)]])
                cv2.rectangle(im, (x1, y1), (x2, y2), cols[g], 1)
            cv2.circle(im, (int(cx), int(cy)), max(2, s // 8), cols[g], -1)
        cv2.putText(im, f"level {li} stride {s}: {sum(1 for p in positives if p[1] == li)} positives", (4, 16),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        panels.append(im)
    return np.concatenate(panels, 1)


def assign_on_image(model, coco: dict, image_id, imgsz: int = 640, kind: str | None = None):
    """(drawn image, positives, assigner) for one COCO image id (or file stem)."""
    from ..eval.data import read_image
    from ..eval.preprocess import letterbox
    from .assign import assign

    im = next((i for i in coco["images"] if str(i["id"]) == str(image_id) or
               str(i["file_name"]).rsplit(".", 1)[0] == str(image_id)), None)
    if im is None:
        raise UsageError(f"image {image_id} is not in the dataset")
    img = read_image(im["_path"])
    lb, r, (dw, dh) = letterbox(img, (imgsz, imgsz), scaleup=True)
    anns = [a for a in coco["annotations"] if a["image_id"] == im["id"] and not a.get("iscrowd")]
    gt = np.array([[a["bbox"][0] * r + dw, a["bbox"][1] * r + dh, (a["bbox"][0] + a["bbox"][2]) * r + dw,
                    (a["bbox"][1] + a["bbox"][3]) * r + dh] for a in anns]).reshape(-1, 4)
    cats = {c["id"]: k for k, c in enumerate(sorted(coco["categories"], key=lambda c: c["id"]))}
    names = [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])]
    kind = kind or assigner_for(model)
    levels = model_levels(model, imgsz)
    pos = assign(kind, gt, levels)
    return draw_assignment(lb, gt, [cats[a["category_id"]] for a in anns], pos, levels, names), pos, kind
