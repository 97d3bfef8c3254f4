"""Post-processing of YOLOv5 v7.0 segmentation outputs: NMS that carries mask coefficients, and masks.

The box NMS kernel is :func:`zooport.postprocess.nms` (one implementation);
this module adds only what segmentation needs around it, with YOLOv5 v7.0's
semantics (``utils/general.py non_max_suppression(..., nm=32)`` and
``utils/segment/general.py``):

* :func:`non_max_suppression_seg`: ``prediction`` (B, N, 5 + nc + nm) as
  ``YOLOv5SegModel`` returns it -> per image (n, 6 + nm): x1 y1 x2 y2 score
  class, then the mask coefficients. As in v7.0, ``x[:, 5:] *= x[:, 4:5]``
  multiplies the mask coefficients by objectness as well as the class scores,
  so the returned coefficients are objectness-scaled (what ``segment/predict.py``
  passes to :func:`process_mask`).
* :func:`process_mask`: ``sigmoid(coeffs @ protos)`` at prototype resolution,
  cropped to the boxes, optionally upsampled (bilinear, half-pixel centres)
  to the input size, thresholded at 0.5.
* :func:`masks_to_original`: the (n, H, W) input-size masks cut out of the
  letterbox and resized to the original image, as ``val.py`` (segment) does
  before RLE-encoding them (it masks with ``process_mask(..., crop_first=False)``,
  YOLOv5's ``process_mask_upsample``).
* :func:`predict_segments`: model + NMS + masks for one batch, as ``segment/predict.py``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .core import MAX_WH, nms, xywh2xyxy


def non_max_suppression_seg(prediction: torch.Tensor, conf_thres: float = 0.25, iou_thres: float = 0.45, *,
                            nm: int = 32, classes: list[int] | None = None, agnostic: bool = False,
                            multi_label: bool = False, max_det: int = 300, max_nms: int = 30000) -> list:
    """YOLOv5's NMS for segmentation predictions; see the module doc. Returns per image (n, 6 + nm) float32."""
    if prediction.dim() != 3 or prediction.shape[-1] < 6 + nm:
        raise ValueError(f"prediction must be (B, N, 5+nc+nm) with nm={nm}, got {tuple(prediction.shape)}")
    prediction = prediction.detach().float()
    mi = prediction.shape[2] - nm  # first mask column
    multi_label = multi_label and mi - 5 > 1
    out = []
    for x in prediction:
        x = x[x[:, 4] > conf_thres].clone()
        empty = torch.zeros((0, 6 + nm))
        if not x.shape[0]:
            out.append(empty)
            continue
        x[:, 5:] *= x[:, 4:5]  # class scores AND mask coefficients, as v7.0 does
        box, mask = xywh2xyxy(x[:, :4]), x[:, mi:]
        if multi_label:
            i, j = (x[:, 5:mi] > conf_thres).nonzero(as_tuple=False).T
            x = torch.cat((box[i], x[i, 5 + j, None], j[:, None].float(), mask[i]), 1)
        else:
            conf, j = x[:, 5:mi].max(1, keepdim=True)
            x = torch.cat((box, conf, j.float(), mask), 1)[conf.view(-1) > conf_thres]
        if classes is not None:
            x = x[(x[:, 5:6] == torch.tensor(classes, dtype=x.dtype)).any(1)]
        if not x.shape[0]:
            out.append(empty)
            continue
        x = x[x[:, 4].argsort(descending=True, stable=True)[:max_nms]]
        offset = x[:, 5:6] * (0 if agnostic else MAX_WH)
        out.append(x[nms(x[:, :4] + offset, x[:, 4], iou_thres, max_keep=max_det)])
    return out


def crop_mask(masks: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Zero (n, h, w) ``masks`` outside their (n, 4) xyxy ``boxes``: pixel (r, c) kept iff x1 <= c < x2 and
    y1 <= r < y2 with integer indices (YOLOv5's rule)."""
    n, h, w = masks.shape
    x1, y1, x2, y2 = torch.chunk(boxes[:, :, None], 4, 1)  # each (n, 1, 1)
    c = torch.arange(w, device=masks.device, dtype=x1.dtype)[None, None, :]
    r = torch.arange(h, device=masks.device, dtype=x1.dtype)[None, :, None]
    return masks * ((c >= x1) * (c < x2) * (r >= y1) * (r < y2))


def process_mask(protos: torch.Tensor, coeffs: torch.Tensor, boxes: torch.Tensor, shape, upsample: bool = False,
                 crop_first: bool = True) -> torch.Tensor:
    """Binary masks of detections.

    ``protos`` (nm, mh, mw) (one image of ``proto``), ``coeffs`` (n, nm), ``boxes`` (n, 4) xyxy in
    pixels of the model input of size ``shape`` (h, w). ``crop_first`` (``process_mask``): crop at
    prototype resolution with the boxes scaled by mh/h, mw/w, then optionally upsample to ``shape``
    -> (n, h, w) or (n, mh, mw). ``crop_first=False`` (``process_mask_upsample``, what ``val.py``
    uses for COCO json): upsample first, then crop with the input-size boxes -> (n, h, w).
    Returns float 0/1 (value > 0.5).
    """
    nm, mh, mw = protos.shape
    ih, iw = int(shape[0]), int(shape[1])
    masks = (coeffs.float() @ protos.float().view(nm, -1)).sigmoid().view(-1, mh, mw)
    if not crop_first:
        masks = F.interpolate(masks[None], (ih, iw), mode="bilinear", align_corners=False)[0]
        return crop_mask(masks, boxes.float()).gt_(0.5)
    b = boxes.float().clone()
    b[:, 0] *= mw / iw
    b[:, 2] *= mw / iw
    b[:, 3] *= mh / ih
    b[:, 1] *= mh / ih
    masks = crop_mask(masks, b)
    if upsample:
        masks = F.interpolate(masks[None], (ih, iw), mode="bilinear", align_corners=False)[0]
    return masks.gt_(0.5)


def masks_to_original(masks, ratio_pad, orig_hw):
    """(n, h, w) input-size 0/1 masks -> (n, H0, W0) uint8 0/1 masks of the original image.

    As YOLOv5 v7.0's ``val.py`` (segment) before RLE-encoding: the masks as uint8, cut to
    ``[int(pad_y) : int(h - pad_y), int(pad_x) : int(w - pad_x)]`` (``scale_image``), then
    ``cv2.resize`` (INTER_LINEAR, uint8 rounding) to (W0, H0). ``ratio_pad`` = (ratio, (pad_x, pad_y)).
    """
    import cv2
    import numpy as np

    m = masks.detach().cpu().numpy() if hasattr(masks, "detach") else np.asarray(masks)
    n, h, w = m.shape
    h0, w0 = int(orig_hw[0]), int(orig_hw[1])
    if n == 0:
        return np.zeros((0, h0, w0), np.uint8)
    pad_x, pad_y = ratio_pad[1]
    top, left = int(pad_y), int(pad_x)
    bottom, right = int(h - pad_y), int(w - pad_x)
    hwn = np.ascontiguousarray(m.astype(np.uint8).transpose(1, 2, 0)[top:bottom, left:right])
    # YOLOv5 resizes all n channels in one call. OpenCV 5 takes at most 128 channels per call, and its
    # results depend on the channel count only for 1, 3 and 4 channels (own code paths; 2 and >= 5
    # agree per channel), so larger n is cut into chunks of 128 whose last one never has 1, 3 or 4.
    cuts = list(range(0, n, 128)) + [n]
    if n > 128 and n % 128 in (1, 3, 4):
        cuts[-2] -= 8
    out = [cv2.resize(np.ascontiguousarray(hwn[:, :, a:b]), (w0, h0)).reshape(h0, w0, -1)
           for a, b in zip(cuts[:-1], cuts[1:])]
    return np.ascontiguousarray(np.concatenate(out, 2).transpose(2, 0, 1))


def predict_segments(model, x: torch.Tensor, conf_thres: float = 0.25, iou_thres: float = 0.45,
                     max_det: int = 300) -> list:
    """Run a YOLOv5 segmentation model on a batch ``x`` (B, 3, H, W) and post-process it as
    ``segment/predict.py`` does (NMS with mask coefficients, ``process_mask(..., upsample=True)``).

    Returns per image ``{"boxes": (n, 4) xyxy input pixels, "scores": (n,), "classes": (n,) int64,
    "masks": (n, H, W) bool}`` (tensors), ready for drawing.
    """
    with torch.no_grad():
        pred, proto = model(x)
    out = []
    for d, p in zip(non_max_suppression_seg(pred, conf_thres, iou_thres, nm=proto.shape[1], max_det=max_det), proto):
        masks = process_mask(p, d[:, 6:], d[:, :4], x.shape[2:], upsample=True).bool() if len(d) else \
            torch.zeros((0, *x.shape[2:]), dtype=torch.bool)
        out.append({"boxes": d[:, :4], "scores": d[:, 4], "classes": d[:, 5].long(), "masks": masks})
    return out
