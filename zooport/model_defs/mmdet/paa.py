"""PAA (probabilistic anchor assignment) at inference: ATSS's head with an IoU branch and score voting.

``forward`` is ATSSHead's: [cls (A*nc), reg (A*4 deltas, scaled), iou logits (A)] per level.
Post-processing (MMDetection 3.3 ``PAAHead._predict_by_feat_single`` / ``_bbox_post_process``):
per level the top ``nms_pre`` positions by max_c sqrt(sigmoid(cls_c) * sigmoid(iou)), DeltaXYWH decode,
scores sqrt(cls * iou) for every class, ``multiclass_nms`` (score_thr, class-aware NMS, max_per_img),
then, with ``score_voting``, every kept box replaced by the average of same-class candidates (score >
score_thr) weighted by exp(-(1 - IoU)^2 / 0.025) * score over those with IoU > 0.01; its score is kept.
"""
from __future__ import annotations

import torch

from .heads import ATSSHead


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, 4) x (m, 4) xyxy -> (n, m) IoU, mmdet's ``bbox_overlaps`` (union clamped at 1e-6)."""
    from ...postprocess.core import box_iou as iou

    return iou(a, b, eps=1e-6, clamp=True)


class PAAHead(ATSSHead):
    kind = "paa"

    def __init__(self, cfg, where="bbox_head"):
        super().__init__(cfg, where)
        self.score_voting = bool(cfg.get("score_voting", True))

    def predict_by_feat(self, groups, img_hw, cfg):
        """One image (batch of 1 tensors) -> (n, 6) x1, y1, x2, y2, score, label."""
        from .predict import _flat, multiclass_nms
        from .coders import delta_xywh_decode

        nms_pre = int(cfg.get("nms_pre", -1))
        c = self.bbox_coder
        boxes, scores, facs = [], [], []
        for i, cls in enumerate(groups[0]):
            h, w = cls.shape[2], cls.shape[3]
            s = _flat(cls, self.cls_out_channels)[0].sigmoid()
            reg = _flat(groups[1][i], 4)[0]
            f = _flat(groups[2][i], 1)[0, :, 0].sigmoid()
            pri = self.prior_generator.level(i, h, w)
            if 0 < nms_pre < s.shape[0]:
                top = (s * f[:, None]).sqrt().max(1).values.topk(nms_pre).indices
                pri, reg, s, f = pri[top], reg[top], s[top], f[top]
            boxes.append(delta_xywh_decode(pri, reg, c["means"], c["stds"], img_hw if c["clip_border"] else None))
            scores.append(s)
            facs.append(f)
        boxes, facs = torch.cat(boxes), torch.cat(facs)
        nms_scores = (torch.cat(scores) * facs[:, None]).sqrt()
        thr = float(cfg.get("score_thr", 0))
        bg = nms_scores.new_zeros(nms_scores.shape[0], 1)  # MMDetection's dummy background column
        dets = multiclass_nms(boxes, torch.cat([nms_scores, bg], 1), thr, cfg.get("nms"),
                              int(cfg.get("max_per_img", -1)))
        if self.score_voting and len(dets):
            dets = _score_voting(dets, boxes, nms_scores, thr)
        return dets


def _score_voting(dets, boxes, scores, thr):
    """Kept boxes re-estimated from the same-class candidates, grouped by class in ascending order
    (the order MMDetection returns them in)."""
    cand_rows, cand_labels = torch.nonzero(scores > thr, as_tuple=True)
    cand_boxes, cand_scores = boxes[cand_rows], scores[cand_rows, cand_labels]
    out = []
    for cls in torch.unique(cand_labels).tolist():
        m = cand_labels == cls
        d = dets[dets[:, 5] == cls]
        if not len(d):
            continue
        cb, cs = cand_boxes[m], cand_scores[m]
        ious = box_iou(d[:, :4], cb)
        w = torch.exp(-(1 - ious) ** 2 / 0.025) * cs[None, :] * (ious > 0.01)
        voted = (w @ cb) / w.sum(1, keepdim=True)
        out.append(torch.cat([voted, d[:, 4:]], 1))
    return torch.cat(out) if out else dets[:0]
