"""Decoding (traceable, for ``forward``) and MMDetection's ``predict_by_feat`` post-processing.

``decode(head, groups, img_hw)`` -> (B, N, 4 + 1 + nc): box centre x, y, w, h
in input pixels, a score factor, class probabilities. The score factor is
what MMDetection multiplies into the class score: sigmoid(centerness) for
FCOS/ATSS, sigmoid(objectness) for YOLOX/YOLOv3, 1 for RetinaNet and GFL;
so score = factor * class probability exactly as MMDetection ranks boxes.

``predict(head, groups, img_hw, cfg)`` -> list over images of (n, 6) tensors
x1, y1, x2, y2, score, label, following the head's test_cfg the way
MMDetection 3.3 does (``rescale=False``): per-level ``score_thr`` and
``nms_pre`` top-k (over all levels for YOLOv3), score factors multiplied
after the top-k, ``min_bbox_size`` (w and h must exceed it), class-aware NMS
with mmcv's coordinate offset per class, ``max_per_img``.
"""
from __future__ import annotations

import torch

from ...errors import ConfigError
from ...postprocess.mmdet import batched_nms  # mmcv batched_nms (NMS or soft-NMS): the one place
from . import anchors as A
from .coders import _clip, delta_xywh_decode, distance_decode, integral, rescale_boxes, yolo_decode, yolox_decode


def _flat(t, k):
    """(B, A*k, H, W) -> (B, H*W*A, k)."""
    return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1, k)


def _cls_prob(head, logits):
    if head.use_sigmoid:
        return logits.sigmoid()
    return logits.softmax(-1)[..., :-1]


def _level_boxes(head, i, reg, hw, img_hw):
    """Decoded xyxy boxes (B, M, 4) of level i from the flattened regression ``reg``."""
    h, w = hw
    kind = head.kind
    if kind in ("anchor", "atss", "paa"):
        pri = head.prior_generator.level(i, h, w)
        c = head.bbox_coder
        return delta_xywh_decode(pri, reg, c["means"], c["stds"], img_hw if c["clip_border"] else None)
    if kind == "fcos":
        pts = A.points(h, w, head.strides[i], getattr(head, "point_offset", 0.5))
        return distance_decode(pts, reg, img_hw if head.clip_border else None)
    if kind == "reppoints":  # box in feature cells relative to the location (x * s, y * s)
        pts = A.points(h, w, head.strides[i], 0.0)
        return _clip(reg * head.strides[i] + torch.cat([pts, pts], -1), img_hw)
    if kind == "gfl":
        pri = head.prior_generator.level(i, h, w)
        ctr = (pri[:, :2] + pri[:, 2:]) / 2
        dist = integral(reg, head.integral.project) * head.strides[i]
        return distance_decode(ctr, dist, img_hw if head.clip_border else None)
    if kind == "yolox":
        return yolox_decode(A.points(h, w, head.strides[i], 0.0, with_stride=True), reg)
    raise ConfigError(f"no decoder for head kind {kind!r}")


def decode(head, groups, img_hw):
    if hasattr(head, "decode_dense"):  # heads whose candidates are not per-location (CornerNet)
        return head.decode_dense(groups, img_hw)
    boxes, facs, probs = [], [], []
    nc = head.cls_out_channels
    if head.kind == "yolov3":
        for i, p in enumerate(groups[0]):
            h, w = p.shape[2], p.shape[3]
            p = _flat(p, head.num_attrib)
            pri = head.prior_generator.level(i, h, w)
            xy = p[..., :2].sigmoid()
            boxes.append(yolo_decode(pri, torch.cat([xy, p[..., 2:4]], -1), float(head.strides[i])))
            facs.append(p[..., 4:5].sigmoid())
            probs.append(p[..., 5:].sigmoid())
    elif head.kind == "ga":  # guided anchors; the location mask is the score factor
        for i, cls in enumerate(groups[0]):
            hw = (cls.shape[2], cls.shape[3])
            probs.append(_cls_prob(head, _flat(cls, nc)))
            reg, shp = _flat(groups[1][i], 4), _flat(groups[2][i], 2)
            b = head.level_boxes(i, reg.reshape(-1, 4), shp.reshape(-1, 2), hw, img_hw)
            boxes.append(b.reshape(reg.shape[0], -1, 4))
            facs.append((_flat(groups[3][i], 1).sigmoid() >= head.loc_filter_thr).to(probs[-1].dtype))
    elif head.kind == "sabl":  # bucketing boxes; the localisation confidence is the score factor
        k = 4 * head.side_num
        for i, cls in enumerate(groups[0]):
            hw = (cls.shape[2], cls.shape[3])
            probs.append(_cls_prob(head, _flat(cls, nc)))
            bc, bo = (_flat(t, k) for t in groups[1][i])
            b, conf = head.decode_level(i, bc.reshape(-1, k), bo.reshape(-1, k), hw, img_hw)
            boxes.append(b.reshape(bc.shape[0], -1, 4))
            facs.append(conf.reshape(bc.shape[0], -1, 1))
    else:
        k = 4 * (head.reg_max + 1) if head.kind == "gfl" else 4
        for i, cls in enumerate(groups[0]):
            hw = (cls.shape[2], cls.shape[3])
            probs.append(_cls_prob(head, _flat(cls, nc)))
            boxes.append(_level_boxes(head, i, _flat(groups[1][i], k), hw, img_hw))
            if head.kind == "paa":  # PAA ranks by sqrt(cls * iou): that is the class score, factor 1
                probs[-1] = (probs[-1] * _flat(groups[2][i], 1).sigmoid()).sqrt()
                facs.append(torch.ones_like(probs[-1][..., :1]))
            elif len(groups) > 2:
                facs.append(_flat(groups[2][i], 1).sigmoid())
            else:
                facs.append(torch.ones_like(probs[-1][..., :1]))
    b = torch.cat(boxes, 1)
    xywh = torch.cat([(b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]], -1)
    return torch.cat([xywh, torch.cat(facs, 1), torch.cat(probs, 1)], -1)


def filter_scores_and_topk(scores, score_thr, topk):
    """(M, C) scores -> kept scores (k,), labels (k,), row indices (k,): scores > thr, best ``topk``."""
    mask = scores > score_thr
    vals = scores[mask]
    idx = torch.nonzero(mask)
    order = torch.sort(vals, descending=True, stable=True).indices
    if topk is not None and topk > 0:
        order = order[:topk]
    rows, labels = idx[order].unbind(1)
    return vals[order], labels, rows


def multiclass_nms(bboxes, scores, score_thr, nms_cfg, max_num=-1, score_factors=None):
    """MMDetection's ``multiclass_nms``: ``bboxes`` (N, nc*4) class-specific or (N, 4) shared, ``scores``
    (N, nc + 1) with background last -> (n, 6) x1, y1, x2, y2, score, label. Candidates are the
    (box, class) pairs, row-major, with score > ``score_thr`` (tested before multiplying
    ``score_factors``), then :func:`batched_nms` and the best ``max_num``."""
    n, nc = scores.shape[0], scores.shape[1] - 1
    if n == 0:
        return bboxes.new_zeros((0, 6))
    b = bboxes.reshape(n, -1, 4)
    b = b.expand(n, nc, 4) if b.shape[1] == 1 else b
    b = b.reshape(-1, 4)
    s = scores[:, :-1].reshape(-1)
    labels = torch.arange(nc).expand(n, nc).reshape(-1)
    ok = s > score_thr
    if score_factors is not None:
        s = s * score_factors[:, None].expand(n, nc).reshape(-1)
    inds = torch.nonzero(ok).squeeze(1)
    b, s, labels = b[inds], s[inds], labels[inds]
    if b.numel() == 0:
        return bboxes.new_zeros((0, 6))
    keep = batched_nms(b, s, labels, nms_cfg)
    if max_num is not None and max_num > 0:
        keep = keep[:max_num]
    return torch.cat([b[keep], s[keep][:, None], labels[keep][:, None].to(b.dtype)], 1)


def _post(bboxes, scores, labels, cfg, factors=None, max_per_img=True, min_size=True):
    """BaseDenseHead._bbox_post_process (with_nms=True); ``rescale=True`` when ``cfg`` carries a
    ``_scale_factor`` (w, h): boxes divided by it first, before the size filter and NMS."""
    bboxes = rescale_boxes(bboxes, cfg.get("_scale_factor"))
    if factors is not None:
        scores = scores * factors
    if min_size and cfg.get("min_bbox_size", -1) >= 0:
        w = bboxes[:, 2] - bboxes[:, 0]
        h = bboxes[:, 3] - bboxes[:, 1]
        ok = (w > cfg["min_bbox_size"]) & (h > cfg["min_bbox_size"])
        bboxes, scores, labels = bboxes[ok], scores[ok], labels[ok]
    if bboxes.numel() > 0:
        keep = batched_nms(bboxes, scores, labels, cfg.get("nms"))
        bboxes, scores, labels = bboxes[keep], scores[keep], labels[keep]
        if max_per_img and cfg.get("max_per_img") is not None:
            n = int(cfg["max_per_img"])
            bboxes, scores, labels = bboxes[:n], scores[:n], labels[:n]
    return torch.cat([bboxes, scores[:, None], labels[:, None].to(bboxes.dtype)], 1)


def _image(t, b):
    """Image ``b`` of nested lists / tuples of (B, ...) tensors, as batch-of-1 tensors."""
    if isinstance(t, (list, tuple)):
        return type(t)(_image(e, b) for e in t)
    return t[b:b + 1]


@torch.no_grad()
def predict(head, groups, img_hw, cfg, scale_factor=None):
    cfg = dict(cfg or {})
    cfg["_scale_factor"] = scale_factor
    out = []
    bsz = groups[0][0].shape[0]
    for b in range(bsz):
        if head.kind == "yolox":
            d = decode(head, [[g[b:b + 1] for g in grp] for grp in groups], img_hw)[0]
            obj, prob = d[:, 4], d[:, 5:]
            max_s, labels = prob.max(1)
            ok = obj * max_s >= float(cfg.get("score_thr", 0.0))
            boxes = torch.cat([d[:, :2] - d[:, 2:4] / 2, d[:, :2] + d[:, 2:4] / 2], 1)[ok]
            out.append(_post(boxes, max_s[ok] * obj[ok], labels[ok], cfg, max_per_img=False, min_size=False))
        elif head.kind == "yolov3":
            d = decode(head, [[g[b:b + 1] for g in grp] for grp in groups], img_hw)[0]
            boxes = torch.cat([d[:, :2] - d[:, 2:4] / 2, d[:, :2] + d[:, 2:4] / 2], 1)
            obj, prob = d[:, 4], d[:, 5:]
            conf_thr = float(cfg.get("conf_thr", -1))
            if conf_thr > 0:
                ok = obj >= conf_thr
                boxes, obj, prob = boxes[ok], obj[ok], prob[ok]
            s, lab, rows = filter_scores_and_topk(prob, float(cfg.get("score_thr", 0)), int(cfg.get("nms_pre", -1)))
            out.append(_post(boxes[rows], s, lab, cfg, factors=obj[rows]))
        elif hasattr(head, "predict_by_feat"):  # heads with their own post-processing (PAA, SABL, ...)
            out.append(head.predict_by_feat(_image(groups, b), img_hw, cfg))
        else:
            out.append(_dense_one(head, [[g[b:b + 1] for g in grp] for grp in groups], img_hw, cfg))
    return out


def _dense_one(head, groups, img_hw, cfg):
    """BaseDenseHead / GFLHead ``_predict_by_feat_single`` for one image (batch of 1 tensors)."""
    nc = head.cls_out_channels
    k = 4 * (head.reg_max + 1) if head.kind == "gfl" else 4
    nms_pre = int(cfg.get("nms_pre", -1))
    thr = float(cfg.get("score_thr", 0))
    all_b, all_s, all_l, all_f = [], [], [], []
    for i, cls in enumerate(groups[0]):
        hw = (cls.shape[2], cls.shape[3])
        scores = _cls_prob(head, _flat(cls, nc))[0]
        reg = _flat(groups[1][i], k)[0]
        s, lab, rows = filter_scores_and_topk(scores, thr, nms_pre)
        # decode only the kept rows, as MMDetection does (same values: decoding is per row)
        all_b.append(_level_boxes(head, i, reg, hw, img_hw)[rows])
        all_s.append(s)
        all_l.append(lab)
        if len(groups) > 2:
            all_f.append(_flat(groups[2][i], 1)[0, :, 0].sigmoid()[rows])
    factors = torch.cat(all_f) if all_f else None
    return _post(torch.cat(all_b), torch.cat(all_s), torch.cat(all_l), cfg, factors=factors)
