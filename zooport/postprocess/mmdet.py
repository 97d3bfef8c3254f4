"""MMDetection's post-processing pieces: mmcv's class-aware ``batched_nms`` and the verifier's mapping
of ``predict`` output back to the image.

The rest of MMDetection's ``test_cfg`` (score threshold, ``nms_pre``, score factors, ``min_bbox_size``,
``max_per_img``) depends on the head and lives with it (``zooport.model_defs.mmdet.predict``).
"""
from __future__ import annotations

import numpy as np

from .core import nms


def batched_nms(boxes, scores, labels, nms_cfg, return_scores: bool = False):
    """mmcv ``batched_nms`` on torch (N, 4) xyxy ``boxes``, (N,) ``scores`` and ``labels``.

    Class-aware through a per-class coordinate offset of (max coordinate + 1), unless
    ``class_agnostic`` (from ``split_thr``, 10000, candidates on: one NMS per class, as mmcv); then ``nms_cfg['type']`` ``nms``: greedy :func:`~zooport.postprocess.core.nms`
    with ``iou_threshold`` (IoU > threshold suppresses), or ``soft_nms``: mmcv's
    :func:`~zooport.postprocess.soft_nms.soft_nms` (``iou_threshold``, ``sigma``, ``min_score``,
    ``method``; scores decayed). Returns kept indices (int64 tensor), best first, and with
    ``return_scores`` also their (decayed) scores.
    """
    import torch

    from ..errors import ConfigError

    cfg = dict(nms_cfg or {})
    t = cfg.pop("type", "nms")
    if t not in ("nms", "soft_nms"):
        raise ConfigError(f"test_cfg.nms type {t!r} not supported (nms, soft_nms)")
    if boxes.numel() == 0:
        keep = torch.zeros(0, dtype=torch.int64)
        return (keep, scores[:0]) if return_scores else keep
    thr = float(cfg.get("iou_threshold", 0.3 if t == "soft_nms" else 0.5))
    if t == "nms" and not cfg.get("class_agnostic", False) and boxes.shape[0] >= int(cfg.get("split_thr", 10000)):
        # mmcv's split path: one NMS per class on the unshifted boxes (large offsets would cost float32
        # precision), the survivors sorted by score
        kept = torch.zeros(boxes.shape[0], dtype=torch.bool)
        for c in torch.unique(labels):
            inds = torch.nonzero(labels == c).squeeze(1)
            kept[inds[nms(boxes[inds], scores[inds], thr)]] = True
        keep = torch.nonzero(kept).squeeze(1)
        keep = keep[torch.sort(scores[keep], descending=True, stable=True).indices]
        return (keep, scores[keep]) if return_scores else keep
    if cfg.pop("class_agnostic", False):
        b = boxes
    else:
        b = boxes + (labels.to(boxes) * (boxes.max() + torch.tensor(1.0).to(boxes)))[:, None]
    if t == "soft_nms":
        from .soft_nms import soft_nms

        keep, decayed = soft_nms(b, scores, thr, float(cfg.get("sigma", 0.5)),
                                 float(cfg.get("min_score", 1e-3)), cfg.get("method", "linear"))
        return (keep, decayed) if return_scores else keep
    keep = nms(b, scores, thr)
    return (keep, scores[keep]) if return_scores else keep


def mmdet_post(dets, to_image, orig_hws, conf=None, iou=None, max_det=None) -> list:
    """The model's own ``predict`` output (per image an (n, 6) x1, y1, x2, y2, score, label in input
    pixels, already through its ``test_cfg``) -> list of (n, 6) float32 numpy in image pixels.

    Boxes are mapped back with ``to_image`` (MMDetection's ``rescale=True``) and not clipped, as
    MMDetection does. ``conf``/``iou``/``max_det`` were applied inside ``predict`` (as ``test_cfg``
    overrides); they are accepted here only for a uniform signature.
    """
    res = []
    for d, fn, _hw in zip(dets, to_image, orig_hws):
        d = np.array(d, dtype=np.float32).reshape(-1, 6)
        if len(d):
            d[:, :4] = fn(d[:, :4])
        res.append(d)
    return res


def test_cfg_overrides(test_cfg: dict, conf=None, iou=None, max_det=None) -> dict:
    """``test_cfg`` with the verifier's explicit ``conf`` (score_thr), ``iou`` (nms.iou_threshold) and
    ``max_det`` (max_per_img) applied; ``None`` keeps the model's own value."""
    import copy

    cfg = copy.deepcopy(dict(test_cfg or {}))
    if "rcnn" in cfg:  # a two-stage model: the overrides are its R-CNN stage's (the final detections)
        cfg["rcnn"] = test_cfg_overrides(cfg["rcnn"], conf, iou, max_det)
        return cfg
    if conf is not None:
        cfg["score_thr"] = float(conf)
    if iou is not None:
        cfg["nms"] = dict(cfg.get("nms") or {"type": "nms"}, iou_threshold=float(iou))
    if max_det is not None:
        cfg["max_per_img"] = int(max_det)
    return cfg
