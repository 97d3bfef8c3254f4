"""Drawing boxes with labels on BGR images: OpenCV only (Hershey fonts are built in, no font download).

Colours are a function of the class id alone (golden-ratio hue steps), so a class keeps its colour across
images, runs and models; the label text is black or white, whichever contrasts more with the box colour.
"""
from __future__ import annotations

import colorsys

import numpy as np

_GOLDEN = 0.618033988749895


def class_color(k: int) -> tuple:
    """BGR colour (0..255 ints) of class ``k``: hue ``k * 0.618... mod 1``, saturation 0.85, value 0.95."""
    r, g, b = colorsys.hsv_to_rgb((int(k) * _GOLDEN + 0.05) % 1.0, 0.85, 0.95)
    return int(round(b * 255)), int(round(g * 255)), int(round(r * 255))


def _text_color(bgr) -> tuple:
    b, g, r = bgr
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def draw_boxes(image: np.ndarray, boxes, labels, colors, *, thickness: int | None = None) -> np.ndarray:
    """Draw (n, 4) xyxy ``boxes`` with text ``labels`` and BGR ``colors`` on a copy of ``image`` (H, W, 3 uint8).

    Line width and font scale follow the image size (about 1/400 of the diagonal, at least 1 px); a label
    sits on a filled box above the top-left corner, or inside the box when there is no room above.
    """
    import cv2

    im = np.ascontiguousarray(np.array(image, dtype=np.uint8, copy=True))
    if im.ndim == 2:
        im = cv2.cvtColor(im, cv2.COLOR_GRAY2BGR)
    h, w = im.shape[:2]
    lw = thickness or max(1, int(round((h * h + w * w) ** 0.5 / 400)))
    fs = max(0.35, lw / 3)
    ft = max(1, lw - 1)
    for box, text, col in zip(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), labels, colors):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(im, (x1, y1), (x2, y2), col, lw, cv2.LINE_AA)
        if not text:
            continue
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, ft)
        above = y1 - th - base - 2 >= 0
        ty1 = y1 - th - base - 2 if above else y1
        tx1 = min(max(x1, 0), max(w - tw - 2, 0))
        cv2.rectangle(im, (tx1, ty1), (tx1 + tw + 2, ty1 + th + base + 2), col, -1, cv2.LINE_AA)
        cv2.putText(im, text, (tx1 + 1, ty1 + th + 1), cv2.FONT_HERSHEY_SIMPLEX, fs, _text_color(col), ft,
                    cv2.LINE_AA)
    return im


def draw(image: np.ndarray, detections, *, scores: bool = True) -> np.ndarray:
    """``zooport.draw``: a copy of ``image`` (H, W, 3 BGR uint8, as ``cv2.imread`` gives) with
    :class:`~zooport.inference.detections.Detections` drawn: one colour per class, ``"name 0.87"`` labels."""
    labels = [f"{detections.name(k)} {float(detections.scores[k]):.2f}" if scores else detections.name(k)
              for k in range(len(detections))]
    colors = [class_color(int(c)) for c in detections.classes]
    return draw_boxes(image, detections.boxes, labels, colors)
