"""Darknet's post-processing: ``detector test`` (:func:`darknet_detections`) and ``detector valid``
(:func:`darknet_post`, the verifier's), both through the one :func:`do_nms_sort`.

``darknet_detections`` pipeline, as in AlexeyAB/darknet ``get_network_boxes`` + ``do_nms_sort`` (hierarchy ignored):

1. keep predictions with objectness > ``thresh`` (default 0.25);
2. per class, prob = objectness * class score, set to 0 unless prob > ``thresh``;
3. boxes relative to the image: centre x, y, width, height divided by the network input size; for
   ``letter_box=1`` models undone as Darknet's ``correct_yolo_boxes`` does (plain-resize models: the
   network-relative box is already image-relative);
4. ``do_nms_sort(nms=0.45)``: for each class, sort by that class's prob (descending) and zero the prob of
   every later box whose Darknet ``box_iou`` (centre-xywh boxes) with a kept box exceeds ``nms``;
5. one row per (box, class) with prob > ``thresh``: ``class prob x y w h`` (the goldens' ``dets.txt``).

Input: the model's ``forward`` output for ONE image, (N, 4 + 1 + nc) -- xywh in network-input pixels,
objectness, class scores -- or a (1, N, 5 + nc) batch of one.

``darknet_post`` (``detector valid``, see its docstring) differs in thresholds (0.001 / 0.6, hard-coded
in Darknet's ``validate_detector``), box units (image pixels) and clipping.
"""
from __future__ import annotations

import numpy as np
import torch

from .core import greedy_keep, xywh2xyxy

# Darknet's ``validate_detector`` hard-codes these (its ``-thresh`` has no effect there).
VALID_THRESH = 0.001
VALID_NMS = 0.6


def do_nms_sort(boxes: np.ndarray, prob: np.ndarray, nms: float) -> np.ndarray:
    """Darknet's ``do_nms_sort`` on (N, 4) xyxy ``boxes`` and (N, C) class ``prob`` (numpy, in place).

    Per class: boxes with prob > 0 in descending prob order (stable); a box's prob for that class is
    zeroed when its IoU with a kept box of that class exceeds ``nms``. Returns ``prob``.
    """
    for k in np.nonzero((prob > 0).any(0))[0]:
        idx = np.nonzero(prob[:, k] > 0)[0]
        if len(idx) < 2:
            continue
        keep = idx[greedy_keep(boxes[idx], prob[idx, k], nms)]
        lost = np.setdiff1d(idx, keep)
        prob[lost, k] = 0
    return prob


def correct_letterbox(boxes: torch.Tensor, net_wh, image_wh) -> torch.Tensor:
    """Darknet's ``correct_yolo_boxes`` with letter_box=1 on relative (N, 4) centre-xywh boxes."""
    netw, neth = net_wh
    w, h = image_wh
    if netw / w < neth / h:
        new_w, new_h = netw, (h * netw) // w
    else:
        new_h, new_w = neth, (w * neth) // h
    out = boxes.clone()
    out[:, 0] = (boxes[:, 0] - (netw - new_w) / 2.0 / netw) / (new_w / netw)
    out[:, 1] = (boxes[:, 1] - (neth - new_h) / 2.0 / neth) / (new_h / neth)
    out[:, 2] = boxes[:, 2] * netw / new_w
    out[:, 3] = boxes[:, 3] * neth / new_h
    return out


def darknet_detections(pred: torch.Tensor, net_wh, *, thresh: float = 0.25, nms: float = 0.45,
                       letter_box: bool = False, image_wh=None) -> list[tuple[int, float, float, float, float, float]]:
    """Darknet's final detections for one image.

    ``pred``: (N, 5 + nc) or (1, N, 5 + nc) decoded predictions (xywh in network pixels, objectness, class
    scores); ``net_wh``: the network input (width, height); ``image_wh``: the original image size, needed
    only with ``letter_box``. Returns ``[(class, prob, x, y, w, h), ...]`` with the box centre and size
    relative to the image, in Darknet's print order (per kept box, classes ascending); boxes sorted by
    their best probability, descending.
    """
    if pred.dim() == 3:
        if pred.shape[0] != 1:
            from ..errors import UsageError

            raise UsageError(f"darknet_detections takes one image, got a batch of {pred.shape[0]}")
        pred = pred[0]
    pred = pred.detach().to(torch.float32)
    obj = pred[:, 4]
    keep = obj > thresh
    pred = pred[keep]
    obj = obj[keep]
    netw, neth = net_wh
    boxes = pred[:, :4] / torch.tensor([netw, neth, netw, neth], dtype=pred.dtype)
    if letter_box:
        if image_wh is None:
            from ..errors import UsageError

            raise UsageError("letter_box=1 needs image_wh, the original image (width, height)")
        boxes = correct_letterbox(boxes, net_wh, image_wh)
    prob = obj[:, None] * pred[:, 5:]
    prob = torch.where(prob > thresh, prob, torch.zeros_like(prob))
    if nms > 0 and len(boxes):
        p = prob.numpy().copy()
        do_nms_sort(xywh2xyxy(boxes.numpy()), p, nms)
        prob = torch.from_numpy(p)
    best = prob.max(1).values if prob.numel() else torch.zeros(0)
    rows = []
    for i in torch.argsort(best, descending=True, stable=True).tolist():
        for k in torch.nonzero(prob[i] > thresh).flatten().tolist():
            x, y, w, h = boxes[i].tolist()
            rows.append((k, float(prob[i, k]), x, y, w, h))
    return rows


def read_detections(text: str) -> list[tuple[int, float, float, float, float, float]]:
    """Parse ``dets.txt`` text back into rows."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if parts:
            rows.append((int(parts[0]), *map(float, parts[1:6])))
    return rows


def darknet_post(pred: np.ndarray, to_image, orig_hw, thresh=VALID_THRESH, nms=VALID_NMS) -> np.ndarray:
    """One image as Darknet's ``detector valid`` scores it.

    ``pred``: (N, 5 + nc) decoded predictions (xywh in network pixels, objectness, class scores);
    ``to_image`` maps (n, 4) network-pixel xyxy to original-image pixels; ``orig_hw`` = (h, w).
    Boxes with objectness > ``thresh``; per class prob = objectness * class score, zeroed unless
    > ``thresh``; boxes in image pixels (``correct_yolo_boxes`` with relative=0); :func:`do_nms_sort`;
    every (box, class) with prob > 0 is a detection, its box clipped as ``print_cocos`` writes it
    (xmin, ymin >= 0; xmax <= w, ymax <= h). No per-image cap. Returns (n, 6) float32
    x1, y1, x2, y2, prob, class in descending prob order.
    """
    pred = np.asarray(pred, dtype=np.float32)
    pred = pred[pred[:, 4] > thresh]
    if not len(pred):
        return np.zeros((0, 6), np.float32)
    prob = pred[:, 5:] * pred[:, 4:5]
    prob[prob <= thresh] = 0
    boxes = to_image(xywh2xyxy(pred[:, :4]))
    do_nms_sort(boxes, prob, nms)
    i, k = np.nonzero(prob > 0)
    if not len(i):
        return np.zeros((0, 6), np.float32)
    h0, w0 = orig_hw
    b = boxes[i].copy()
    b[:, 0] = np.maximum(b[:, 0], 0)
    b[:, 1] = np.maximum(b[:, 1], 0)
    b[:, 2] = np.minimum(b[:, 2], w0)
    b[:, 3] = np.minimum(b[:, 3], h0)
    d = np.concatenate([b, prob[i, k, None], k[:, None].astype(np.float32)], 1).astype(np.float32)
    return d[np.argsort(-d[:, 4], kind="stable")]
