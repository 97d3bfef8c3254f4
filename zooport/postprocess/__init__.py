"""THE post-processing place: greedy NMS, box helpers and each family's variant.

- :mod:`.core` -- ``MAX_WH``, :func:`xywh2xyxy`, :func:`clip_boxes`, the one greedy NMS
  (:func:`greedy_keep` on numpy, :func:`nms` on torch tensors) and its class-wise form.
- :mod:`.yolov5` -- :func:`non_max_suppression` (YOLOv5's, torch) and :func:`yolov5_post`
  (YOLOv5 v7.0 ``val.py``, numpy, for the verifier).
- :mod:`.darknet` -- :func:`do_nms_sort`, :func:`darknet_detections` (``detector test``,
  the goldens' ``dets.txt``) and :func:`darknet_post` (``detector valid``).
- :mod:`.mmdet` -- mmcv's :func:`batched_nms` and :func:`mmdet_post` (the model's own
  ``predict`` through its ``test_cfg``, mapped back to the image); :mod:`.soft_nms` -- mmcv's
  soft-NMS (CornerNet).
- :mod:`.ultralytics` -- :func:`non_max_suppression_anchor_free` (YOLOv8 / YOLO11 layout), :func:`topk_end2end`
  and :func:`filter_end2end` (YOLO26 / YOLOv10 one-to-one head, no NMS), ``scale_boxes`` (8.4's letterbox inverse).
- :mod:`.yolov5_seg` -- YOLOv5 segmentation: :func:`non_max_suppression_seg`, :func:`process_mask`,
  :func:`predict_segments`.

New families add a small function here (calling :func:`nms` / :func:`greedy_keep`), never another
NMS. Light at import: torch is imported only by the functions that take tensors.
"""
from __future__ import annotations

import importlib

from .core import MAX_WH, classwise_keep, clip_boxes, greedy_keep, nms, xywh2xyxy

_LAZY = {
    "non_max_suppression": "yolov5", "yolov5_nms": "yolov5", "yolov5_post": "yolov5",
    "do_nms_sort": "darknet", "darknet_detections": "darknet", "darknet_post": "darknet",
    "read_detections": "darknet", "correct_letterbox": "darknet",
    "batched_nms": "mmdet", "mmdet_post": "mmdet", "test_cfg_overrides": "mmdet", "soft_nms": "soft_nms",
    "non_max_suppression_anchor_free": "ultralytics", "topk_end2end": "ultralytics", "filter_end2end": "ultralytics",
    "classify_topk": "ultralytics",
    "non_max_suppression_seg": "yolov5_seg", "process_mask": "yolov5_seg", "predict_segments": "yolov5_seg",
    "masks_to_original": "yolov5_seg",
}

__all__ = sorted(["MAX_WH", "classwise_keep", "clip_boxes", "greedy_keep", "nms", "xywh2xyxy",
                  "verify_postprocess", *_LAZY])


def verify_postprocess(model) -> str:
    """The post-processing ``zooport.verify`` and ``zooport.predict`` apply to ``model`` by default: its family
    record's ``postprocess`` (:mod:`zooport.families`): ``"darknet"`` (``detector valid``), ``"mmdet"`` (the
    model's own ``predict`` / ``test_cfg``) or ``"yolov5"`` (``val.py``; also unregistered families)."""
    from ..families import postprocess_of

    return postprocess_of(model)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'zooport.postprocess' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
