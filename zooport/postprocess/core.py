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


def box_iou(a, b, eps: float = 0.0, clamp: bool = False):
    """(n, 4) x (m, 4) xyxy -> (n, m) IoU, numpy arrays or torch tensors (in their own dtype).

    union = area_a + area_b - inter, then ``+ eps`` (``clamp=False``: YOLOv5's ``box_iou``-style
    guard) or ``max(union, eps)`` (``clamp=True``: MMDetection's ``bbox_overlaps``); ``eps=0``:
    plain inter / union. The one pairwise IoU (NMS computes its own row by row, :func:`greedy_keep`).
    """
    if hasattr(a, "clamp"):  # torch
        import torch

        lt = torch.maximum(a[:, None, :2], b[None, :, :2])
        rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
        wh = (rb - lt).clamp(min=0)
        inter = wh[..., 0] * wh[..., 1]
    else:
        lt = np.maximum(a[:, None, :2], b[None, :, :2])
        rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
        wh = np.clip(rb - lt, 0, None)
        inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    if eps:
        if clamp:
            union = union.clamp(min=eps) if hasattr(union, "clamp") else np.maximum(union, eps)
        else:
            union = union + eps
    return inter / union


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
    order = np.arange(len(scores)) if presorted else np.argsort(-scores, kind="stable")
    if len(order) <= MATRIX_NMS_MAX:
        return _greedy_by_matrix(boxes[order], iou_thres, max_keep, order)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    zero = boxes.dtype.type(0)
    areas = (x2 - x1) * (y2 - y1)
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


# Up to this many candidates, greedy_keep builds the whole IoU matrix at once (n^2 values, 1 MB at
# 512) and walks it: the same float32 arithmetic element for element, without a numpy round trip per
# kept box, which dominates when most candidates survive (a class at conf 0.001).
MATRIX_NMS_MAX = 512


def _greedy_by_matrix(b: np.ndarray, iou_thres: float, max_keep, order: np.ndarray) -> np.ndarray:
    """:func:`greedy_keep` on boxes ``b`` already in score order; returns ``order[kept]``."""
    # the IoU as box_iou computes it, written out per coordinate: box_iou's (n, n, 2) corner arrays
    # made the verifier's NMS 2.6x slower (16.4 vs 6.3 ms per image, scripts/bench_verify.py's model)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    zero = b.dtype.type(0)
    areas = (x2 - x1) * (y2 - y1)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.maximum(zero, np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]))
        h = np.maximum(zero, np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]))
        inter = w * h
        suppress = inter / (areas[:, None] + areas[None] - inter) > iou_thres
    removed = np.zeros(len(b), bool)
    keep: list[int] = []
    for i in range(len(b)):
        if removed[i]:
            continue
        keep.append(i)
        if max_keep is not None and len(keep) >= max_keep:
            break
        removed |= suppress[i]
    return order[np.asarray(keep, dtype=np.int64)]


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

    With ``max_keep``, only a prefix of the candidates is examined: whether a box survives depends
    only on the higher-ranked boxes of its class, so once a prefix keeps ``max_keep`` boxes its
    first ``max_keep`` are final. The prefix starts at ``4 * max_keep`` and grows, by the kept
    fraction seen so far (at most fourfold), until that holds (at conf 0.001 a YOLO image has
    thousands of candidates and 300 are kept).
    """
    n = len(scores)
    limit = n if max_keep is None else min(n, 4 * max(1, int(max_keep)))
    while True:
        keep = _classwise(boxes[:limit], scores[:limit], labels[:limit], iou_thres)
        if max_keep is None:
            return keep
        if limit >= n or len(keep) >= max_keep:
            return keep[:max_keep]
        # the kept fraction so far predicts how far to look; a quarter more, so that one more try
        # almost always suffices (at least 256 more, at most 4x)
        want = int(np.ceil(limit * max_keep / max(1, len(keep)) * 1.25))
        limit = min(n, 4 * limit, max(limit + 256, want))


def _classwise(boxes, scores, labels, iou_thres) -> np.ndarray:
    """Kept indices (ascending) of class-wise greedy NMS on score-ordered candidates: the classes
    with at most :data:`SMALL_CLASS` candidates all at once by :func:`_keep_by_pairs`, each larger
    class by :func:`greedy_keep` (a Python call per class costs more than a small class's work)."""
    n = len(labels)
    if n == 0:
        return np.zeros(0, np.int64)
    by_class = np.argsort(labels, kind="stable")  # class blocks, score order inside each
    lab = labels[by_class]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    sizes = np.diff(np.r_[starts, n])
    small = sizes <= SMALL_CLASS
    kept = []
    if small.any():
        sel = np.concatenate([by_class[s:s + k] for s, k in zip(starts[small], sizes[small])])
        keep = _keep_by_pairs(boxes[sel], sizes[small], iou_thres)
        if keep is None:  # a chain too long for the rounds: the small classes one by one too
            small[:] = False
        else:
            kept.append(sel[keep])
    for s, k in zip(starts[~small], sizes[~small]):
        idx = by_class[s:s + k]
        kept.append(idx[greedy_keep(boxes[idx], scores[idx], iou_thres, presorted=True)])
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.int64)


# Classes of at most this many candidates go through _keep_by_pairs together (measured on
# yolov5n at conf 0.001: half the classes of an image have fewer than 25 candidates, a few have
# hundreds), and the rounds it runs before handing back to the class-by-class loop (a round
# settles at least one box; real images settle in a handful, a chain of overlaps needs one per link).
SMALL_CLASS = 64
ROUNDS_MAX = 24


def _keep_by_pairs(boxes, sizes, iou_thres):
    """Greedy NMS inside consecutive blocks of ``sizes`` score-ordered boxes, all blocks at once;
    returns kept positions (ascending), or None if :data:`ROUNDS_MAX` rounds do not settle them.

    Every (higher-ranked i, lower-ranked j) pair of a block gets the IoU of :func:`greedy_keep`
    (same float32 operations); greedy NMS keeps j exactly when no *kept* i suppresses it. That is
    settled in rounds over the suppressing pairs: a box is removed once a kept box suppresses it,
    kept once every box that would suppress it is removed.
    """
    n = len(boxes)
    starts = np.cumsum(sizes) - sizes
    partners = np.repeat(starts + sizes, sizes) - np.arange(n) - 1  # later boxes of the same block
    i = np.repeat(np.arange(n), partners)
    j = i + 1 + np.arange(len(i)) - np.repeat(np.cumsum(partners) - partners, partners)
    b = boxes
    zero = b.dtype.type(0)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.maximum(zero, np.minimum(b[i, 2], b[j, 2]) - np.maximum(b[i, 0], b[j, 0]))
        h = np.maximum(zero, np.minimum(b[i, 3], b[j, 3]) - np.maximum(b[i, 1], b[j, 1]))
        inter = w * h
        hit = inter / (area[i] + area[j] - inter) > iou_thres
    src, dst = i[hit], j[hit]
    state = np.zeros(n, np.int8)  # 0 open, 1 kept, 2 removed
    for _ in range(ROUNDS_MAX):
        open_ = state == 0
        if not open_.any():
            return np.flatnonzero(state == 1)
        suppressed = np.zeros(n, bool)
        suppressed[dst[state[src] == 1]] = True
        threats = np.bincount(dst[state[src] != 2], minlength=n)
        state[open_ & suppressed] = 2
        state[open_ & ~suppressed & (threats == 0)] = 1
    return np.flatnonzero(state == 1) if not (state == 0).any() else None
