"""The whole R-CNN inference path as one traceable module, for ONNX export of two-stage models.

``TwoStageNMS(model)(x)`` -> ``num_dets`` (B, 1) int64, ``boxes`` (B, M, 4)
xyxy in input pixels, ``scores`` (B, M), ``classes`` (B, M) int64, M =
``test_cfg.rcnn.max_per_img``; rows past ``num_dets`` are zero (the layout of
``--nms`` exports). Per image, with static shapes throughout:

1. RPN: per level the ``nms_pre`` best objectness scores (``TopK``), their
   anchors' boxes decoded and clipped to the input size; boxes failing
   ``min_bbox_size`` get score -1; one ``NonMaxSuppression`` over all levels
   with mmcv's per-level coordinate offset (max coordinate + 1) keeps at
   most ``max_per_img`` proposals, padded to exactly that many (padding rows
   are all-zero boxes, marked invalid).
2. RoI head on the padded proposals: ``RoiAlign`` per FPN level (every RoI at
   every level, the RoI's own level selected with ``Where``), the box head(s)
   (Cascade: per-stage refinement and stage-averaged logits).
3. ``multiclass_nms``: (RoI, class) pairs with score > ``score_thr`` of valid
   RoIs, class offsets of (max candidate coordinate + 1), one
   ``NonMaxSuppression``, the best ``max_per_img`` in NMS order.

This equals the eager :meth:`TwoStageDetector.predict` (tested) except where
mmcv switches to per-class NMS (10000 candidates or more): the graph keeps
the offset form, which can differ only through float rounding of IoUs at the
threshold. Boxes are clipped to the full input (there is no ``img_shape``
input); feed an unpadded image, or clip afterwards.
"""
from __future__ import annotations

import torch
from torch import nn

from .nms_graph import _NonMaxSuppression

_SENTINEL = -1.0


def _nms(boxes, scores, iou, max_out):
    """ONNX NonMaxSuppression over (N, 4) boxes and (N,) scores (> -0.5 counts) -> kept indices, best first."""
    sel = _NonMaxSuppression.apply(boxes[None], scores[None, None], torch.tensor([int(max_out)], dtype=torch.int64),
                                   torch.tensor([float(iou)], dtype=torch.float32),
                                   torch.tensor([-0.5], dtype=torch.float32))
    return sel[:, 2]


def _pad_select(keep, n: int, size: int):
    """Kept indices (K,) in order -> (size,) indices into n rows (padding points at row n) and validity."""
    k = keep.shape[0]
    prio = torch.full((n + size,), _SENTINEL)
    prio = prio.index_put((keep,), (k - torch.arange(k)).to(prio.dtype))
    top, idx = prio.topk(size, largest=True, sorted=True)
    valid = top >= 0
    return torch.where(valid, idx, torch.full_like(idx, n)), valid


def _offset(boxes, labels, valid):
    """mmcv batched_nms offsets: labels * (max coordinate of the candidates + 1)."""
    big = torch.where(valid[:, None], boxes, torch.full_like(boxes, -3.0e38)).max()
    return boxes + (labels.to(boxes.dtype) * (big + 1.0))[:, None]


class TwoStageNMS(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.rpn_cfg = dict(model.test_cfg["rpn"])
        self.rcnn_cfg = dict(model.test_cfg["rcnn"])

    def _proposals(self, cls, reg, b, hw):
        head = self.model.rpn_head
        from ..model_defs.mmdet.coders import decode_with

        nms_pre = int(self.rpn_cfg.get("nms_pre", -1))
        boxes, scores, lvls = [], [], []
        for i in range(len(cls)):
            s, d, pri = head.level_candidates(cls, reg, b, i, nms_pre)  # the sort exports as TopK
            boxes.append(decode_with(head.bbox_coder, pri, d, hw))
            scores.append(s)
            lvls.append(torch.full((s.shape[0],), i, dtype=torch.int64))
        bx, sc, lv = torch.cat(boxes), torch.cat(scores), torch.cat(lvls)
        ok = torch.ones_like(sc, dtype=torch.bool)
        ms = self.rpn_cfg.get("min_bbox_size", -1)
        if ms is not None and ms >= 0:
            ok = ((bx[:, 2] - bx[:, 0]) > ms) & ((bx[:, 3] - bx[:, 1]) > ms)
        masked = torch.where(ok, sc, torch.full_like(sc, _SENTINEL))
        n_out = int(self.rpn_cfg.get("max_per_img", 1000))
        keep = _nms(_offset(bx, lv, ok), masked, float(self.rpn_cfg["nms"].get("iou_threshold", 0.7)), n_out)
        idx, valid = _pad_select(keep, bx.shape[0], n_out)
        bx = torch.cat([bx, bx.new_zeros((1, 4))])[idx]
        return torch.where(valid[:, None], bx, torch.zeros_like(bx)), valid

    def _detections(self, rois, logits, deltas, head, roi_valid, hw):
        from ..model_defs.mmdet.coders import bucket_decode
        from ..model_defs.mmdet.sabl import SABLHead

        scores = logits.softmax(-1)
        n, nc = scores.shape[0], scores.shape[1] - 1
        factors = None
        if isinstance(head, SABLHead):
            boxes, factors = bucket_decode(rois[:, 1:], deltas[0], deltas[1], head.num_buckets, head.coder_scale,
                                           hw if head.clip_border else None)
        else:
            boxes = head.decode(rois, deltas, hw)
        boxes = boxes.reshape(n, -1, 4).expand(n, nc, 4).reshape(-1, 4) if boxes.shape[1] == 4 else \
            boxes.reshape(-1, 4)
        s = scores[:, :-1].reshape(-1)
        labels = torch.arange(nc).expand(n, nc).reshape(-1)
        valid = (s > float(self.rcnn_cfg.get("score_thr", 0.05))) & roi_valid[:, None].expand(n, nc).reshape(-1)
        if factors is not None:
            s = s * factors[:, None].expand(n, nc).reshape(-1)
        masked = torch.where(valid, s, torch.full_like(s, _SENTINEL))
        m = int(self.rcnn_cfg.get("max_per_img", 100))
        keep = _nms(_offset(boxes, labels, valid), masked, float(self.rcnn_cfg["nms"].get("iou_threshold", 0.5)), m)
        idx, ok = _pad_select(keep, boxes.shape[0], m)
        pad = lambda t: torch.cat([t, t.new_zeros((1,) + tuple(t.shape[1:]))])[idx]  # noqa: E731
        out_b = torch.where(ok[:, None], pad(boxes), torch.zeros((m, 4)))
        out_s = torch.where(ok, pad(s), torch.zeros((m,)))
        out_c = torch.where(ok, pad(labels), torch.zeros((m,), dtype=torch.int64))
        return ok.sum().reshape(1).to(torch.int64), out_b, out_s, out_c

    def forward(self, x):
        from ..model_defs.mmdet.roi_heads import CascadeRoIHead

        mdl = self.model
        hw = (int(x.shape[2]), int(x.shape[3]))
        feats = mdl.extract_feat(x)
        cls, reg = mdl.rpn_head(feats)
        outs = []
        for b in range(x.shape[0]):
            props, valid = self._proposals(cls, reg, b, hw)
            fb = [f[b:b + 1] for f in feats]
            rois = torch.cat([torch.zeros_like(props[:, :1]), props], 1)
            if isinstance(mdl.roi_head, CascadeRoIHead):
                stages = mdl.roi_head(fb, rois, hw)
                r, logits, deltas, head = stages[-1][0], mdl.roi_head.mean_scores(stages), stages[-1][2], \
                    mdl.roi_head.bbox_head[-1]
            else:
                logits, deltas = mdl.roi_head(fb, rois)
                r, head = rois, mdl.roi_head.bbox_head
            outs.append(self._detections(r, logits, deltas, head, valid, hw))
        return tuple(torch.stack([o[i] for o in outs]) for i in range(4))
