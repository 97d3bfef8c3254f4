"""mmcv's CPU ``soft_nms`` (linear / gaussian / naive score decay), the post-processing of CornerNet.

Boxes (N, 4) xyxy and scores (N,): repeatedly the best remaining box is selected (first maximum in
the working order), every later box's score is multiplied by a weight from its IoU with it
(gaussian exp(-iou^2 / sigma); linear 1 - iou when iou >= thr; naive 0 when iou >= thr) and boxes
falling below ``min_score`` are dropped by moving the last box into their place, exactly as mmcv
does (that order decides among equal scores later). Returns (kept indices, their decayed scores),
in selection order.
"""
from __future__ import annotations

import numpy as np
import torch

METHODS = {"naive": 0, "linear": 1, "gaussian": 2}


def soft_nms(boxes, scores, iou_threshold=0.3, sigma=0.5, min_score=1e-3, method="linear", offset=0):
    if method not in METHODS:
        raise ValueError(f"soft_nms method {method!r} not in {sorted(METHODS)}")
    code = METHODS[method]
    b = boxes.detach().cpu().to(torch.float32).numpy().copy()
    sc = scores.detach().cpu().to(torch.float32).numpy().copy()
    n = len(sc)
    inds = np.arange(n)
    area = (b[:, 2] - b[:, 0] + offset) * (b[:, 3] - b[:, 1] + offset)
    f0, thr, sig, mins = np.float32(0), np.float32(iou_threshold), np.float32(sigma), np.float32(min_score)
    i = 0
    while i < n:
        m = i + int(np.argmax(sc[i:n]))  # first maximum, as mmcv's strict "<" scan
        for arr in (b, sc, area, inds):
            arr[[i, m]] = arr[[m, i]]
        rest = slice(i + 1, n)
        xx1 = np.maximum(b[i, 0], b[rest, 0])
        yy1 = np.maximum(b[i, 1], b[rest, 1])
        xx2 = np.minimum(b[i, 2], b[rest, 2])
        yy2 = np.minimum(b[i, 3], b[rest, 3])
        inter = np.maximum(f0, xx2 - xx1 + offset) * np.maximum(f0, yy2 - yy1 + offset)
        ovr = inter / (area[i] + area[rest] - inter)
        if code == 2:
            w = np.exp(-(ovr * ovr) / sig).astype(np.float32)
        elif code == 1:
            w = np.where(ovr >= thr, 1 - ovr, np.float32(1)).astype(np.float32)
        else:
            w = np.where(ovr >= thr, f0, np.float32(1)).astype(np.float32)
        sc[rest] = sc[rest] * w
        dead = np.zeros(n, dtype=bool)
        dead[rest] = sc[rest] < mins
        if dead.any():  # mmcv's compaction: a dropped box is replaced by the current last one
            pos = i + 1
            while pos < n:
                if dead[pos]:
                    last = n - 1
                    for arr in (b, sc, area, inds, dead):
                        arr[pos] = arr[last]
                    n -= 1
                else:
                    pos += 1
        i += 1
    return torch.from_numpy(inds[:n].copy()), torch.from_numpy(sc[:n].copy())
