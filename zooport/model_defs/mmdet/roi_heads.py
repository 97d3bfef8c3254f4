"""R-CNN RoI heads: ``StandardRoIHead`` (and ``DynamicRoIHead`` / ``PISARoIHead``, which differ from it
only in training) and ``CascadeRoIHead``.

``forward(feats, rois)`` is MMDetection's ``_forward`` for given RoIs
((N, 5) rows ``batch_index x1 y1 x2 y2``):

* standard: ``[cls_score, bbox_pred]`` (see :mod:`.bbox_heads`; SABL's
  ``bbox_pred`` is the pair ``(bucket_cls, bucket_offset)``);
* cascade: one ``[rois, cls_score, bbox_pred]`` per stage, the rois of stage
  s + 1 being stage s's ``regress_by_class`` with the arg-max non-background
  class of its logits, clipped to the image. MMDetection's final outputs are
  the mean of the stages' logits and the last stage's deltas.

``predict(feats, proposals, img_hw, cfg, scale_factor)``: per image (n, 6)
detections following ``test_cfg.rcnn`` (cascade: the last head decodes the
last stage's RoIs, scored by the stage-averaged logits).
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import ConfigError
from .registry import build_component
from .bbox_heads import NAMED, ConvFCBBoxHead
from .roi_align import SingleRoIExtractor
from .sabl import SABLHead

BBOX_HEADS = {"ConvFCBBoxHead": ConvFCBBoxHead, **{k: ConvFCBBoxHead for k in NAMED}, "SABLHead": SABLHead}
EXTRACTORS = {"SingleRoIExtractor": SingleRoIExtractor}


def rois_from(proposals):
    """List over images of (n, 4+) boxes -> (sum n, 5) rois with the batch index first (``bbox2roi``)."""
    return torch.cat([torch.cat([torch.full_like(p[:, :1], i), p[:, :4]], 1) for i, p in enumerate(proposals)], 0)


def _check(cfg, where):
    for k in ("mask_head", "mask_roi_extractor", "shared_head", "semantic_head"):
        if cfg.get(k):
            raise ConfigError(f"model.{where}: {k} is not supported (zooport reads box detectors only)")


class StandardRoIHead(nn.Module):
    kind = "standard"

    def __init__(self, cfg: dict, where: str = "roi_head"):
        super().__init__()
        _check(cfg, where)
        self.extractor = build_component(EXTRACTORS, cfg.get("bbox_roi_extractor"), where + ".bbox_roi_extractor")
        self.bbox_head = build_component(BBOX_HEADS, cfg.get("bbox_head"), where + ".bbox_head")

    @property
    def num_classes(self):
        return self.bbox_head.num_classes

    def features(self, feats, rois):
        return self.extractor(feats[:self.extractor.num_inputs], rois)

    def forward(self, feats, rois):
        return list(self.bbox_head(self.features(feats, rois)))

    @torch.no_grad()
    def predict(self, feats, proposals, img_hw, cfg, scale_factor=None):
        rois = rois_from(proposals)
        cls, reg = self.forward(feats, rois)
        out = []
        for b in range(len(proposals)):
            m = rois[:, 0] == b
            r = reg[m] if torch.is_tensor(reg) else tuple(t[m] for t in reg)
            out.append(self.bbox_head.predict(rois[m], cls[m], r, img_hw, cfg, scale_factor))
        return out


class CascadeRoIHead(nn.Module):
    kind = "cascade"

    def __init__(self, cfg: dict, where: str = "roi_head"):
        super().__init__()
        _check(cfg, where)
        self.num_stages = int(cfg["num_stages"])
        ext, heads = cfg.get("bbox_roi_extractor"), cfg.get("bbox_head")
        ext = ext if isinstance(ext, (list, tuple)) else [ext] * self.num_stages
        heads = heads if isinstance(heads, (list, tuple)) else [heads] * self.num_stages
        if len(ext) != self.num_stages or len(heads) != self.num_stages:
            raise ConfigError(f"model.{where}: num_stages={self.num_stages} but {len(ext)} roi extractors and "
                              f"{len(heads)} bbox heads")
        # extractors hold no weights: a plain list keeps the checkpoint keys roi_head.bbox_head.S.*
        self.extractors = [build_component(EXTRACTORS, e, f"{where}.bbox_roi_extractor.{i}") for i, e in enumerate(ext)]
        self.bbox_head = nn.ModuleList([build_component(BBOX_HEADS, h, f"{where}.bbox_head.{i}") for i, h in enumerate(heads)])
        if any(isinstance(h, SABLHead) for h in self.bbox_head):
            raise ConfigError(f"model.{where}: SABLHead in a CascadeRoIHead is not supported")

    @property
    def num_classes(self):
        return self.bbox_head[-1].num_classes

    def forward(self, feats, rois, img_hw=None):
        """Per stage [rois, cls_score, bbox_pred]; ``img_hw`` clips refined RoIs (default: input size)."""
        stages = []
        for s, (ext, head) in enumerate(zip(self.extractors, self.bbox_head)):
            cls, reg = head(ext(feats[:ext.num_inputs], rois))
            stages.append([rois, cls, reg])
            if s < self.num_stages - 1:
                labels = cls[:, :-1].argmax(dim=1)
                rois = torch.cat([rois[:, :1], head.regress_by_class(rois, labels, reg, img_hw)], 1)
        return stages

    @staticmethod
    def mean_scores(stages):
        """MMDetection's ``sum(stage logits) / num_stages`` (Python ``sum``: left to right)."""
        return sum(st[1] for st in stages) / float(len(stages))

    @torch.no_grad()
    def predict(self, feats, proposals, img_hw, cfg, scale_factor=None):
        stages = self.forward(feats, rois_from(proposals), img_hw)
        rois, cls, reg = stages[-1][0], self.mean_scores(stages), stages[-1][2]
        out = []
        for b in range(len(proposals)):
            m = rois[:, 0] == b
            out.append(self.bbox_head[-1].predict(rois[m], cls[m], reg[m], img_hw, cfg, scale_factor))
        return out


ROI_HEADS = {"StandardRoIHead": StandardRoIHead, "DynamicRoIHead": StandardRoIHead, "PISARoIHead": StandardRoIHead,
             "CascadeRoIHead": CascadeRoIHead}
