"""Guided-anchoring RetinaNet (``GARetinaHead``, MMDetection 3.3) at inference.

Per level: cls / reg towers; a location branch (``conv_loc``, 1 logit) and a shape branch
(``conv_shape``, 2 log-size deltas per square anchor); ``FeatureAdaption`` (a 1x1 conv of the shape
prediction gives the offsets of a 3x3 deformable conv, ``deform_groups`` 4) on both towers; then
masked convolutions: the class and box outputs are the plain 3x3 conv times the location mask
``sigmoid(loc) >= loc_filter_thr`` (mmcv's ``MaskedConv2d`` semantics: zero where the mask is off).
``forward`` -> [cls (nc), deltas (4), shape_pred (2), loc_pred (1)] per level.

Anchors are guided: each location's square anchor (``scales[0] * stride``) resized by
exp(shape deltas) (``anchor_coder``, ratio clip |log 1e-6|), kept only where the mask is on.
Post-processing: per level top ``nms_pre`` of the kept locations by max class score, DeltaXYWH
decode with ``bbox_coder``, ``multiclass_nms``. MMDetection masks a batch with its first image's
location mask; here every image uses its own (identical for one image).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ...errors import ConfigError
from ..deform_conv import DeformConv2d
from .anchors import build_prior_generator
from .common import conv2d
from .heads import _Stacked, _delta_coder


class FeatureAdaption(nn.Module):
    def __init__(self, channels: int, kernel: int, deform_groups: int):
        super().__init__()
        self.conv_offset = conv2d(2, deform_groups * kernel * kernel * 2, 1, bias=False)
        self.conv_adaption = DeformConv2d(channels, channels, kernel, 1, (kernel - 1) // 2,
                                          deform_groups=deform_groups)
        self.relu = nn.ReLU()

    def forward(self, x, shape):
        return self.relu(self.conv_adaption(x, self.conv_offset(shape.detach())))


class GARetinaHead(_Stacked):
    kind = "ga"

    def __init__(self, cfg, where="bbox_head"):
        super().__init__(cfg, where)
        self.prior_generator = build_prior_generator(cfg["square_anchor_generator"],
                                                     where + ".square_anchor_generator")
        if self.prior_generator.num_base_priors != 1:
            raise ConfigError(f"{where}: square_anchor_generator must give one anchor per location")
        self.strides = [int(s[0]) for s in self.prior_generator.strides]
        self.anchor_coder = _delta_coder({"bbox_coder": cfg.get("anchor_coder")}, where + ".anchor_coder")
        self.bbox_coder = _delta_coder(cfg, where)
        self.loc_filter_thr = float(cfg.get("loc_filter_thr", 0.01))
        dg = int(cfg.get("deform_groups", 4))
        self.conv_loc = conv2d(self.feat_channels, 1, 1)
        self.conv_shape = conv2d(self.feat_channels, 2, 1)
        self.feature_adaption_cls = FeatureAdaption(self.feat_channels, 3, dg)
        self.feature_adaption_reg = FeatureAdaption(self.feat_channels, 3, dg)
        self.retina_cls = conv2d(self.feat_channels, self.cls_out_channels, 3, 1, 1)
        self.retina_reg = conv2d(self.feat_channels, 4, 3, 1, 1)

    def forward(self, feats):
        cls, reg, shape, loc = [], [], [], []
        for x in feats:
            c, r = self._feats(x)
            lp, sp = self.conv_loc(c), self.conv_shape(r)
            mask = (lp.sigmoid() >= self.loc_filter_thr).to(x.dtype)
            cls.append(self.retina_cls(self.feature_adaption_cls(c, sp)) * mask)
            reg.append(self.retina_reg(self.feature_adaption_reg(r, sp)) * mask)
            shape.append(sp)
            loc.append(lp)
        return [cls, reg, shape, loc]

    def level_boxes(self, i, reg, shape, hw, img_hw, rows=None):
        """Flattened (M, 4) deltas and (M, 2) shape deltas of level ``i`` (its locations ``rows``; all,
        possibly for a batch flattened image-major, when None) -> (M, 4) boxes."""
        from .coders import delta_xywh_decode

        squares = self.prior_generator.level(i, hw[0], hw[1])
        if rows is not None:
            squares = squares[rows]
        elif reg.shape[0] != squares.shape[0]:
            squares = squares.repeat(reg.shape[0] // squares.shape[0], 1)
        a, b = self.anchor_coder, self.bbox_coder
        deltas = torch.cat([torch.zeros_like(shape), shape], -1)
        anchors = delta_xywh_decode(squares, deltas, a["means"], a["stds"], None, abs(math.log(1e-6)))
        return delta_xywh_decode(anchors, reg, b["means"], b["stds"], img_hw if b["clip_border"] else None)

    def predict_by_feat(self, groups, img_hw, cfg):
        """One image (batch of 1 tensors) -> (n, 6) x1, y1, x2, y2, score, label."""
        from .predict import _cls_prob, _flat, multiclass_nms

        nms_pre = int(cfg.get("nms_pre", -1))
        boxes, scores = [], []
        for i, cls in enumerate(groups[0]):
            hw = (cls.shape[2], cls.shape[3])
            keep = _flat(groups[3][i], 1)[0, :, 0].sigmoid() >= self.loc_filter_thr
            if not bool(keep.any()):
                continue
            s = _cls_prob(self, _flat(cls, self.cls_out_channels))[0][keep]
            reg, shp = _flat(groups[1][i], 4)[0][keep], _flat(groups[2][i], 2)[0][keep]
            squares_rows = torch.nonzero(keep).squeeze(1)
            if 0 < nms_pre < s.shape[0]:
                top = s.max(1).values.topk(nms_pre).indices
                s, reg, shp, squares_rows = s[top], reg[top], shp[top], squares_rows[top]
            boxes.append(self.level_boxes(i, reg, shp, hw, img_hw, squares_rows))
            scores.append(s)
        if not boxes:
            return groups[0][0].new_zeros((0, 6))
        scores = torch.cat(scores)
        scores = torch.cat([scores, scores.new_zeros(scores.shape[0], 1)], 1)  # MMDetection's dummy background
        return multiclass_nms(torch.cat(boxes), scores, float(cfg.get("score_thr", 0)), cfg.get("nms"),
                              int(cfg.get("max_per_img", -1)))
