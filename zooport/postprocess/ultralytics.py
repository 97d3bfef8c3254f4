"""Ultralytics' (YOLOv8 / YOLO11) NMS on its own decoded layout: YOLOv5's with an objectness of 1."""
from __future__ import annotations

import torch

from .yolov5 import non_max_suppression


def non_max_suppression_anchor_free(
    prediction: torch.Tensor,
    conf_thres: float = 0.001,
    iou_thres: float = 0.7,
    *,
    multi_label: bool = True,
    agnostic: bool = False,
    classes: list[int] | None = None,
    max_det: int = 300,
) -> list[torch.Tensor]:
    """Ultralytics' (YOLOv8 / YOLO11) NMS on its own decoded layout (B, 4 + nc, N): xywh, class scores.

    The head has no objectness, so this is :func:`non_max_suppression` with an
    objectness of exactly 1 (scores are the class scores themselves): candidates
    whose class score > ``conf_thres`` (every such class with ``multi_label``, the
    validator's setting; else the best class, Ultralytics' predict default), class
    offset 7680 px, greedy NMS at ``iou_thres``, at most ``max_det`` per image.
    Defaults are Ultralytics' validation settings. Returns per image (n, 6) float32
    x1, y1, x2, y2, score, class.
    """
    if prediction.dim() != 3 or prediction.shape[1] < 5:
        raise ValueError(f"prediction must be (B, 4+nc, N), got {tuple(prediction.shape)}")
    p = prediction.detach().float().transpose(1, 2)
    shared = torch.cat((p[..., :4], torch.ones_like(p[..., :1]), p[..., 4:]), 2)
    return non_max_suppression(shared, conf_thres, iou_thres, classes=classes, agnostic=agnostic,
                               multi_label=multi_label, max_det=max_det)
