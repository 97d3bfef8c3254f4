"""The image ``zooport export onnx --check`` runs on, drawn here rather than shipped as a file.

A synthetic street scene (sky, ground, a stop sign on a pole, a wall clock) drawn from primitives, so
it is ours (same licence as zooport), needs no download and no binary in the package. COCO detectors
find objects on it (yolov3-tiny: stop sign and clock; yolov5n: stop sign), so an NMS graph checked on
it has detections to compare. Deterministic: the same pixels on every machine with the same OpenCV.
"""
from __future__ import annotations

import math

import numpy as np

H, W = 320, 480


def _octagon(cx: int, cy: int, r: float) -> np.ndarray:
    return np.array([(cx + r * math.cos(math.pi / 8 + k * math.pi / 4), cy + r * math.sin(math.pi / 8 + k * math.pi / 4))
                     for k in range(8)], np.int32)


def draw_check_image() -> np.ndarray:
    """(320, 480, 3) BGR uint8."""
    import cv2

    img = np.empty((H, W, 3), np.uint8)
    for y in range(H):  # gradient sky, flat ground
        img[y, :] = (230 - y // 4, 200 - y // 6, 170 - y // 8) if y < 200 else (90, 110, 120)
    cx, cy, r = 130, 120, 70  # stop sign on a pole
    cv2.rectangle(img, (cx - 6, cy), (cx + 6, H), (80, 80, 80), -1)
    cv2.fillPoly(img, [_octagon(cx, cy, r)], (255, 255, 255))
    cv2.fillPoly(img, [_octagon(cx, cy, r - 6)], (30, 30, 200))
    cv2.putText(img, "STOP", (cx - 52, cy + 15), cv2.FONT_HERSHEY_DUPLEX, 1.3, (255, 255, 255), 4, cv2.LINE_AA)
    kx, ky, kr = 360, 110, 60  # wall clock
    cv2.circle(img, (kx, ky), kr + 6, (40, 40, 40), -1)
    cv2.circle(img, (kx, ky), kr, (245, 245, 245), -1)
    for k in range(12):
        a = k * math.pi / 6
        p1 = (int(kx + (kr - 12) * math.cos(a)), int(ky + (kr - 12) * math.sin(a)))
        p2 = (int(kx + (kr - 3) * math.cos(a)), int(ky + (kr - 3) * math.sin(a)))
        cv2.line(img, p1, p2, (20, 20, 20), 3)
    cv2.line(img, (kx, ky), (kx + 30, ky - 25), (10, 10, 10), 5)
    cv2.line(img, (kx, ky), (kx - 5, ky + 45), (10, 10, 10), 3)
    return img
