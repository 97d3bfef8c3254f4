"""Scoring of collected detections: COCO (pycocotools) or VOC (voc_eval), plus P/R/instances per class.

``score(ds, detections, model_info, settings, skipped)`` (or a :class:`Scorer` fed batch by batch)
-> the verify result as a dict (the fields of :class:`zooport.eval.result.VerifyResult` except ``timing``/``speed``): ``metrics`` (COCO: AP, AP50,
..., AR100; VOC: mAP_voc07, mAP_voc10; both: P, R = class means as ``yolo val`` prints "all"),
``per_class`` (per dataset class: AP columns, ``P``, ``R``, ``instances``, ``images``), ``settings``,
``model``, ``dataset``, ``images``, ``detections``, ``skipped``.
"""
from __future__ import annotations

import numpy as np

from ..errors import DatasetError


def check_mapping(ds, names, class_map) -> None:
    """Fail early (before inference) when the model's classes cannot be scored on ``ds``."""
    if ds.kind == "coco":
        from .coco import category_ids

        category_ids(names, ds, class_map)
    else:
        _voc_targets(ds, names, class_map)


def _voc_targets(ds, names, class_map) -> list:
    from .classmap import resolve_class_map

    if class_map is None:
        if not set(names) & set(ds.names):
            raise DatasetError(f"{ds.root}: none of the model's class names is a VOC class of this split; "
                               "pass --class-map (e.g. coco-voc)")
        return list(names)
    return resolve_class_map(class_map, names, ds.names)


def _round_dets(d: np.ndarray, post: str) -> np.ndarray:
    """The detections as the reference pipeline writes them (COCO JSON rounding), back as xyxy."""
    from .coco import ROUNDING

    bd, sd = ROUNDING[post]
    d = np.asarray(d, np.float64).reshape(-1, 6).copy()
    if bd is None:  # a pipeline that writes full floats (MMDetection)
        return d
    x1, y1 = np.round(d[:, 0], bd), np.round(d[:, 1], bd)
    w, h = np.round(d[:, 2] - d[:, 0], bd), np.round(d[:, 3] - d[:, 1], bd)
    d[:, 0], d[:, 1], d[:, 2], d[:, 3] = x1, y1, x1 + w, y1 + h
    d[:, 4] = np.round(d[:, 4], sd)
    return d


def score(ds, detections: dict, model_info: dict, settings: dict, skipped: list) -> dict:
    """Score ``detections`` (image key -> (n, 6)) on ``ds``; returns the verify result dict.
    Every image of ``ds`` not in ``skipped`` is scored (one without an entry as having no detection)."""
    skipped_keys = {s["image"] for s in skipped}
    sc = Scorer(ds, model_info["names"], settings)
    sc.add({r.key: detections.get(r.key, np.zeros((0, 6))) for r in ds.images if r.key not in skipped_keys})
    return sc.result(model_info, skipped)


class Scorer:
    """Scoring fed batch by batch: :meth:`add` as each batch's detections are ready (the verifier
    calls it from its post-processing thread, so COCO matching overlaps inference), :meth:`result`
    once at the end. The figures equal one :func:`score` over the same detections: COCO matching is
    per image (:class:`~zooport.eval.coco.CocoStream`), and VOC scoring and the P/R columns run at
    the end over the images in dataset order."""

    def __init__(self, ds, names, settings: dict):
        self.ds, self.names, self.settings = ds, list(names), settings
        self.dets: dict = {}
        self._coco = None
        if ds.kind == "coco":
            from .coco import ROUNDING, CocoStream, category_ids

            self._cat_ids = category_ids(self.names, ds, settings.get("class_map"))
            self._rounding = ROUNDING[settings["postprocess"]]
            self._coco = CocoStream(ds.ann_file)

    def add(self, detections: dict) -> None:
        """``detections``: image key -> (n, 6) x1, y1, x2, y2, score, class (image pixels) for a group
        of images, each scored once."""
        self.dets.update(detections)
        if self._coco is not None:
            from .coco import results_json

            results = results_json(detections, self._cat_ids, self._rounding)
            self._coco.add(results, list(detections))

    def result(self, model_info: dict, skipped: list) -> dict:
        """The verify result dict (see the module docstring) over every image added."""
        ds, settings, names = self.ds, self.settings, self.names
        keys = [r.key for r in ds.images if r.key in self.dets]
        if self._coco is not None:
            sc = self._coco.finish()
            ndet = self._coco.n_results
        else:
            from .voc import score_voc, to_voc_box

            targets = _voc_targets(ds, names, settings.get("class_map"))
            vdets, ndet = {}, 0
            for k in keys:
                lst = []
                for x1, y1, x2, y2, s, c in _round_dets(self.dets[k], settings["postprocess"]):
                    t = targets[int(c)]
                    if t is not None:
                        lst.append((t, float(s), to_voc_box(x1, y1, x2, y2)))
                vdets[k] = lst
                ndet += len(lst)
            sc = score_voc({k: ds.objects[k] for k in keys}, vdets, ds.names)
            sc = {"metrics": {"mAP_voc07": sc["mAP_voc07"], "mAP_voc10": sc["mAP_voc10"]},
                  "per_class": sc["per_class"]}
        _add_precision_recall(ds, self.dets, keys, names, settings, sc)
        info = {k: v for k, v in model_info.items() if k != "names"}
        info["num_classes"] = len(names)
        return {"metrics": sc["metrics"], "per_class": sc["per_class"], "settings": settings, "model": info,
                "dataset": ds.describe(), "images": len(keys), "detections": ndet, "skipped": list(skipped)}


def _add_precision_recall(ds, detections, keys, names, settings, sc) -> None:
    """P, R (at the max mean-F1 confidence, IoU 0.5), instances and images into ``sc``'s per-class rows;
    their means over classes with instances as ``metrics["P"]`` / ``metrics["R"]`` (``yolo val``'s "all")."""
    from .precision import per_class_pr

    index = {n: i for i, n in enumerate(ds.names)}
    if ds.kind == "coco":
        from .coco import category_ids

        by_cat = dict(zip(ds.cat_ids, range(len(ds.cat_ids))))
        to_ds = [by_cat.get(c) for c in category_ids(names, ds, settings.get("class_map"))]
    else:
        to_ds = [None if t is None else index.get(t) for t in _voc_targets(ds, names, settings.get("class_map"))]
    pr = per_class_pr(ds, detections, keys, to_ds)
    for row in sc["per_class"]:
        row.update(pr.get(row["class"], {"P": 0.0, "R": 0.0, "instances": 0, "images": 0}))
    scored = [v for v in pr.values() if v["instances"]]
    sc["metrics"]["P"] = float(np.mean([v["P"] for v in scored])) if scored else 0.0
    sc["metrics"]["R"] = float(np.mean([v["R"] for v in scored])) if scored else 0.0
