"""SABL (side-aware boundary localisation) R-CNN box head and its ``BucketingBBoxCoder``.

``SABLHead.forward(x)``: RoI features (N, C, S, S) -> ``(cls_score, (bucket_cls,
bucket_offset))``: (N, nc + 1) logits and two (N, 4 * side) tensors, side =
ceil(num_buckets / 2) buckets per box side, ordered left, right (the x
features), top, bottom (the y features); each side's buckets run from the
box edge inwards.

Decoding (``bucket2bbox``): the proposal is widened by ``scale_factor`` about
its centre and cut into ``num_buckets`` buckets per axis; each side takes its
most probable bucket (softmax over the side's buckets), whose centre is moved
by the predicted offset times the bucket size; boxes are clipped to
(w - 1, h - 1). The localisation confidence is the mean over the four sides
of the top bucket probability plus the second one when the two are
neighbours; it multiplies the class scores in ``multiclass_nms``.
"""
from __future__ import annotations


import math

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from .coders import bucket_decode, rescale_boxes
from .common import ConvModule
from .predict import multiclass_nms


class SABLHead(nn.Module):
    def __init__(self, cfg: dict, where: str = "roi_head.bbox_head"):
        super().__init__()
        coder = dict(cfg.get("bbox_coder") or {"type": "BucketingBBoxCoder", "num_buckets": 14, "scale_factor": 1.7})
        if coder.get("type") != "BucketingBBoxCoder":
            raise ConfigError(f"{where}.bbox_coder: SABLHead needs BucketingBBoxCoder, got {coder.get('type')!r}")
        if not cfg.get("reg_class_agnostic", True):
            raise ConfigError(f"{where}: SABLHead needs reg_class_agnostic=True")
        self.num_buckets = int(coder["num_buckets"])
        self.coder_scale = float(coder.get("scale_factor", 1.7))
        self.clip_border = bool(coder.get("clip_border", True))
        self.num_classes = int(cfg["num_classes"])
        self.roi_feat_size = int(cfg.get("roi_feat_size", 7))
        self.up_ratio = int(cfg.get("reg_feat_up_ratio", 2))
        if self.roi_feat_size * self.up_ratio != self.num_buckets or self.up_ratio < 2:
            raise ConfigError(f"{where}: roi_feat_size * reg_feat_up_ratio must equal num_buckets (and ratio >= 2)")
        cin, rin = int(cfg.get("cls_in_channels", 256)), int(cfg.get("reg_in_channels", 256))
        self.reg_in_channels = rin
        cls_out = int(cfg.get("cls_out_channels", 1024))
        off_out, rcls_out = int(cfg.get("reg_offset_out_channels", 256)), int(cfg.get("reg_cls_out_channels", 256))
        pre_k, post_k = int(cfg.get("reg_pre_kernel", 3)), int(cfg.get("reg_post_kernel", 3))
        norm = cfg.get("norm_cfg")
        self.cls_fcs = self._fcs(int(cfg.get("num_cls_fcs", 1)), cin * self.roi_feat_size ** 2, cls_out)
        self.upsample_x = nn.ConvTranspose1d(rin, rin, self.up_ratio, stride=self.up_ratio)
        self.upsample_y = nn.ConvTranspose1d(rin, rin, self.up_ratio, stride=self.up_ratio)
        self.reg_pre_convs = nn.ModuleList([ConvModule(rin, rin, pre_k, padding=pre_k // 2, norm_cfg=norm, where=where)
                                            for _ in range(int(cfg.get("reg_pre_num", 2)))])
        post = int(cfg.get("reg_post_num", 1))
        self.reg_post_conv_xs = nn.ModuleList([ConvModule(rin, rin, (1, post_k), padding=(0, post_k // 2),
                                                          norm_cfg=norm, where=where) for _ in range(post)])
        self.reg_post_conv_ys = nn.ModuleList([ConvModule(rin, rin, (post_k, 1), padding=(post_k // 2, 0),
                                                          norm_cfg=norm, where=where) for _ in range(post)])
        self.reg_conv_att_x = nn.Conv2d(rin, 1, 1)
        self.reg_conv_att_y = nn.Conv2d(rin, 1, 1)
        self.fc_cls = nn.Linear(cls_out, self.num_classes + 1)
        n_reg = int(cfg.get("num_reg_fcs", 0))
        self.reg_cls_fcs = self._fcs(n_reg, rin, rcls_out)
        self.reg_offset_fcs = self._fcs(n_reg, rin, off_out)
        self.fc_reg_cls = nn.Linear(rcls_out if n_reg else rin, 1)
        self.fc_reg_offset = nn.Linear(off_out if n_reg else rin, 1)

    @staticmethod
    def _fcs(n, cin, cout):
        return nn.ModuleList([nn.Linear(cin if i == 0 else cout, cout) for i in range(n)])

    def _side_features(self, x):
        """(N, C, S, S) -> x and y side-aware features, each (N, 2S, C)."""
        for conv in self.reg_pre_convs:
            x = conv(x)
        ax = self.reg_conv_att_x(x).sigmoid()
        ay = self.reg_conv_att_y(x).sigmoid()
        fx = (x * (ax / ax.sum(dim=2, keepdim=True))).sum(dim=2)  # attention pooled over rows: (N, C, S)
        fy = (x * (ay / ay.sum(dim=3, keepdim=True))).sum(dim=3)
        fx, fy = fx.unsqueeze(2), fy.unsqueeze(3)
        for cx, cy in zip(self.reg_post_conv_xs, self.reg_post_conv_ys):
            fx, fy = cx(fx), cy(fy)
        fx = F.relu(self.upsample_x(fx.squeeze(2)))
        fy = F.relu(self.upsample_y(fy.squeeze(3)))
        return fx.transpose(1, 2), fy.transpose(1, 2)

    def _reg_pred(self, f):
        n = f.shape[0]
        xo = xc = f.reshape(-1, self.reg_in_channels)
        for fc in self.reg_offset_fcs:
            xo = F.relu(fc(xo))
        for fc in self.reg_cls_fcs:
            xc = F.relu(fc(xc))
        return self.fc_reg_offset(xo).reshape(n, -1), self.fc_reg_cls(xc).reshape(n, -1)

    def _split(self, t):
        """Buckets of the near side in order, then the far side's flipped (edge inwards)."""
        size = t.shape[1]
        return torch.cat([t[:, :int(math.ceil(size / 2))], t[:, int(math.floor(size / 2)):].flip(dims=(1,))], -1)

    def forward(self, x):
        fx, fy = self._side_features(x)
        ox, cx = self._reg_pred(fx)
        oy, cy = self._reg_pred(fy)
        bucket_cls = torch.cat([self._split(cx), self._split(cy)], -1)
        bucket_off = torch.cat([self._split(ox), self._split(oy)], -1)
        c = x.flatten(1)
        for fc in self.cls_fcs:
            c = F.relu(fc(c))
        return self.fc_cls(c), (bucket_cls, bucket_off)

    def predict(self, rois, cls_score, bbox_pred, img_hw, cfg, scale_factor=None):
        scores = F.softmax(cls_score, dim=1)
        boxes, conf = bucket_decode(rois[:, 1:], bbox_pred[0], bbox_pred[1], self.num_buckets, self.coder_scale,
                                    img_hw if self.clip_border else None)
        boxes = rescale_boxes(boxes, scale_factor)
        return multiclass_nms(boxes, scores, float(cfg.get("score_thr", 0.05)), cfg.get("nms"),
                              int(cfg.get("max_per_img", -1)), score_factors=conf)
