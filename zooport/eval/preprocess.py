"""Image preprocessing of the two reference pipelines, and the inverse box mapping.

* ``letterbox`` — Ultralytics YOLOv5 v7.0 ``val.py``: the image (BGR uint8, as
  ``cv2.imread`` gives it) is first resized so its long side is ``imgsz``
  (``cv2.INTER_AREA`` when shrinking, ``INTER_LINEAR`` when enlarging, new size
  ``int(w0 * r) x int(h0 * r)``: v7.0 truncates; ``math.ceil`` came only with a
  later release), then letterboxed without upscaling onto its
  batch shape (``cv2.INTER_LINEAR``, border value 114, padding split as
  ``round(d/2 -+ 0.1)``). Rectangular batches: images are sorted by aspect ratio
  h/w, cut into batches, and every batch gets one shape
  ``ceil(shape * imgsz / stride + pad) * stride`` (pad 0.5), exactly as
  ``LoadImagesAndLabels(rect=True)`` computes it.
* ``resize`` — Darknet ``detector valid``: the whole image stretched to the
  network size with Darknet's own ``resize_image`` (a two-pass bilinear on the
  float image in [0, 1], sampling ``x * (w_in - 1) / (w_out - 1)``; the last
  column/row copy the edge). It differs from OpenCV's half-pixel-centre
  bilinear, so it is re-implemented here, vectorised, in float32 like Darknet.

* ``mmdet`` — MMDetection 3.x's test pipeline and data preprocessor
  (:func:`preprocess_mmdet`): ``Resize(scale=(w, h), keep_ratio)`` (mmcv's
  ``rescale_size``: factor min(long / long side, short / short side), size
  ``int(w0 * s + 0.5)``; OpenCV bilinear), then in float32 ``BGR -> RGB``
  when ``bgr_to_rgb``, ``(x - mean) / std`` in pixel units, zero padding at
  the bottom and right to multiples of ``pad_size_divisor``. Boxes come back
  by dividing by the recorded ``scale_factor`` (w, h) (:func:`unmmdet_boxes`).

Boxes come back to original-image pixels with :func:`unletterbox_boxes` /
:func:`unresize_boxes` / :func:`unmmdet_boxes`. Everything here is numpy + cv2 (no torch).
"""
from __future__ import annotations

import math

import numpy as np

from ..postprocess.core import clip_boxes

PAD_VALUE = 114


def rect_batch_shapes(sizes_hw, imgsz: int, stride: int, batch: int, pad: float = 0.5):
    """YOLOv5's rectangular batch plan.

    ``sizes_hw``: (N, 2) original (h, w) per image. Returns ``(order, shapes)``:
    ``order`` the image indices sorted by aspect ratio h/w (numpy's default
    argsort, as YOLOv5 does it; all ties of one ratio get the same shape) and ``shapes`` an (nbatches, 2) int array of (h, w) per batch, batch
    ``b`` holding ``order[b*batch:(b+1)*batch]``.
    """
    s = np.asarray(sizes_hw, dtype=np.float64).reshape(-1, 2)
    ar = s[:, 0] / s[:, 1]
    order = np.argsort(ar)  # numpy default kind, as YOLOv5 sorts (ties need not keep input order)
    ar = ar[order]
    nb = int(math.ceil(len(order) / batch)) if len(order) else 0
    shapes = np.ones((nb, 2), dtype=np.float64)
    for b in range(nb):
        ari = ar[b * batch:(b + 1) * batch]
        mini, maxi = ari.min(), ari.max()
        if maxi < 1:
            shapes[b] = [maxi, 1]
        elif mini > 1:
            shapes[b] = [1, 1 / mini]
    out = (np.ceil(shapes * imgsz / stride + pad).astype(int) * stride) if nb else np.zeros((0, 2), int)
    return order, out


def load_resize(img_bgr: np.ndarray, imgsz: int) -> np.ndarray:
    """YOLOv5 v7.0 ``load_image``: long side to ``imgsz`` (AREA when shrinking, LINEAR when enlarging)."""
    import cv2

    h0, w0 = img_bgr.shape[:2]
    r = imgsz / max(h0, w0)
    if r != 1:
        interp = cv2.INTER_LINEAR if r > 1 else cv2.INTER_AREA
        # int(), not ceil: v7.0 truncates (yolov5 PR #10558 switched to ceil a month after v7.0),
        # and the truncated size also sets the box gain h / h0 used to map boxes back.
        img_bgr = cv2.resize(img_bgr, (int(w0 * r), int(h0 * r)), interpolation=interp)
    return img_bgr


def letterbox(img: np.ndarray, new_shape, pad_value: int = PAD_VALUE, scaleup: bool = False,
              auto: bool = False, stride: int = 32):
    """YOLOv5 ``letterbox`` onto ``new_shape`` (h, w); with ``auto`` (YOLOv5 ``detect.py``'s default) the
    padding shrinks to the minimal rectangle: each side padded only to the next multiple of ``stride``.

    Returns ``(image, ratio, (pad_w, pad_h))`` where ratio is the resize gain
    and pads are the (fractional) left/top offsets YOLOv5 records.
    """
    import cv2

    shape = img.shape[:2]
    if isinstance(new_shape, int):
        new_shape = (new_shape, new_shape)
    r = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
    if not scaleup:
        r = min(r, 1.0)
    new_unpad = int(round(shape[1] * r)), int(round(shape[0] * r))
    dw, dh = new_shape[1] - new_unpad[0], new_shape[0] - new_unpad[1]
    if auto:
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    if shape[::-1] != new_unpad:
        img = cv2.resize(img, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(pad_value,) * 3)
    return img, r, (dw, dh)


def preprocess_letterbox(img_bgr: np.ndarray, shape_hw, imgsz: int, pad_value: int = PAD_VALUE):
    """Full YOLOv5 val preprocessing of one image -> (CHW RGB float32 in [0,1], ratio_pad).

    ``ratio_pad = ((gain_h, gain_w), (pad_w, pad_h))`` relative to the
    *original* image, as YOLOv5's ``shapes[si][1]``.
    """
    h0, w0 = img_bgr.shape[:2]
    im = load_resize(img_bgr, imgsz)
    h, w = im.shape[:2]
    im, _r, pad = letterbox(im, tuple(int(v) for v in shape_hw), pad_value)
    return bgr_to_chw01(im), ((h / h0, w / w0), pad)


def bgr_to_chw01(im: np.ndarray) -> np.ndarray:
    """BGR uint8 (H, W, 3) -> RGB float32 (3, H, W) = u8 / 255 (float32 division, as torch's ``/ 255``).

    One pass: the channel-reversed CHW view is divided straight into the output (2.6x faster than
    a contiguous copy, a cast and a division; the same bits).
    """
    x = np.empty((3,) + im.shape[:2], np.float32)
    np.divide(im.transpose(2, 0, 1)[::-1], np.float32(255), out=x, dtype=np.float32)
    return x


def preprocess_center_crop(img_bgr: np.ndarray, size_hw) -> np.ndarray:
    """YOLOv5 v7.0 ``classify_transforms``' geometry: the centred square of side min(h, w) (top =
    (h - m) // 2, left = (w - m) // 2), ``cv2.resize`` to ``size_hw`` (INTER_LINEAR), RGB / 255.
    (A classifier's mean / std is the model's own first step.)"""
    import cv2

    h, w = img_bgr.shape[:2]
    size_h, size_w = (int(v) for v in size_hw)
    m = min(h, w)
    top, left = (h - m) // 2, (w - m) // 2
    im = cv2.resize(img_bgr[top:top + m, left:left + m], (size_w, size_h), interpolation=cv2.INTER_LINEAR)
    return bgr_to_chw01(im)


def unletterbox_boxes(boxes: np.ndarray, ratio_pad, orig_hw, clip: bool = True) -> np.ndarray:
    """YOLOv5 ``scale_boxes`` with a given ``ratio_pad``, then (``clip``) ``clip_boxes`` to the original image.

    ``boxes``: (n, 4) xyxy in letterboxed pixels (float32); returns a new array.
    """
    b = np.array(boxes, dtype=np.float32, copy=True)
    gain = np.float32(ratio_pad[0][0])
    pad = ratio_pad[1]
    b[:, [0, 2]] -= np.float32(pad[0])
    b[:, [1, 3]] -= np.float32(pad[1])
    b /= gain
    return clip_boxes(b, orig_hw) if clip else b


def darknet_resize(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """Darknet ``resize_image`` on an (H, W, C) float32 image; returns (h, w, C) float32.

    Pass 1 interpolates along x into an (H, w) "part" image; pass 2 along y.
    All arithmetic in float32 as Darknet's C does; edge rules kept: column
    ``w-1`` copies source column ``W-1``; row ``h-1`` takes only the
    ``(1-dy)`` term (Darknet skips the second term there).
    """
    im = np.asarray(im, dtype=np.float32)
    H, W = im.shape[:2]
    f32 = np.float32
    # Darknet divides (float)(W-1) by the int (w-1): one float32 division.
    w_scale = f32(W - 1) / f32(w - 1) if w > 1 else f32(0)
    h_scale = f32(H - 1) / f32(h - 1) if h > 1 else f32(0)
    if W == 1:
        part = np.repeat(im[:, :1], w, axis=1)
    else:
        sx = np.arange(w, dtype=np.float32) * w_scale
        ix = sx.astype(np.int64)
        dx = (sx - ix.astype(np.float32)).astype(np.float32)
        ix[-1] = W - 1  # unused for the last column (copied below), keeps indices valid
        ix1 = np.minimum(ix + 1, W - 1)
        dxc = dx[None, :, None]
        part = (f32(1) - dxc) * im[:, ix] + dxc * im[:, ix1]
        part[:, w - 1] = im[:, W - 1]
    part = part.astype(np.float32, copy=False)
    sy = np.arange(h, dtype=np.float32) * h_scale
    iy = np.minimum(sy.astype(np.int64), H - 1)
    dy = (sy - iy.astype(np.float32)).astype(np.float32)
    dyc = dy[:, None, None]
    out = (f32(1) - dyc) * part[iy]
    if H > 1:
        iy1 = np.minimum(iy + 1, H - 1)
        add = dyc * part[iy1]
        add[h - 1] = 0  # Darknet: `if (r == h-1 || im.h == 1) continue;`
        out = out + add
    return out.astype(np.float32, copy=False)


def preprocess_resize(img_bgr: np.ndarray, net_hw) -> np.ndarray:
    """Darknet validation input: RGB float image (u8 / 255) stretched to the net size -> CHW float32."""
    rgb = img_bgr[:, :, ::-1].astype(np.float32) / np.float32(255)
    out = darknet_resize(rgb, int(net_hw[1]), int(net_hw[0]))
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def unresize_boxes(boxes: np.ndarray, net_hw, orig_hw) -> np.ndarray:
    """Network-pixel xyxy -> original-image pixels for a plain stretch resize (no clipping)."""
    b = np.array(boxes, dtype=np.float32, copy=True)
    b[:, [0, 2]] *= np.float32(orig_hw[1]) / np.float32(net_hw[1])
    b[:, [1, 3]] *= np.float32(orig_hw[0]) / np.float32(net_hw[0])
    return b


def mmdet_resize_hw(h0: int, w0: int, scale_wh, keep_ratio: bool = True) -> tuple[int, int]:
    """(h, w) of MMDetection's ``Resize`` for an (h0, w0) image; ``scale_wh`` is the config's (w, h)."""
    if not keep_ratio:
        return int(scale_wh[1]), int(scale_wh[0])
    long_edge, short_edge = max(scale_wh), min(scale_wh)
    s = min(long_edge / max(h0, w0), short_edge / min(h0, w0))
    return int(h0 * float(s) + 0.5), int(w0 * float(s) + 0.5)


def preprocess_mmdet(img_bgr: np.ndarray, pre: dict):
    """One BGR uint8 image -> (CHW float32 model input, info) as MMDetection's test pipeline resizes
    and pads it, on zooport's input contract: RGB ``u8 / 255``, zero padding to ``pad_size_divisor``.

    The model normalises inside (:class:`zooport.model_defs.input_norm.InputNorm`: ``x * 255`` is the
    pixel again, exactly; then MMDetection's channel order, ``(x - mean) / std``, and the padding set
    to 0 when ``predict`` / ``raw`` get ``img_hw``), so it sees the same bits as MMDetection's own model.
    ``pre``: a model's ``preprocess`` dict in ``mmdet`` mode: ``resize_scale`` (w, h), ``keep_ratio``,
    ``pad_size_divisor``. ``info``: ``img_shape`` (h, w) after resizing, ``pad_shape`` (h, w) of the
    returned tensor, ``scale_factor`` (w / w0, h / h0) as MMDetection records it.
    """
    import cv2

    h0, w0 = img_bgr.shape[:2]
    h, w = mmdet_resize_hw(h0, w0, pre["resize_scale"], bool(pre.get("keep_ratio", True)))
    x = bgr_to_chw01(cv2.resize(img_bgr, (w, h), interpolation=cv2.INTER_LINEAR))
    d = int(pre.get("pad_size_divisor") or 1)
    ph, pw = -(-h // d) * d, -(-w // d) * d
    out = np.zeros((3, ph, pw), np.float32)
    out[:, :h, :w] = x
    return out, {"img_shape": (h, w), "pad_shape": (ph, pw), "scale_factor": (w / w0, h / h0)}


def unmmdet_boxes(boxes: np.ndarray, scale_factor) -> np.ndarray:
    """Resized-image xyxy -> original pixels: times 1 / scale_factor (w, h), in float32 as MMDetection."""
    b = np.array(boxes, dtype=np.float32, copy=True)
    inv = np.array([1.0 / scale_factor[0], 1.0 / scale_factor[1]] * 2, np.float32)
    return b * inv
