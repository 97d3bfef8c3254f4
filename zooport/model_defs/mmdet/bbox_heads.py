"""R-CNN box heads: ``ConvFCBBoxHead`` and its named variants (``Shared2FCBBoxHead``,
``Shared4Conv1FCBBoxHead``), with MMDetection's test-time box decoding.

``forward(x)``: RoI features (N, C, S, S) -> ``(cls_score, bbox_pred)``:
(N, nc + 1) logits (background last) and (N, 4) class-agnostic or
(N, nc * 4) class-specific ``DeltaXYWHBBoxCoder`` deltas.

``predict(rois, cls_score, bbox_pred, img_hw, cfg, scale_factor)``: one
image's rows -> (n, 6) detections as ``BBoxHead._predict_by_feat_single``:
softmax scores, boxes decoded per class from the RoIs and clipped to
``img_hw``, divided by ``scale_factor`` (w, h) when given (before NMS, as
MMDetection rescales), then :func:`~.predict.multiclass_nms` per ``cfg``
(``test_cfg.rcnn``: ``score_thr``, ``nms``, ``max_per_img``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from .coders import decode_with, delta_coder, rescale_boxes
from .common import ConvModule, reject_unsupported
from .predict import multiclass_nms

NAMED = {"Shared2FCBBoxHead": {"num_shared_fcs": 2},
         "Shared4Conv1FCBBoxHead": {"num_shared_convs": 4, "num_shared_fcs": 1}}


class ConvFCBBoxHead(nn.Module):
    def __init__(self, cfg: dict, where: str = "roi_head.bbox_head"):
        super().__init__()
        cfg = {**NAMED.get(cfg.get("type"), {}), **cfg}
        # reg_decoded_bbox only changes the loss (options.TRAINING_ONLY)
        reject_unsupported(cfg, {"with_avg_pool": False, "predict_box_type": "hbox"}, where)
        for k in ("reg_predictor_cfg", "cls_predictor_cfg"):
            if (cfg.get(k) or {"type": "Linear"}).get("type") != "Linear":
                raise ConfigError(f"{where}: {k} type {cfg[k].get('type')!r} is not supported (only Linear)")
        loss = cfg.get("loss_cls") or {}
        if loss.get("use_sigmoid", False) or loss.get("type", "CrossEntropyLoss") not in ("CrossEntropyLoss", "FocalLoss"):
            raise ConfigError(f"{where}: loss_cls {loss.get('type')!r} with use_sigmoid="
                              f"{loss.get('use_sigmoid')} is not supported (softmax classification only)")
        self.num_classes = int(cfg.get("num_classes", 80))
        self.roi_feat_size = int(cfg.get("roi_feat_size", 7))
        self.in_channels = int(cfg.get("in_channels", 256))
        self.conv_out_channels = int(cfg.get("conv_out_channels", 256))
        self.fc_out_channels = int(cfg.get("fc_out_channels", 1024))
        self.reg_class_agnostic = bool(cfg.get("reg_class_agnostic", False))
        self.with_cls, self.with_reg = bool(cfg.get("with_cls", True)), bool(cfg.get("with_reg", True))
        self.bbox_coder = delta_coder(cfg.get("bbox_coder"), where + ".bbox_coder")
        self._conv_cfg, self._norm_cfg, self._where = cfg.get("conv_cfg"), cfg.get("norm_cfg"), where
        n = {k: int(cfg.get(k, 0)) for k in ("num_shared_convs", "num_shared_fcs", "num_cls_convs", "num_cls_fcs",
                                             "num_reg_convs", "num_reg_fcs")}
        self.num_shared_fcs = n["num_shared_fcs"]
        area = self.roi_feat_size ** 2
        self.shared_convs, self.shared_fcs, shared = self._branch(n["num_shared_convs"], n["num_shared_fcs"],
                                                                  self.in_channels, True)
        self.cls_convs, self.cls_fcs, cls_dim = self._branch(n["num_cls_convs"], n["num_cls_fcs"], shared)
        self.reg_convs, self.reg_fcs, reg_dim = self._branch(n["num_reg_convs"], n["num_reg_fcs"], shared)
        if self.num_shared_fcs == 0:
            cls_dim *= area if n["num_cls_fcs"] == 0 else 1
            reg_dim *= area if n["num_reg_fcs"] == 0 else 1
        if self.with_cls:
            self.fc_cls = nn.Linear(cls_dim, self.num_classes + 1)
        if self.with_reg:
            self.fc_reg = nn.Linear(reg_dim, 4 if self.reg_class_agnostic else 4 * self.num_classes)

    def _branch(self, n_convs, n_fcs, cin, shared=False):
        convs, fcs, dim = nn.ModuleList(), nn.ModuleList(), cin
        for i in range(n_convs):
            convs.append(ConvModule(dim if i == 0 else self.conv_out_channels, self.conv_out_channels, 3, padding=1,
                                    conv_cfg=self._conv_cfg, norm_cfg=self._norm_cfg, where=self._where))
        if n_convs:
            dim = self.conv_out_channels
        if n_fcs:
            if shared or self.num_shared_fcs == 0:
                dim *= self.roi_feat_size ** 2
            for i in range(n_fcs):
                fcs.append(nn.Linear(dim if i == 0 else self.fc_out_channels, self.fc_out_channels))
            dim = self.fc_out_channels
        return convs, fcs, dim

    def forward(self, x):
        for conv in self.shared_convs:
            x = conv(x)
        if self.num_shared_fcs:
            x = x.flatten(1)
            for fc in self.shared_fcs:
                x = F.relu(fc(x))
        xc, xr = x, x
        for convs, fcs, name in ((self.cls_convs, self.cls_fcs, "c"), (self.reg_convs, self.reg_fcs, "r")):
            y = xc if name == "c" else xr
            for conv in convs:
                y = conv(y)
            y = y.flatten(1) if y.dim() > 2 else y
            for fc in fcs:
                y = F.relu(fc(y))
            if name == "c":
                xc = y
            else:
                xr = y
        return (self.fc_cls(xc) if self.with_cls else None), (self.fc_reg(xr) if self.with_reg else None)

    def decode(self, rois, bbox_pred, img_hw):
        """(N, 5) rois + (N, 4k) deltas -> (N, 4k) boxes clipped to ``img_hw``."""
        n = rois.shape[0]
        k = bbox_pred.shape[1] // 4
        if n == 0:
            return bbox_pred.new_zeros((0, 4 * k))
        pri = rois[:, 1:].repeat_interleave(k, dim=0)
        return decode_with(self.bbox_coder, pri, bbox_pred.reshape(-1, 4), img_hw).reshape(n, -1)

    def regress_by_class(self, rois, labels, bbox_pred, img_hw):
        """Cascade refinement: the boxes of ``labels``' deltas (or the agnostic ones), (N, 4)."""
        if not self.reg_class_agnostic:
            bbox_pred = torch.gather(bbox_pred, 1, (labels * 4)[:, None] + torch.arange(4))
        return decode_with(self.bbox_coder, rois[:, 1:], bbox_pred, img_hw)

    def predict(self, rois, cls_score, bbox_pred, img_hw, cfg, scale_factor=None):
        scores = F.softmax(cls_score, dim=-1)
        boxes = rescale_boxes(self.decode(rois, bbox_pred, img_hw), scale_factor)
        return multiclass_nms(boxes, scores, float(cfg.get("score_thr", 0.05)), cfg.get("nms"),
                              int(cfg.get("max_per_img", -1)))
