"""Preprocessing and post-processing of the two reference pipelines, on hand-made inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from zooport.postprocess import darknet_post, yolov5_nms
from zooport.eval.preprocess import (darknet_resize, letterbox, load_resize, preprocess_letterbox,
                                     rect_batch_shapes, unletterbox_boxes, unresize_boxes)


def _darknet_resize_loop(im, w, h):
    """Line-by-line transcription of Darknet's image.c resize_image (CHW loops), float32."""
    H, W, C = im.shape
    f = np.float32
    part = np.zeros((H, w, C), f)
    out = np.zeros((h, w, C), f)
    w_scale = f(W - 1) / f(w - 1)
    h_scale = f(H - 1) / f(h - 1)
    for r in range(H):
        for c in range(w):
            if c == w - 1 or W == 1:
                part[r, c] = im[r, W - 1]
            else:
                sx = f(c) * w_scale
                ix = int(sx)
                dx = f(sx - f(ix))
                part[r, c] = (f(1) - dx) * im[r, ix] + dx * im[r, ix + 1]
    for r in range(h):
        sy = f(r) * h_scale
        iy = int(sy)
        dy = f(sy - f(iy))
        out[r] = (f(1) - dy) * part[iy]
        if r == h - 1 or H == 1:
            continue
        out[r] = out[r] + dy * part[iy + 1]
    return out


@pytest.mark.parametrize("shape", [(37, 53, 16, 20), (10, 7, 23, 19), (120, 90, 41, 41), (5, 5, 5, 5)])
def test_darknet_resize_matches_the_c_loops(shape):
    H, W, h, w = shape
    im = np.random.default_rng(H * W).random((H, W, 3), dtype=np.float32)
    assert np.array_equal(darknet_resize(im, w, h), _darknet_resize_loop(im, w, h))


def test_darknet_resize_is_not_opencv():
    import cv2

    im = np.random.default_rng(1).random((48, 64, 3), dtype=np.float32)
    ours = darknet_resize(im, 20, 20)
    cv = cv2.resize(im, (20, 20), interpolation=cv2.INTER_LINEAR)
    assert np.abs(ours - cv).max() > 0.05
    # Darknet samples corners exactly: x = c * (W-1)/(w-1)
    assert ours[0, 0] == pytest.approx(im[0, 0]) and ours[0, -1] == pytest.approx(im[0, -1])


def test_rect_batch_shapes_by_hand():
    # (h, w): A .75, B .667, C 1.333, D 1.0 -> sorted B, A, D, C
    order, shapes = rect_batch_shapes([(480, 640), (427, 640), (640, 480), (500, 500)], 640, 32, 2)
    assert order.tolist() == [1, 0, 3, 2]
    # [B, A]: max ar .75 < 1 -> [.75, 1] * 20 + .5 = [15.5, 20.5] -> ceil * 32 = [512, 672]
    # [D, C]: min ar 1.0 is not > 1 -> [1, 1] -> [21, 21] * 32
    assert shapes.tolist() == [[512, 672], [672, 672]]


def test_letterbox_and_inverse_by_hand():
    img = np.zeros((480, 640, 3), np.uint8)
    out, r, (dw, dh) = letterbox(img, (512, 672))
    assert out.shape == (512, 672, 3) and r == 1.0 and (dw, dh) == (16.0, 16.0)
    assert (out[:16] == 114).all() and (out[16:496, 16:656] == 0).all() and (out[:, :16] == 114).all()
    # odd padding: 31 rows -> 15 on top, 16 below (YOLOv5's round(d -+ 0.1))
    out, _, (_, dh) = letterbox(np.zeros((481, 640, 3), np.uint8), (512, 640))
    assert dh == 15.5 and (out[14] == 114).all() and (out[15] == 0).all() and (out[496] == 114).all()
    b = unletterbox_boxes(np.array([[26, 36, 126, 236], [0, 0, 700, 700]], np.float32), ((1.0, 1.0), (16, 16)),
                          (480, 640))
    assert b.tolist() == [[10, 20, 110, 220], [0, 0, 640, 480]]  # shifted, then clipped
    # a shrunk image: gain .5, pad (0, 80)
    b = unletterbox_boxes(np.array([[10, 90, 20, 100]], np.float32), ((0.5, 0.5), (0, 80)), (960, 1280))
    assert b.tolist() == [[20, 20, 40, 40]]
    assert unresize_boxes(np.array([[10, 10, 50, 20]], np.float32), (100, 100), (300, 200)).tolist() == \
        [[20, 30, 100, 60]]


def test_load_resize_truncates_like_yolov5_v7():
    # 334 x 500 enlarged to long side 640: r = 1.28, 334 * 1.28 = 427.52 -> v7.0 keeps int() = 427 (ceil,
    # from a later release, would give 428); 1200 x 1600 shrunk: r = .4 -> 480 x 640 exactly.
    assert load_resize(np.zeros((334, 500, 3), np.uint8), 640).shape == (427, 640, 3)
    assert load_resize(np.zeros((1200, 1600, 3), np.uint8), 640).shape == (480, 640, 3)
    # the gain that maps boxes back is h / h0 of the truncated size, as in YOLOv5's shapes[si][1]
    _, (gain, _pad) = preprocess_letterbox(np.zeros((334, 500, 3), np.uint8), (480, 672), 640)
    assert gain == (427 / 334, 640 / 500)


def test_darknet_post_by_hand():
    # net 100x100, image 200 wide x 100 high (x scale 2). Rows: xywh (net px), obj, cls0, cls1
    pred = np.array([
        [50, 50, 40, 40, 0.9, 0.9, 0.1],    # probs .81 / .09
        [52, 50, 40, 40, 0.8, 0.9, 0.5],    # probs .72 / .40; IoU with row 0 in image px = 3040/3360
        [10, 10, 30, 30, 0.004, 1, 1],      # objectness below thresh: no box at all
        [90, 50, 40, 40, 0.5, 0.009, 0],    # prob .0045 <= thresh: zeroed, no detection
        [95, 95, 20, 20, 0.9, 0, 0.9],      # class 1 .81, box runs off the image: clipped
    ], np.float32)
    d = darknet_post(pred, lambda b: unresize_boxes(b, (100, 100), (100, 200)), (100, 200), 0.005, 0.45)
    got = sorted((int(c), round(float(s), 4), [round(float(v), 3) for v in b]) for *b, s, c in d)
    # class 0: row 1 (.72) suppressed by row 0 (.81); class 1: row 1 (.40) kept, row 0 (.09) suppressed
    assert got == [(0, 0.81, [60, 30, 140, 70]), (1, 0.4, [64, 30, 144, 70]), (1, 0.81, [170, 85, 200, 100])]


@pytest.mark.slow
def test_yolov5_nms_equals_reference_implementation():
    from zooport.postprocess import non_max_suppression

    rng = np.random.default_rng(0)
    n, nc = 3000, 12
    p = np.zeros((n, 5 + nc), np.float32)
    p[:, :2] = rng.random((n, 2)) * 640
    p[:, 2:4] = rng.random((n, 2)) * 150 + 4
    p[:, 4] = rng.random(n) ** 2
    p[:, 5:] = rng.random((n, nc)) ** 4
    for max_det in (300, 20):
        ref = non_max_suppression(torch.from_numpy(p[None]), 0.001, 0.65, multi_label=True, max_det=max_det)[0]
        ours = yolov5_nms(p, 0.001, 0.65, max_det)
        assert ours.shape == tuple(ref.shape) and np.array_equal(ours, ref.numpy())


@pytest.mark.parametrize("max_keep", [1, 7, 88, 500, None])
def test_classwise_keep_prefix_equals_one_offset_nms(max_keep):
    """classwise_keep looks only at a growing score-ordered prefix when max_keep is set; its result must
    equal one greedy NMS over class-offset boxes. Clusters of near-duplicates make most candidates
    suppressed, so the first 4 * max_keep candidates keep fewer than max_keep and the prefix must grow."""
    from zooport.postprocess import MAX_WH, classwise_keep, greedy_keep

    rng = np.random.default_rng(1)
    centres = rng.random((30, 2)) * 600
    n = 2400
    c = centres[rng.integers(0, 30, n)] + rng.normal(0, 2, (n, 2))
    wh = rng.random((n, 2)) * 10 + 60
    boxes = np.concatenate([c - wh / 2, c + wh / 2], 1).astype(np.float32)
    labels = rng.integers(0, 3, n)
    scores = np.sort(rng.random(n).astype(np.float32))[::-1].copy()
    off = boxes + (labels.astype(np.float32) * np.float32(MAX_WH))[:, None]
    ref = greedy_keep(off, scores, 0.5, max_keep, presorted=True)
    got = classwise_keep(off, scores, labels, 0.5, max_keep)
    assert max_keep is None or len(ref) == min(max_keep, len(greedy_keep(off, scores, 0.5, presorted=True)))
    assert np.array_equal(got, np.sort(ref))
    if max_keep in (88, 500):  # the cases meant to make the prefix grow really do
        assert len(greedy_keep(off[:4 * max_keep], scores[:4 * max_keep], 0.5, presorted=True)) < max_keep
