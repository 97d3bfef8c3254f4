"""zooport analyze assign: every assigner against a brute-force loop written here, on hand-made boxes."""
from __future__ import annotations

import math

import pytest

from zooport.analysis.assign import assign

GT = [[10, 12, 50, 60], [100, 40, 230, 200], [5, 150, 21, 170], [60, 60, 64, 66]]
YOLO_LEVELS = [(8, 32, 32, [[10, 13], [16, 30], [33, 23]]), (16, 16, 16, [[30, 61], [62, 45], [59, 119]]),
               (32, 8, 8, [[116, 90], [156, 198], [373, 326]])]


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _anchor_boxes(levels):
    """(level, anchor, y, x, box) for every anchor position, by plain loops."""
    for li, (s, H, W, anc) in enumerate(levels):
        for y in range(H):
            for x in range(W):
                for a, (w, h) in enumerate(anc):
                    cx, cy = (x + 0.5) * s, (y + 0.5) * s
                    yield li, a, y, x, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def test_yolov3_best_anchor():
    want = set()
    for g, b in enumerate(GT):
        w, h = b[2] - b[0], b[3] - b[1]
        best = None
        for li, (s, H, W, anc) in enumerate(YOLO_LEVELS):
            for a, (aw, ah) in enumerate(anc):
                inter = min(w, aw) * min(h, ah)
                iou = inter / (w * h + aw * ah - inter)
                if best is None or iou > best[0]:
                    best = (iou, li, a, s)
        _, li, a, s = best
        want.add((g, li, a, int(((b[1] + b[3]) / 2) // s), int(((b[0] + b[2]) / 2) // s)))
    assert set(assign("yolov3", GT, YOLO_LEVELS)) == want


def test_yolov5_ratio_rule_and_neighbours():
    want = set()
    for g, b in enumerate(GT):
        for li, (s, H, W, anc) in enumerate(YOLO_LEVELS):
            gx, gy = (b[0] + b[2]) / 2 / s, (b[1] + b[3]) / 2 / s
            for a, (aw, ah) in enumerate(anc):
                rw, rh = (b[2] - b[0]) / aw, (b[3] - b[1]) / ah
                if max(rw, 1 / rw, rh, 1 / rh) >= 4.0:
                    continue
                cx, cy = int(gx), int(gy)
                want.add((g, li, a, cy, cx))
                if gx - math.floor(gx) < 0.5 and gx > 1:
                    want.add((g, li, a, cy, cx - 1))
                if gy - math.floor(gy) < 0.5 and gy > 1:
                    want.add((g, li, a, cy - 1, cx))
                if (W - gx) - math.floor(W - gx) < 0.5 and W - gx > 1:
                    want.add((g, li, a, cy, cx + 1))
                if (H - gy) - math.floor(H - gy) < 0.5 and H - gy > 1:
                    want.add((g, li, a, cy + 1, cx))
    got = set(assign("yolov5", GT, YOLO_LEVELS))
    assert got == want and len(got) > len(GT)


RETINA_LEVELS = [(8, 32, 32, [[32, 32], [45, 22], [22, 45]]), (16, 16, 16, [[64, 64], [90, 45], [45, 90]]),
                 (32, 8, 8, [[128, 128], [181, 90], [90, 181]])]


def test_retinanet_maxiou():
    anchors = list(_anchor_boxes(RETINA_LEVELS))
    owner = {}
    for li, a, y, x, box in anchors:
        ious = [_iou(box, g) for g in GT]
        m = max(ious)
        if m >= 0.5:
            owner[(li, a, y, x)] = ious.index(m)
    for g, gb in enumerate(GT):  # low-quality matches: every anchor at the GT's own best IoU
        ious = [_iou(box, gb) for *_k, box in anchors]
        m = max(ious)
        for (li, a, y, x, _b), v in zip(anchors, ious):
            if m > 0 and v == m:
                owner[(li, a, y, x)] = g
    want = {(g, li, a, y, x) for (li, a, y, x), g in owner.items()}
    got = set(assign("maxiou", GT, RETINA_LEVELS))
    assert got == want and {g for g, *_ in got} == {0, 1, 2, 3}


FCOS_LEVELS = [(8, 32, 32, []), (16, 16, 16, []), (32, 8, 8, [])]


@pytest.mark.parametrize("radius", [None, 1.5])
def test_fcos_points(radius):
    ranges = [(-1, 64), (64, 128), (128, 256)]
    want = set()
    for li, (s, H, W, _) in enumerate(FCOS_LEVELS):
        for y in range(H):
            for x in range(W):
                px, py = (x + 0.5) * s, (y + 0.5) * s
                best = None
                for g, b in enumerate(GT):
                    d = (px - b[0], py - b[1], b[2] - px, b[3] - py)
                    if min(d) <= 0:
                        continue
                    if radius is not None:
                        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
                        if not (abs(px - cx) < radius * s and abs(py - cy) < radius * s):
                            continue
                    if not ranges[li][0] < max(d) <= ranges[li][1]:
                        continue
                    area = (b[2] - b[0]) * (b[3] - b[1])
                    if best is None or area < best[0]:
                        best = (area, g)
                if best:
                    want.add((best[1], li, 0, y, x))
    got = set(assign("fcos", GT, FCOS_LEVELS, ranges=ranges, center_radius=radius))
    assert got == want and got


def test_atss():
    levels = [(8, 32, 32, [[64, 64]]), (16, 16, 16, [[128, 128]]), (32, 8, 8, [[256, 256]])]
    anchors = list(_anchor_boxes(levels))
    claim = {}
    for g, b in enumerate(GT):
        gc = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
        cands = []
        for li in range(len(levels)):
            lv = [(math.dist(gc, ((k[0] + k[2]) / 2, (k[1] + k[3]) / 2)), n)
                  for n, (l_, _a, _y, _x, k) in enumerate(anchors) if l_ == li]
            cands += [n for _d, n in sorted(lv, key=lambda t: t[0])[:9]]
        ious = [_iou(anchors[n][4], b) for n in cands]
        mean = sum(ious) / len(ious)
        std = math.sqrt(sum((v - mean) ** 2 for v in ious) / (len(ious) - 1))
        for n, v in zip(cands, ious):
            k = anchors[n][4]
            cx, cy = (k[0] + k[2]) / 2, (k[1] + k[3]) / 2
            if v >= mean + std and b[0] < cx < b[2] and b[1] < cy < b[3]:
                if n not in claim or v > claim[n][0]:
                    claim[n] = (v, g)
    want = {(g, anchors[n][0], anchors[n][1], anchors[n][2], anchors[n][3]) for n, (_v, g) in claim.items()}
    got = set(assign("atss", GT, levels))
    assert got == want and got
