"""YOLOv5's post-processing: ``non_max_suppression`` (torch, for inference) and the per-image numpy
variant the verifier runs (YOLOv5 v7.0 ``val.py``: multi-label, class-aware, then ``scale_boxes``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .core import MAX_WH, classwise_keep, clip_boxes, nms, xywh2xyxy

if TYPE_CHECKING:  # annotations only: torch is imported by the functions that take tensors
    import torch


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
    import torch

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


def yolov5_nms(pred: np.ndarray, conf=0.001, iou=0.65, max_det=300, max_nms=30000) -> np.ndarray:
    """YOLOv5 v7.0 ``non_max_suppression(multi_label=True, agnostic=False)`` for one image, in numpy.

    ``pred``: (N, 5 + nc) float32 decoded predictions (xywh, objectness, class scores). Same result
    as :func:`non_max_suppression` (IoU on the 7680 px class-offset float32 boxes, like torchvision),
    computed class by class (:func:`~zooport.postprocess.core.classwise_keep`: the same kept set, a
    fraction of the work). Returns (n, 6) float32 x1, y1, x2, y2, score, class, descending score.
    """
    x = pred[pred[:, 4] > conf]
    if not len(x):
        return np.zeros((0, 6), np.float32)
    scores = x[:, 5:] * x[:, 4:5]
    i, j = np.nonzero(scores > conf)
    if not len(i):
        return np.zeros((0, 6), np.float32)
    s = scores[i, j]
    order = np.argsort(-s, kind="stable")[:max_nms]
    i, j, s = i[order], j[order], s[order]
    boxes = xywh2xyxy(x[i, :4])
    off = boxes + (j.astype(np.float32) * np.float32(MAX_WH))[:, None]
    keep = classwise_keep(off, s, j, iou, max_det)
    return np.concatenate([boxes[keep], s[keep, None], j[keep, None].astype(np.float32)], 1).astype(np.float32)


def yolov5_post(preds, to_image, orig_hws, conf=0.001, iou=0.65, max_det=300) -> list:
    """Batch of decoded predictions (B, N, 5 + nc) numpy -> list of (n, 6) numpy in image pixels.

    ``to_image``: per image a function mapping (n, 4) input-pixel xyxy to original-image pixels;
    boxes are then clipped to the image (``orig_hws``: per image (h, w)).
    """
    res = []
    for p, fn, hw in zip(np.asarray(preds, dtype=np.float32), to_image, orig_hws):
        o = yolov5_nms(p, conf, iou, max_det)
        if len(o):
            o[:, :4] = clip_boxes(fn(o[:, :4]), hw)
        res.append(o.reshape(-1, 6))
    return res
