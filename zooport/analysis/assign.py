"""Training-time assignment: which anchors / points become positives for each ground-truth box.

All boxes are xyxy in network-input pixels; a level is ``(stride, H, W, anchors)`` with ``anchors`` an
(A, 2) array of anchor widths/heights in pixels (empty for anchor-free heads). A positive is
``(gt, level, anchor, y, x)``: ground-truth index, level index, anchor index (0 for points), cell row, column.

* ``yolov3`` (Darknet / MMDetection YOLOv3): the one anchor over all levels with the best IoU between
  centred (w, h) boxes, at the cell holding the box centre.
* ``yolov5`` (YOLOv5 ``build_targets``): every anchor with ``max(r, 1 / r) < anchor_t`` (r = gt wh / anchor
  wh, worst of w and h) on every level, at the centre cell and the two neighbours nearest the centre
  (offset 0.5: the left cell when the centre's fractional x < 0.5 and x > 1, the right one when its
  distance to the right edge has fraction < 0.5 and exceeds 1; likewise in y).
* ``maxiou`` (MMDetection ``MaxIoUAssigner``, RetinaNet: pos 0.5, neg 0.4, min_pos 0): an anchor is positive
  for its best GT when that IoU >= ``pos_iou``; then each GT also takes every anchor whose IoU equals its own
  best IoU (when >= ``min_pos_iou``).
* ``fcos``: a point is positive when inside the box (or, with ``center_radius``, within ``radius * stride`` of
  the box centre and inside the box) and its largest distance to the box sides lies in the level's regress
  range ``(lo, hi]``; several boxes: the smallest area wins.
* ``atss`` (Zhang et al.): per level the ``topk`` anchors nearest the box centre are candidates; IoU threshold =
  mean + std of their IoUs; positives are candidates with IoU >= threshold whose centre lies strictly inside the
  box; an anchor claimed by several boxes goes to the highest IoU.

Anchor boxes of a level are centred at ``((x + offset) * stride, (y + offset) * stride)``; ``offset`` is the
level's optional fifth element (default 0.5, the cell centre; MMDetection's anchor generators use 0).
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError
from .anchors import iou_wh

ASSIGNERS = ("yolov3", "yolov5", "maxiou", "fcos", "atss")
FCOS_RANGES = ((-1, 64), (64, 128), (128, 256), (256, 512), (512, 1e8))


def box_iou(a, b):
    """(n, m) IoU of xyxy boxes (float64)."""
    from ..postprocess.core import box_iou as iou

    return iou(np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4))


def level_anchors(level):
    """All anchor boxes of a level, (H * W * A, 4) xyxy, ordered y, x, anchor; and their (y, x, a) index."""
    s, H, W, anc = level[:4]
    off = level[4] if len(level) > 4 else 0.5
    anc = np.asarray(anc, np.float64).reshape(-1, 2)
    ys, xs, aa = np.meshgrid(np.arange(H), np.arange(W), np.arange(len(anc)), indexing="ij")
    cx, cy = (xs + off) * s, (ys + off) * s
    w, h = anc[aa, 0], anc[aa, 1]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1).reshape(-1, 4)
    return boxes, np.stack([ys.ravel(), xs.ravel(), aa.ravel()], 1)


def _yolov3(gt, levels):
    all_anc = np.concatenate([np.asarray(lv[3], np.float64).reshape(-1, 2) for lv in levels])
    owner = [(li, a) for li, lv in enumerate(levels) for a in range(len(np.asarray(lv[3]).reshape(-1, 2)))]
    wh = np.stack([gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]], 1)
    best = iou_wh(wh, all_anc).argmax(1)
    out = []
    for g, b in enumerate(best):
        li, a = owner[b]
        s, H, W = levels[li][:3]
        cx, cy = (gt[g, 0] + gt[g, 2]) / 2, (gt[g, 1] + gt[g, 3]) / 2
        out.append((g, li, a, min(int(cy // s), H - 1), min(int(cx // s), W - 1)))
    return out


def _yolov5(gt, levels, anchor_t=4.0):
    out = []
    for li, (s, H, W, anc, *_o) in enumerate(levels):
        anc = np.asarray(anc, np.float64).reshape(-1, 2)
        for g in range(len(gt)):
            gx, gy = (gt[g, 0] + gt[g, 2]) / 2 / s, (gt[g, 1] + gt[g, 3]) / 2 / s
            gw, gh = (gt[g, 2] - gt[g, 0]), (gt[g, 3] - gt[g, 1])
            ix, iy = W - gx, H - gy
            cells = [(0, 0)]
            if gx % 1 < 0.5 and gx > 1:
                cells.append((0, -1))
            if gy % 1 < 0.5 and gy > 1:
                cells.append((-1, 0))
            if ix % 1 < 0.5 and ix > 1:
                cells.append((0, 1))
            if iy % 1 < 0.5 and iy > 1:
                cells.append((1, 0))
            for a in range(len(anc)):
                r = np.array([gw / anc[a, 0], gh / anc[a, 1]])
                if np.maximum(r, 1 / r).max() >= anchor_t:
                    continue
                for dy, dx in cells:
                    y = int(np.clip(int(gy) + dy, 0, H - 1))
                    x = int(np.clip(int(gx) + dx, 0, W - 1))
                    out.append((g, li, a, y, x))
    return out


def _maxiou(gt, levels, pos_iou=0.5, neg_iou=0.4, min_pos_iou=0.0):
    boxes, idx, lvl = [], [], []
    for li, lv in enumerate(levels):
        b, i = level_anchors(lv)
        boxes.append(b)
        idx.append(i)
        lvl.append(np.full(len(b), li))
    boxes, idx, lvl = np.concatenate(boxes), np.concatenate(idx), np.concatenate(lvl)
    iou = box_iou(gt, boxes)  # (G, N)
    assigned = np.full(boxes.shape[0], -1)
    best_gt, best_iou = iou.argmax(0), iou.max(0)
    assigned[best_iou >= pos_iou] = best_gt[best_iou >= pos_iou]
    for g in range(len(gt)):
        m = iou[g].max()
        if m >= min_pos_iou and m > 0:
            assigned[iou[g] == m] = g
    return [(int(assigned[n]), int(lvl[n]), int(idx[n, 2]), int(idx[n, 0]), int(idx[n, 1]))
            for n in np.nonzero(assigned >= 0)[0]]


def _fcos(gt, levels, ranges=FCOS_RANGES, center_radius=None):
    out = []
    area = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
    for li, (s, H, W, *_rest) in enumerate(levels):
        lo, hi = ranges[min(li, len(ranges) - 1)]
        ys, xs = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
        px, py = (xs.ravel() + 0.5) * s, (ys.ravel() + 0.5) * s
        l_, t_ = px[:, None] - gt[None, :, 0], py[:, None] - gt[None, :, 1]
        r_, b_ = gt[None, :, 2] - px[:, None], gt[None, :, 3] - py[:, None]
        d = np.stack([l_, t_, r_, b_], -1)
        inside = d.min(-1) > 0
        if center_radius is not None:
            cx, cy = (gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2
            rad = center_radius * s
            inside &= (np.abs(px[:, None] - cx[None]) < rad) & (np.abs(py[:, None] - cy[None]) < rad)
        mx = d.max(-1)
        ok = inside & (mx > lo) & (mx <= hi)
        cost = np.where(ok, area[None], np.inf)
        g = cost.argmin(1)
        for n in np.nonzero(np.isfinite(cost.min(1)))[0]:
            out.append((int(g[n]), li, 0, int(ys.ravel()[n]), int(xs.ravel()[n])))
    return out


def _atss(gt, levels, topk=9):
    boxes, idx, lvl = [], [], []
    cand = [[] for _ in range(len(gt))]
    off = 0
    for li, lv in enumerate(levels):
        b, i = level_anchors(lv)
        ctr = (b[:, :2] + b[:, 2:]) / 2
        gc = (gt[:, :2] + gt[:, 2:]) / 2
        dist = np.sqrt(((ctr[None] - gc[:, None]) ** 2).sum(-1))  # (G, N_l)
        k = min(topk, len(b))
        for g in range(len(gt)):
            cand[g].extend((off + np.argsort(dist[g], kind="stable")[:k]).tolist())
        boxes.append(b)
        idx.append(i)
        lvl.append(np.full(len(b), li))
        off += len(b)
    boxes, idx, lvl = np.concatenate(boxes), np.concatenate(idx), np.concatenate(lvl)
    iou = box_iou(gt, boxes)
    ctr = (boxes[:, :2] + boxes[:, 2:]) / 2
    best = np.full(len(boxes), -1)
    best_iou = np.full(len(boxes), -np.inf)
    for g in range(len(gt)):
        c = np.asarray(cand[g])
        v = iou[g, c]
        thr = v.mean() + v.std(ddof=1) if len(v) > 1 else v.mean()
        inside = (ctr[c, 0] > gt[g, 0]) & (ctr[c, 0] < gt[g, 2]) & (ctr[c, 1] > gt[g, 1]) & (ctr[c, 1] < gt[g, 3])
        for n in c[(v >= thr) & inside]:
            if iou[g, n] > best_iou[n]:
                best[n], best_iou[n] = g, iou[g, n]
    return [(int(best[n]), int(lvl[n]), int(idx[n, 2]), int(idx[n, 0]), int(idx[n, 1])) for n in np.nonzero(best >= 0)[0]]


def assign(kind: str, gt, levels, **kw) -> list:
    """Positives ``[(gt, level, anchor, y, x), ...]`` sorted, for assigner ``kind`` (module doc)."""
    gt = np.asarray(gt, np.float64).reshape(-1, 4)
    if kind not in ASSIGNERS:
        raise UsageError(f"assigner must be one of {', '.join(ASSIGNERS)}, got {kind!r}")
    if not len(gt):
        return []
    fn = {"yolov3": _yolov3, "yolov5": _yolov5, "maxiou": _maxiou, "fcos": _fcos, "atss": _atss}[kind]
    return sorted(set(fn(gt, levels, **kw)))
