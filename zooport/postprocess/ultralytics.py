"""Ultralytics' post-processing on its own decoded layouts.

- :func:`non_max_suppression_anchor_free`: YOLOv8 / YOLO11 (and the one-to-many branch of YOLO26 / YOLOv10):
  YOLOv5's NMS with an objectness of 1.
- :func:`topk_end2end`: the one-to-one branch of YOLO26 / YOLOv10: top-k without NMS, (B, k, 6).
- :func:`filter_end2end`: ``non_max_suppression(..., end2end=True)``: keep rows whose score > conf.
- :func:`scale_boxes`: Ultralytics 8.4's ``ops.scale_boxes`` (letterboxed -> original pixels, clipped).
- :func:`classify_topk`: a classifier's ``Probs.top5`` / ``top5conf``.
"""
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


def topk_end2end(decoded: torch.Tensor, nc: int, max_det: int = 300) -> torch.Tensor:
    """Ultralytics' ``Detect.postprocess`` of an end-to-end head (non-agnostic, one group).

    ``decoded`` (B, 4 + nc + extra, N): x1, y1, x2, y2, class scores (then task channels). The k =
    min(max_det, N) anchors with the highest best-class score are taken (``torch.topk``), then the k highest
    (anchor, class) scores among them. Returns (B, k, 6 + extra): x1, y1, x2, y2, score, class (float), extra.
    """
    p = decoded.transpose(1, 2)
    boxes, scores, extra = p[..., :4], p[..., 4:4 + nc], p[..., 4 + nc:]
    k = min(max_det, p.shape[1])
    ori = scores.max(dim=-1)[0].topk(k, dim=1)[1]
    gathered = scores.gather(1, ori[..., None].expand(-1, -1, nc))
    top, index = gathered.flatten(1).topk(k, dim=1)
    anchor = ori.gather(1, index // nc)

    def take(x):
        return x.gather(1, anchor[..., None].expand(-1, -1, x.shape[-1]))

    parts = [take(boxes), top[..., None], (index % nc)[..., None].to(p.dtype)]
    if extra.shape[-1]:
        parts.append(take(extra))
    return torch.cat(parts, -1)


def filter_end2end(pred: torch.Tensor, conf_thres: float = 0.25, max_det: int = 300) -> list[torch.Tensor]:
    """Per image, the rows of an end-to-end output (B, k, 6 + extra) whose score (column 4) > ``conf_thres``,
    in order, at most ``max_det`` (Ultralytics' ``non_max_suppression`` for end-to-end models)."""
    return [x[x[:, 4] > conf_thres][:max_det].float() for x in pred]


def scale_boxes(img1_hw, boxes: torch.Tensor, img0_hw) -> torch.Tensor:
    """Ultralytics 8.4 ``ops.scale_boxes`` (no ``ratio_pad``): xyxy boxes in the letterboxed ``img1_hw`` image
    -> the original ``img0_hw`` image, clipped; a new tensor.

    The letterbox resized each side to ``max(round(side * gain), 1)`` and padded evenly, so x and y get their
    own gains: ``gain = min(h1 / h0, w1 / w0)``, ``pad = round((s1 - new) / 2 - 0.1)``.
    """
    h0, w0 = int(img0_hw[0]), int(img0_hw[1])
    gain = min(img1_hw[0] / h0, img1_hw[1] / w0)
    new_h, new_w = max(round(h0 * gain), 1), max(round(w0 * gain), 1)
    gy, gx = new_h / h0, new_w / w0
    px, py = round((img1_hw[1] - new_w) / 2 - 0.1), round((img1_hw[0] - new_h) / 2 - 0.1)
    b = boxes.clone()
    b[..., [0, 2]] = ((b[..., [0, 2]] - px) / gx).clamp(0, w0)
    b[..., [1, 3]] = ((b[..., [1, 3]] - py) / gy).clamp(0, h0)
    return b


def classify_topk(probs: torch.Tensor, k: int = 5):
    """Ultralytics' ``Probs.top5`` / ``top5conf`` for one image: (indices, scores) of the k highest of the (nc,)
    softmax probabilities, highest first (a stable descending sort, ties in index order)."""
    order = torch.argsort(-probs, stable=True)[:k]
    return order, probs[order]
