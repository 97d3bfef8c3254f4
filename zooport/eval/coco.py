"""COCO scoring: official results JSON and pycocotools ``COCOeval`` (bbox).

Results format (the one the COCO evaluation server and pycocotools read): a
JSON list of ``{"image_id": int, "category_id": int, "bbox": [x, y, w, h],
"score": float}`` with boxes in original-image pixels, (x, y) the top-left
corner. Category ids: by name when the model's class names are the
dataset's category names (or through a class map); otherwise an 80-class
model on the 80 official categories uses the standard 80 -> 91 id table that
both YOLOv5 (``coco80_to_coco91_class``) and Darknet (``coco_ids``) use.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np

from ..errors import DatasetError

# Index = contiguous 80-class label, value = official COCO category id.
COCO80_TO_91 = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
                31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
                56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
                85, 86, 87, 88, 89, 90]

SUMMARY_KEYS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]

# How each reference pipeline writes its JSON (decimals of bbox, score): YOLOv5 rounds
# to 3 / 5 decimals, Darknet prints with %f (6 / 6).
# MMDetection's CocoMetric writes full floats (None: no rounding).
ROUNDING = {"yolov5": (3, 5), "darknet": (6, 6), "mmdet": (None, None)}


def _round(v: float, decimals):
    return float(v) if decimals is None else round(float(v), decimals)


def category_ids(model_names: list, dataset, class_map=None) -> list:
    """Per model class, the dataset category id it is written as (None = dropped)."""
    by_name = dict(zip(dataset.names, dataset.cat_ids))
    if class_map is not None:
        from .classmap import resolve_class_map

        targets = resolve_class_map(class_map, model_names, dataset.names)
        return [by_name.get(t) if t is not None else None for t in targets]
    if all(n in by_name for n in model_names):
        return [by_name[n] for n in model_names]
    if len(model_names) == 80 and sorted(dataset.cat_ids) == COCO80_TO_91:
        return list(COCO80_TO_91)
    raise DatasetError(
        f"{dataset.ann_file}: the model's {len(model_names)} class names do not match the dataset's "
        f"{len(dataset.names)} categories and it is not an 80-class COCO model on the 80 COCO categories; "
        "pass --class-map"
    )


def results_json(detections: dict, cat_ids: list, rounding=(3, 5)) -> list:
    """``detections``: image id -> (n, 6) x1,y1,x2,y2,score,class -> COCO results list (image order kept)."""
    bd, sd = rounding
    out = []
    for img_id, d in detections.items():
        for x1, y1, x2, y2, s, c in np.asarray(d, dtype=np.float64).reshape(-1, 6):
            cid = cat_ids[int(c)]
            if cid is None:
                continue
            out.append({"image_id": int(img_id), "category_id": int(cid),
                        "bbox": [_round(x1, bd), _round(y1, bd), _round(x2 - x1, bd), _round(y2 - y1, bd)],
                        "score": _round(s, sd)})
    return out


def score_coco(ann_file, results: list, img_ids: list, verbose: bool = False, iou_type: str = "bbox") -> dict:
    """pycocotools evaluation (``iou_type`` "bbox", or "segm" for results with RLE ``segmentation``)
    restricted to ``img_ids``: one :class:`CocoStream` fed everything at once.

    Returns ``{"metrics": {AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl},
    "per_class": [{"class", "category_id", "AP", "AP50"}]}``; per-class AP is the mean of
    the precision array over IoU 0.5:0.95 and recall, area all, 100 detections
    (-1 entries excluded), None where the class has no ground truth.
    """
    stream = CocoStream(ann_file, iou_type)
    stream.add(results, img_ids)
    return stream.finish(verbose)


class CocoStream:
    """pycocotools ``COCOeval`` run group by group of images, as their results arrive; one
    ``accumulate`` / ``summarize`` over all of them at the end.

    ``COCOeval.evaluate`` matches each (image, category, area range) on its own, so evaluating
    groups of images and handing ``accumulate`` the per-image records in the order ``evaluate``
    would have built them (category, area range, sorted image id) gives exactly the one-shot
    figures, while the verifier overlaps the matching with inference.
    """

    def __init__(self, ann_file, iou_type: str = "bbox"):
        from pycocotools.coco import COCO

        with contextlib.redirect_stdout(io.StringIO()):
            self.gt = COCO(str(ann_file))
        self.ann_file = str(ann_file)
        self.iou_type = iou_type
        # per group: (its sorted image ids, its evaluateImg records as a (category, area range, image)
        # object array), concatenated along the images at the end
        self.groups: list = []
        self.img_ids: set = set()
        self.n_results = 0

    def add(self, results: list, img_ids) -> None:
        """Evaluate ``results`` (COCO results list) on the images ``img_ids`` (every image of the
        group, with or without results: images without any detection still count their ground truth)."""
        from pycocotools.coco import COCO

        from .coco_match import MatchEval

        ids = sorted({int(i) for i in img_ids})
        if not ids:
            return
        if self.img_ids.intersection(ids):
            raise ValueError(f"images {sorted(self.img_ids.intersection(ids))[:5]} were already evaluated")
        with contextlib.redirect_stdout(io.StringIO()):
            if results and self.iou_type != "bbox":
                dt = self.gt.loadRes(results)  # segm: areas and boxes from the RLE masks
            else:
                dt = _bbox_results(self.gt, results, self.ann_file)
            ev = MatchEval(self.gt, dt, self.iou_type)
            ev.params.imgIds = ids
            ev.evaluate()
        p = ev.params
        recs = np.empty(len(ev.evalImgs), dtype=object)
        recs[:] = ev.evalImgs  # evaluate()'s order: category, area range, image
        self.groups.append((np.asarray(p.imgIds), recs.reshape(len(p.catIds), len(p.areaRng), len(p.imgIds))))
        self.img_ids.update(ids)
        self.n_results += len(results)

    def finish(self, verbose: bool = False) -> dict:
        """The figures over every image added (the dict :func:`score_coco` returns)."""
        import copy

        from .coco_match import MatchEval

        gt = self.gt
        if not self.n_results:
            return {"metrics": {k: 0.0 for k in SUMMARY_KEYS}, "per_class": [
                {"class": gt.cats[c]["name"], "category_id": c, "AP": 0.0, "AP50": 0.0} for c in sorted(gt.cats)]}
        ev = MatchEval(gt, None, self.iou_type)
        p = ev.params  # as evaluate() leaves them: sorted unique image and category ids, sorted maxDets
        p.imgIds = sorted(self.img_ids)
        p.catIds = sorted(set(p.catIds))
        p.maxDets = sorted(p.maxDets)
        order = np.argsort(np.concatenate([g[0] for g in self.groups]), kind="stable")
        ev.evalImgs = np.concatenate([g[1] for g in self.groups], axis=2)[:, :, order].reshape(-1).tolist()
        ev._paramsEval = copy.deepcopy(p)
        with contextlib.redirect_stdout(io.StringIO()):
            ev.accumulate()
            ev.summarize()
        if verbose:
            print(_summary_text(ev))
        metrics = {k: float(v) for k, v in zip(SUMMARY_KEYS, ev.stats)}
        prec = ev.eval["precision"]  # [T, R, K, A, M]
        per = []
        for k, cid in enumerate(p.catIds):
            pk = prec[:, :, k, 0, -1]
            p50 = prec[0, :, k, 0, -1]
            ap = float(np.mean(pk[pk > -1])) if (pk > -1).any() else None
            ap50 = float(np.mean(p50[p50 > -1])) if (p50 > -1).any() else None
            per.append({"class": gt.cats[cid]["name"], "category_id": int(cid), "AP": ap, "AP50": ap50})
        return {"metrics": metrics, "per_class": per}


def _bbox_results(gt, results: list, where: str):
    """The detections as a COCO object, as ``gt.loadRes(results)`` builds it for boxes (area = w * h,
    ids 1..n in list order, not crowd), without the polygon it adds and bbox evaluation never reads;
    also for an empty list, which ``loadRes`` refuses."""
    from pycocotools.coco import COCO

    known = gt.imgs
    anns = []
    for n, r in enumerate(results, 1):
        if r["image_id"] not in known:
            raise DatasetError(f"{where}: a result names image id {r['image_id']}, which the "
                               "annotation file does not have")
        bb = r["bbox"]
        anns.append({"image_id": r["image_id"], "category_id": r["category_id"], "bbox": bb,
                     "score": r["score"], "area": bb[2] * bb[3], "id": n, "iscrowd": 0})
    dt = COCO()
    dt.dataset = {"images": list(gt.dataset["images"]), "annotations": anns,
                  "categories": list(gt.dataset.get("categories", []))}
    dt.createIndex()
    return dt


def _summary_text(ev) -> str:
    s = ev.stats
    return "\n".join(f"{k:>6} {v:.4f}" for k, v in zip(SUMMARY_KEYS, s))
