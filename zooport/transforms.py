"""The one preprocessing entry point: a model's ``preprocess`` dict -> what turns an image into its input.

:func:`from_meta` returns a function ``img_bgr -> (x, to_image)``: ``img_bgr`` is an (H, W, 3) uint8
BGR image as ``cv2.imread`` gives it, ``x`` the (3, h, w) float32 model input (RGB in [0, 1], the
input contract of every model: :mod:`zooport.model_defs.input_norm`), ``to_image`` maps (n, 4) xyxy
boxes in input pixels back to image pixels (``mmdet`` mode: MMDetection's image meta ``img_shape``,
``pad_shape``, ``scale_factor`` instead, which the model's own ``predict`` uses).

The steps themselves (numpy + OpenCV, each reproducing its reference pipeline exactly) live in
:mod:`zooport.eval.preprocess`; this module only decides which apply, for ``purpose``:

* ``"val"`` (``verify``: the reference's validation pipeline): ``letterbox`` = YOLOv5 ``val.py``
  (long side to ``imgsz``, then letterboxed without upscaling onto the batch ``shape``; boxes not
  clipped, the post-processing clips), ``resize`` = Darknet ``detector valid`` (``shape`` = the
  network (h, w)), ``mmdet``, ``center_crop`` (classifiers);
* ``"predict"`` (``predict``: the reference's detect script): ``letterbox`` = YOLOv5 ``detect.py``
  (straight from the image, upscaling allowed, the minimal stride-aligned rectangle unless
  ``square``; boxes clipped), ``resize`` by Darknet's bilinear or OpenCV's (``resize_interp``),
  ``mmdet`` with an optional Resize ``scale`` (w, h), ``center_crop``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .errors import UsageError

MODES = ("letterbox", "resize", "mmdet", "center_crop")


def from_meta(pre: dict, *, mode: str | None = None, purpose: str = "predict", imgsz=None, shape=None,
              stride: int = 32, square: bool = False, resize_interp: str = "darknet",
              mmdet_scale=None) -> Callable[[np.ndarray], tuple]:
    """The image -> (input, to_image) function for a model's ``preprocess`` dict ``pre``.

    ``mode``: overrides ``pre["mode"]``. ``imgsz``: the letterbox long side (int; ``predict`` also
    takes (h, w) and uses its max); ``shape``: (h, w) of the input for ``val`` letterbox batches and
    for ``resize`` (the network size). ``mmdet_scale``: (w, h) replacing the model's Resize scale.
    """
    from .eval import preprocess as P

    mode = mode or pre.get("mode", "letterbox")
    if mode == "keep_ratio":  # the earlier name of the MMDetection pipeline mode
        mode = "mmdet"
    if mode not in MODES:
        raise UsageError(f"preprocess mode must be one of {', '.join(MODES)}, got {mode!r}")
    if purpose not in ("val", "predict"):
        raise UsageError(f"purpose must be 'val' or 'predict', got {purpose!r}")
    pad_value = int(pre.get("pad_value", P.PAD_VALUE))

    if mode == "mmdet":
        spec = dict(pre)
        if mmdet_scale is not None:
            spec["resize_scale"] = [int(v) for v in mmdet_scale]
        return lambda img: P.preprocess_mmdet(img, spec)
    if mode == "center_crop":
        size = pre.get("size", [224, 224])
        return lambda img: (P.preprocess_center_crop(img, size), None)
    if mode == "resize":
        hw = tuple(int(v) for v in (shape if shape is not None else (imgsz, imgsz) if np.isscalar(imgsz) else imgsz))

        def resize(img):
            h0, w0 = img.shape[:2]
            if resize_interp == "darknet":
                x = P.preprocess_resize(img, hw)
            elif resize_interp == "opencv":  # OpenCV INTER_LINEAR, as the goldens' 416x416 inputs were made
                import cv2

                x = P.bgr_to_chw01(cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR))
            else:
                raise UsageError(f"resize_interp must be 'darknet' or 'opencv', got {resize_interp!r}")
            return x, lambda b: P.unresize_boxes(b, hw, (h0, w0))

        return resize
    size = int(imgsz if np.isscalar(imgsz) else max(imgsz))
    if purpose == "val":
        target = tuple(int(v) for v in shape)

        def letterbox_val(img):
            x, rp = P.preprocess_letterbox(img, target, size, pad_value)
            return x, Unletterbox(rp, img.shape[:2], clip=False)

        return letterbox_val

    def letterbox_predict(img):
        im, r, pad = P.letterbox(img, (size, size), pad_value, scaleup=True, auto=not square, stride=stride)
        return P.bgr_to_chw01(im), Unletterbox(((r, r), pad), img.shape[:2], clip=True)

    return letterbox_predict


class Unletterbox:
    """Letterboxed-input xyxy -> image pixels (YOLOv5's ``scale_boxes``); keeps ``ratio_pad``
    (((gain_h, gain_w), (pad_w, pad_h))), which mask post-processing needs as well."""

    def __init__(self, ratio_pad, orig_hw, clip: bool):
        self.ratio_pad, self.orig_hw, self.clip = ratio_pad, tuple(orig_hw), clip

    def __call__(self, boxes: np.ndarray) -> np.ndarray:
        from .eval.preprocess import unletterbox_boxes

        return unletterbox_boxes(boxes, self.ratio_pad, self.orig_hw, clip=self.clip)
