"""The one greedy NMS and the box helpers every post-processing variant shares.

Everything here works on numpy; :func:`nms` and :func:`xywh2xyxy` also take
torch tensors (torch is imported only when a tensor is given).
"""
from __future__ import annotations

import numpy as np

# Class offset (pixels) YOLOv5 adds to boxes so that one NMS call is class-aware.
MAX_WH = 7680


def xywh2xyxy(x):
    """(..., 4) centre-x, centre-y, w, h -> x1, y1, x2, y2 (torch tensor or numpy array, a new one)."""
    y = x.clone() if hasattr(x, "clone") else np.array(x, copy=True)
    y[..., 0] = x[..., 0] - x[..., 2] / 2
    y[..., 1] = x[..., 1] - x[..., 3] / 2
    y[..., 2] = x[..., 0] + x[..., 2] / 2
    y[..., 3] = x[..., 1] + x[..., 3] / 2
    return y


def clip_boxes(b: np.ndarray, orig_hw) -> np.ndarray:
    """YOLOv5 ``clip_boxes`` on (n, 4) xyxy: x to [0, w], y to [0, h] (in place; returns ``b``)."""
    h0, w0 = orig_hw
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, w0)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, h0)
    return b


def greedy_keep(boxes: np.ndarray, scores: np.ndarray, iou_thres: float, max_keep: int | None = None,
                presorted: bool = False) -> np.ndarray:
    """Greedy NMS over (N, 4) xyxy ``boxes`` and (N,) ``scores`` (numpy); returns kept indices, best first.

    Same rule as ``torchvision.ops.nms``: candidates in descending score order
    (stable for ties; ``presorted``: already in that order), a box is dropped
    when its IoU with a kept box is strictly greater than ``iou_thres``;
    IoU = inter / (area1 + area2 - inter) in the boxes' own dtype. NaN (two
    empty boxes) is not "> thres": kept, as torchvision does. Stops after
    ``max_keep`` kept boxes (the same result as truncating the full list).
    Work is O(kept * N) vectorised: no N x N IoU matrix is built.
    """
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    zero = boxes.dtype.type(0)
    areas = (x2 - x1) * (y2 - y1)
    order = np.arange(len(scores)) if presorted else np.argsort(-scores, kind="stable")
    keep: list[int] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        while order.size:
            i = int(order[0])
            keep.append(i)
            if max_keep is not None and len(keep) >= max_keep:
                break
            rest = order[1:]
            w = np.maximum(zero, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
            h = np.maximum(zero, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
            inter = w * h
            iou = inter / (areas[i] + areas[rest] - inter)
            order = rest[~(iou > iou_thres)]
    return np.asarray(keep, dtype=np.int64)


def nms(boxes, scores, iou_thres: float, max_keep: int | None = None):
    """Greedy NMS (rule of :func:`greedy_keep`) on (N, 4) xyxy torch ``boxes`` and (N,) ``scores``.

    Computed in float32 on the CPU. Returns kept indices as an int64 torch tensor, best first.
    """
    import torch

    if int(boxes.shape[0]) == 0:
        return torch.zeros(0, dtype=torch.int64)
    b = boxes.detach().to(torch.float32).cpu().numpy()
    s = scores.detach().to(torch.float32).cpu().numpy()
    return torch.from_numpy(greedy_keep(b, s, iou_thres, max_keep))


def classwise_keep(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_thres: float,
                   max_keep: int | None = None) -> np.ndarray:
    """Class-aware greedy NMS: the same kept set as one :func:`greedy_keep` over boxes shifted
    by ``label * offset`` (boxes of different classes never overlap), run class by class.

    ``boxes`` (N, 4) are the boxes the IoU is computed on (pass them already offset to reproduce
    an offset implementation's float rounding); ``scores`` must be in descending order already
    (stable ties). Returns kept indices in ascending order (= descending score), at most ``max_keep``.
    """
    kept = [idx[greedy_keep(boxes[idx], scores[idx], iou_thres, presorted=True)]
            for idx in (np.nonzero(labels == c)[0] for c in np.unique(labels))]
    keep = np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.int64)
    return keep[:max_keep] if max_keep is not None else keep
