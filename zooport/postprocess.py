"""Shared post-processing: box conversion and greedy NMS with YOLOv5 semantics.

Used by PyTorch inference, the verifier and the ONNX parity tests, so that
"zooport's PyTorch post-processing" means one thing. Family-specific
post-processing (Darknet's ``do_nms_sort``, MMDetection's ``test_cfg``)
lives with its family.
"""
from __future__ import annotations

import numpy as np
import torch

# Class offset YOLOv5 adds to boxes so one NMS call is class-aware.
MAX_WH = 7680


def xywh2xyxy(x: torch.Tensor) -> torch.Tensor:
    """(..., 4) centre-x, centre-y, w, h -> x1, y1, x2, y2."""
    y = x.clone()
    y[..., 0] = x[..., 0] - x[..., 2] / 2
    y[..., 1] = x[..., 1] - x[..., 3] / 2
    y[..., 2] = x[..., 0] + x[..., 2] / 2
    y[..., 3] = x[..., 1] + x[..., 3] / 2
    return y


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_thres: float, max_keep: int | None = None) -> torch.Tensor:
    """Greedy NMS over (N, 4) xyxy ``boxes`` and (N,) ``scores``.

    Same rule as ``torchvision.ops.nms``: candidates in descending score
    order (stable for ties), a box is dropped when its IoU with a kept box is
    strictly greater than ``iou_thres``; IoU = inter / (area1 + area2 - inter)
    in the boxes' own float32. Stops after ``max_keep`` kept boxes (the same
    result as truncating the full list). Returns kept indices (int64), best first.

    Work is O(kept * N) vectorised numpy: no N x N IoU matrix is built.
    """
    n = int(boxes.shape[0])
    if n == 0:
        return torch.zeros(0, dtype=torch.int64)
    b = boxes.detach().to(torch.float32).cpu().numpy()
    s = scores.detach().to(torch.float32).cpu().numpy()
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-s, kind="stable")
    keep: list[int] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        while order.size:
            i = int(order[0])
            keep.append(i)
            if max_keep is not None and len(keep) >= max_keep:
                break
            rest = order[1:]
            w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
            h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
            inter = w * h
            iou = inter / (areas[i] + areas[rest] - inter)
            # NaN (two empty boxes) is not "> thres": kept, as torchvision does.
            order = rest[~(iou > iou_thres)]
    return torch.as_tensor(keep, dtype=torch.int64)


def non_max_suppression(
    prediction: torch.Tensor,
    conf_thres: float = 0.25,
    iou_thres: float = 0.45,
    *,
    classes: list[int] | None = None,
    agnostic: bool = False,
    multi_label: bool = False,
    max_det: int = 300,
    max_nms: int = 30000,
) -> list[torch.Tensor]:
    """YOLOv5's NMS on decoded predictions.

    ``prediction``: (B, N, 5 + nc) with xywh in pixels, objectness, class
    scores (as ``Detector.forward`` returns). Candidates need objectness >
    ``conf_thres``; score = objectness * class score, kept when > ``conf_thres``
    (every such class with ``multi_label``, else the best class). Class-aware
    NMS via a per-class box offset of 7680 px unless ``agnostic``.

    Returns per image an (n, 6) float32 tensor: x1, y1, x2, y2, score, class.
    """
    if prediction.dim() != 3 or prediction.shape[-1] < 6:
        raise ValueError(f"prediction must be (B, N, 5+nc), got {tuple(prediction.shape)}")
    prediction = prediction.detach().float()
    nc = prediction.shape[2] - 5
    multi_label = multi_label and nc > 1
    out = []
    for x in prediction:
        x = x[x[:, 4] > conf_thres]
        if not x.shape[0]:
            out.append(torch.zeros((0, 6)))
            continue
        cls_scores = x[:, 5:] * x[:, 4:5]
        box = xywh2xyxy(x[:, :4])
        if multi_label:
            i, j = (cls_scores > conf_thres).nonzero(as_tuple=False).T
            x = torch.cat((box[i], cls_scores[i, j, None], j[:, None].float()), 1)
        else:
            conf, j = cls_scores.max(1, keepdim=True)
            x = torch.cat((box, conf, j.float()), 1)[conf.view(-1) > conf_thres]
        if classes is not None:
            x = x[(x[:, 5:6] == torch.tensor(classes, dtype=x.dtype)).any(1)]
        if not x.shape[0]:
            out.append(torch.zeros((0, 6)))
            continue
        x = x[x[:, 4].argsort(descending=True, stable=True)[:max_nms]]
        offset = x[:, 5:6] * (0 if agnostic else MAX_WH)
        keep = nms(x[:, :4] + offset, x[:, 4], iou_thres, max_keep=max_det)
        out.append(x[keep])
    return out


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
