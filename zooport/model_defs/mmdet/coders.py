"""Box coders of MMDetection (pure tensor functions, traceable).

Shapes: priors (N, 4) xyxy or (N, 2) points; predictions (..., N, 4); outputs
(..., N, 4) xyxy in input pixels. ``max_shape`` (h, w) clips like ``clip_border``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .anchors import WH_RATIO_CLIP


def _clip(boxes, max_shape):
    if max_shape is None:
        return boxes
    # bounds as tensors built from the (traced) sizes, so a dynamic-shape ONNX export clips at the
    # actual input size rather than the traced one
    zero = boxes.new_zeros(())
    h, w = zero + max_shape[0], zero + max_shape[1]
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([torch.minimum(x1.clamp(min=0), w), torch.minimum(y1.clamp(min=0), h),
                        torch.minimum(x2.clamp(min=0), w), torch.minimum(y2.clamp(min=0), h)], -1)


def delta_xywh_decode(rois, deltas, means=(0.0, 0.0, 0.0, 0.0), stds=(1.0, 1.0, 1.0, 1.0), max_shape=None,
                      wh_ratio_clip=WH_RATIO_CLIP, add_ctr_clamp=False, ctr_clamp=32.0):
    """DeltaXYWHBBoxCoder.decode (mmdet 3.x ``delta2bbox``): centre shift by pwh * dxy, size pwh * exp(dwh)
    with dwh clamped to +-|log(16/1000)|; with ``add_ctr_clamp`` the shift pwh * dxy is clamped to
    +-``ctr_clamp`` pixels and dwh only from above."""
    means_t = deltas.new_tensor(list(means))
    stds_t = deltas.new_tensor(list(stds))
    d = deltas * stds_t + means_t
    dxy, dwh = d[..., :2], d[..., 2:]
    pxy = (rois[..., :2] + rois[..., 2:]) * 0.5
    pwh = rois[..., 2:] - rois[..., :2]
    shift = pwh * dxy
    if add_ctr_clamp:
        shift = shift.clamp(min=-ctr_clamp, max=ctr_clamp)
        dwh = dwh.clamp(max=wh_ratio_clip)
    else:
        dwh = dwh.clamp(min=-wh_ratio_clip, max=wh_ratio_clip)
    gxy = pxy + shift
    gwh = pwh * dwh.exp()
    return _clip(torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], -1), max_shape)


def distance_decode(points, distance, max_shape=None):
    """DistancePointBBoxCoder.decode: (left, top, right, bottom) distances from points."""
    x1 = points[..., 0] - distance[..., 0]
    y1 = points[..., 1] - distance[..., 1]
    x2 = points[..., 0] + distance[..., 2]
    y2 = points[..., 1] + distance[..., 3]
    return _clip(torch.stack([x1, y1, x2, y2], -1), max_shape)


def yolo_decode(anchors, pred, stride):
    """YOLOBBoxCoder.decode: ``pred[..., :2]`` already sigmoided; centre = anchor centre + (p - 0.5) * stride,
    half size = anchor half size * exp(twh). ``stride``: (N, 1)."""
    xy = (anchors[..., :2] + anchors[..., 2:]) * 0.5 + (pred[..., :2] - 0.5) * stride
    half = (anchors[..., 2:] - anchors[..., :2]) * 0.5 * pred[..., 2:4].exp()
    return torch.cat([xy - half, xy + half], -1)


def integral(dist, project):
    """GFL's Integral: (..., 4 * (reg_max + 1)) logits -> (..., 4) expected distances
    (softmax over the reg_max + 1 bins, dotted with ``project`` = [0, 1, ..., reg_max])."""
    shape = dist.shape[:-1]
    p = F.softmax(dist.reshape(-1, project.numel()), dim=1)
    return F.linear(p, project.to(p.dtype)[None, :]).reshape(*shape, 4)


def yolox_decode(priors, pred):
    """YOLOXHead._bbox_decode: priors (N, 4) = (x, y, stride, stride); centre = p * s + xy, size = exp(p) * s."""
    xy = pred[..., :2] * priors[:, 2:] + priors[:, :2]
    wh = pred[..., 2:].exp() * priors[:, 2:]
    return torch.cat([xy - wh / 2, xy + wh / 2], -1)


def bbox_rescale(boxes, factor: float):
    """mmdet's ``bbox_rescale``: (N, 4) xyxy scaled by ``factor`` about their centres."""
    c = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    wh = (boxes[:, 2:] - boxes[:, :2]) * factor
    return torch.cat([c - 0.5 * wh, c + 0.5 * wh], 1)


def bucket_decode(proposals, cls_preds, offset_preds, num_buckets: int, scale_factor: float, max_shape=None):
    """BucketingBBoxCoder.decode (mmdet ``bucket2bbox``; SABL).

    proposals (N, 4) xyxy; ``cls_preds`` / ``offset_preds`` (N, 4 * side) with side = ceil(num_buckets / 2)
    per box side in the order left, right, top, bottom. Each side is placed at the centre of its
    best bucket (of the proposal rescaled by ``scale_factor``, split into ``num_buckets``) minus the
    predicted offset times the bucket size; boxes clip to [0, w - 1] x [0, h - 1] as mmdet does.
    Returns (boxes (N, 4), confidence (N,)): the mean over the four sides of the best bucket's
    probability plus the second best's when the two buckets are neighbours.
    """
    side = (num_buckets + 1) // 2
    n = proposals.shape[0]
    scores = F.softmax(cls_preds.reshape(-1, side), dim=1)
    top, label = scores.topk(2, dim=1, largest=True, sorted=True)
    p = bbox_rescale(proposals, scale_factor)
    bw = (p[:, 2] - p[:, 0]) / num_buckets
    bh = (p[:, 3] - p[:, 1]) / num_buckets
    best = label[:, 0].reshape(n, 4)
    off = offset_preds.reshape(n, 4, side).gather(2, best[:, :, None])[:, :, 0]
    bf = best.to(p.dtype)
    x1 = p[:, 0] + (0.5 + bf[:, 0]) * bw - off[:, 0] * bw
    x2 = p[:, 2] - (0.5 + bf[:, 1]) * bw - off[:, 1] * bw
    y1 = p[:, 1] + (0.5 + bf[:, 2]) * bh - off[:, 2] * bh
    y2 = p[:, 3] - (0.5 + bf[:, 3]) * bh - off[:, 3] * bh
    if max_shape is not None:
        zero = p.new_zeros(())
        w1, h1 = zero + max_shape[1] - 1, zero + max_shape[0] - 1
        x1, x2 = torch.minimum(x1.clamp(min=0), w1), torch.minimum(x2.clamp(min=0), w1)
        y1, y2 = torch.minimum(y1.clamp(min=0), h1), torch.minimum(y2.clamp(min=0), h1)
    conf = top[:, 0] + top[:, 1] * ((label[:, 0] - label[:, 1]).abs() == 1).to(top.dtype)
    return torch.stack([x1, y1, x2, y2], -1), conf.reshape(n, 4).mean(1)


def delta_coder(cfg, where: str) -> dict:
    """A ``DeltaXYWHBBoxCoder`` config -> the keyword arguments of :func:`delta_xywh_decode` plus
    ``clip_border`` (``max_shape`` is given per call and ignored when ``clip_border`` is False)."""
    from ...errors import ConfigError

    cfg = dict(cfg or {"type": "DeltaXYWHBBoxCoder"})
    if cfg.get("type") != "DeltaXYWHBBoxCoder":
        raise ConfigError(f"{where}: bbox_coder {cfg.get('type')!r} not supported here (only DeltaXYWHBBoxCoder)")
    return {"means": tuple(float(v) for v in cfg.get("target_means", (0.0, 0.0, 0.0, 0.0))),
            "stds": tuple(float(v) for v in cfg.get("target_stds", (1.0, 1.0, 1.0, 1.0))),
            "clip_border": bool(cfg.get("clip_border", True)),
            "add_ctr_clamp": bool(cfg.get("add_ctr_clamp", False)), "ctr_clamp": float(cfg.get("ctr_clamp", 32))}


def decode_with(coder: dict, rois, deltas, max_shape=None):
    """:func:`delta_xywh_decode` with a :func:`delta_coder` dict."""
    return delta_xywh_decode(rois, deltas, coder["means"], coder["stds"], max_shape if coder["clip_border"] else None,
                             add_ctr_clamp=coder["add_ctr_clamp"], ctr_clamp=coder["ctr_clamp"])


def rescale_boxes(boxes, scale_factor):
    """MMDetection's ``scale_boxes(boxes, [1 / s for s in scale_factor])``: (..., 4k) boxes times 1/(w, h)."""
    if scale_factor is None:
        return boxes
    inv = boxes.new_tensor([1.0 / float(scale_factor[0]), 1.0 / float(scale_factor[1])])
    return boxes * inv.repeat(boxes.shape[-1] // 2)
