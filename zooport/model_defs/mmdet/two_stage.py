"""Two-stage MMDetection detectors: ``FasterRCNN`` and ``CascadeRCNN`` (and the configs that are those
at inference: Libra R-CNN's FPN + ``BFP`` neck, ``DynamicRoIHead``, ``PISARoIHead``, ``SABLHead``).

State-dict keys equal an MMDetection checkpoint's (``backbone.*``, ``neck.*``
or ``neck.0.*`` / ``neck.1.*`` for a list of necks, ``rpn_head.*``,
``roi_head.bbox_head.*`` or ``roi_head.bbox_head.S.*`` for Cascade).

* ``extract_feat(x)``: the neck's levels (B, C, H / s, W / s).
* ``raw(x)``: ``[rpn_cls, rpn_reg, proposals, roi]``: the RPN maps (lists over
  levels of (B, A, H, W) and (B, 4A, H, W)), the proposals (list over images
  of (n, 5) ``x1 y1 x2 y2 score``), and the RoI head outputs for them
  (standard: ``[cls (N, nc + 1), reg]``; cascade: per stage
  ``[rois (N, 5), cls, reg]``), N = all images' proposals in order.
* ``predict(x, img_hw=None, scale_factor=None)``: per image (n, 6)
  ``x1 y1 x2 y2 score label`` exactly as MMDetection's ``predict``: proposals
  and boxes clipped to ``img_hw`` (the resized image before padding; default
  the input size), divided by ``scale_factor`` (w, h) when given
  (``rescale=True``).
* ``forward(x)`` (the shared interface): (B, P, 4 + 1 + nc) per proposal, the
  box of its best class (xywh, input pixels), 1, the class probabilities
  (softmax without background); P = ``max_per_img`` of ``test_cfg.rpn`` (rows
  padded with zeros). For exact MMDetection results use ``predict``; the ONNX
  export (:mod:`zooport.export.two_stage`) puts that whole path in the graph.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ...errors import ConfigError
from ..base import Detector
from ..input_norm import mmdet_input_norm
from .one_stage import MMDetModel
from .options import build_checked, check_detector_keys
from .registry import BACKBONES, NECKS, TWO_STAGE, build_component, native_kwargs, preprocess_spec
from .roi_heads import ROI_HEADS, CascadeRoIHead
from .rpn import RPNHead



class TwoStageDetector(Detector):
    family = "mmdet"
    two_stage = True  # ONNX export puts proposals, RoIAlign and NMS in the graph (zooport.export.two_stage)

    def __init__(self, model_cfg: dict, *, names=None, input_size=(800, 1333), preprocess=None, source=None):
        from .bfp import BFP

        t = model_cfg.get("type")
        if t not in TWO_STAGE:
            raise ConfigError(f"model: unknown two-stage detector type {t!r}; supported: {sorted(TWO_STAGE)}")
        check_detector_keys(model_cfg)
        for k in ("rpn_head", "roi_head"):
            if not isinstance(model_cfg.get(k), dict):
                raise ConfigError(f"model.{k}: missing (a {t} needs an RPN head and a RoI head)")
        test_cfg = copy.deepcopy(model_cfg.get("test_cfg") or {})
        if not isinstance(test_cfg.get("rpn"), dict) or not isinstance(test_cfg.get("rcnn"), dict):
            raise ConfigError("model.test_cfg: needs 'rpn' and 'rcnn' dicts")
        roi_cfg = model_cfg["roi_head"]
        head0 = roi_cfg.get("bbox_head")
        head0 = head0[-1] if isinstance(head0, (list, tuple)) and head0 else head0
        nc = int((head0 or {}).get("num_classes", 80))
        names = list(names) if names else [f"class{i}" for i in range(nc)]
        if len(names) != nc:
            raise ConfigError(f"model.roi_head.bbox_head: num_classes={nc} but {len(names)} class names given")
        super().__init__(names=names, stride=[1], input_size=input_size,
                         preprocess=preprocess_spec(model_cfg, given=preprocess), source=source)
        self.input_norm = mmdet_input_norm(model_cfg)  # RGB [0, 1] in, MMDetection's normalisation inside
        self.model_cfg = copy.deepcopy(model_cfg)
        self.test_cfg = test_cfg
        self.backbone = build_component(BACKBONES, model_cfg.get("backbone"), "backbone")
        necks = model_cfg.get("neck")
        registry = {**NECKS, "BFP": BFP}
        if isinstance(necks, (list, tuple)):
            self.neck = nn.ModuleList([build_component(registry, n, f"neck.{i}") for i, n in enumerate(necks)])
        else:
            self.neck = build_component(registry, necks, "neck") if necks else None
        self.rpn_head = build_component({"RPNHead": RPNHead}, model_cfg["rpn_head"], "rpn_head")
        rt = roi_cfg.get("type")
        if rt not in ROI_HEADS:
            raise ConfigError(f"model.roi_head: unknown module type {rt!r}; supported: {sorted(ROI_HEADS)}")
        self.roi_head = build_checked(ROI_HEADS[rt], roi_cfg, rt, "roi_head", label="model.roi_head")
        if isinstance(self.roi_head, CascadeRoIHead) != (t == "CascadeRCNN"):
            raise ConfigError(f"model: {t} with a {rt} is not supported (CascadeRCNN pairs with CascadeRoIHead)")
        # the RoI feature strides: the input must be a multiple of the largest (MMDetection pads to 32);
        # the RPN's extra max-pooled level (stride 64) accepts odd sizes
        ext = self.roi_head.extractors[0] if isinstance(self.roi_head, CascadeRoIHead) else self.roi_head.extractor
        self.stride = list(ext.featmap_strides)

    def extract_feat(self, x, img_hw=None):
        """Backbone + neck features of RGB [0, 1] ``x`` (normalised first; outside ``img_hw`` zero)."""
        feats = self.backbone(self.input_norm(x, img_hw))
        if isinstance(self.neck, nn.ModuleList):
            for n in self.neck:
                feats = n(feats)
        elif self.neck is not None:
            feats = self.neck(feats)
        return list(feats)

    def _hw(self, x, img_hw):
        return (int(x.shape[2]), int(x.shape[3])) if img_hw is None else (int(img_hw[0]), int(img_hw[1]))

    def raw(self, x, img_hw=None):
        hw = self._hw(x, img_hw)
        feats = self.extract_feat(x, img_hw)
        cls, reg = self.rpn_head(feats)
        props = self.rpn_head.proposals(cls, reg, hw, self.test_cfg["rpn"])
        from .roi_heads import rois_from

        rois = rois_from(props)
        roi = self.roi_head(feats, rois, hw) if isinstance(self.roi_head, CascadeRoIHead) else self.roi_head(feats, rois)
        return [cls, reg, props, roi]

    @torch.no_grad()
    def predict(self, x, img_hw=None, scale_factor=None, cfg: dict | None = None):
        hw = self._hw(x, img_hw)
        cfg = cfg or self.test_cfg
        feats = self.extract_feat(x, img_hw)
        cls, reg = self.rpn_head(feats)
        props = self.rpn_head.proposals(cls, reg, hw, cfg["rpn"])
        return self.roi_head.predict(feats, props, hw, cfg["rcnn"], scale_factor)

    def forward(self, x):
        """(B, P, 4 + 1 + nc): see the module docstring (eager; rows past an image's proposals are 0)."""
        feats = self.extract_feat(x)
        cls, reg = self.rpn_head(feats)
        props = self.rpn_head.proposals(cls, reg, self._hw(x, None), self.test_cfg["rpn"])
        from .roi_heads import rois_from

        rois = rois_from(props)
        if isinstance(self.roi_head, CascadeRoIHead):
            stages = self.roi_head(feats, rois, self._hw(x, None))
            rois, logits, deltas, head = stages[-1][0], self.roi_head.mean_scores(stages), stages[-1][2], \
                self.roi_head.bbox_head[-1]
        else:
            logits, deltas = self.roi_head(feats, rois)
            head = self.roi_head.bbox_head
        prob = logits.softmax(-1)[:, :-1]
        best = prob.argmax(1)
        if torch.is_tensor(deltas):
            boxes = head.decode(rois, deltas, self._hw(x, None)).reshape(rois.shape[0], -1, 4)
            boxes = boxes[torch.arange(rois.shape[0]), best if boxes.shape[1] > 1 else torch.zeros_like(best)]
        else:  # SABL: one box per RoI
            from .coders import bucket_decode

            hw = self._hw(x, None)
            boxes = bucket_decode(rois[:, 1:], deltas[0], deltas[1], head.num_buckets, head.coder_scale,
                                  hw if head.clip_border else None)[0]
        rows = torch.cat([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2],
                          torch.ones_like(boxes[:, :1]), prob], 1)
        p = int(self.test_cfg["rpn"].get("max_per_img", 1000))
        out = rows.new_zeros((x.shape[0], p, rows.shape[1]))
        for b in range(x.shape[0]):
            r = rows[rois[:, 0] == b][:p]
            out[b, :r.shape[0]] = r
        return out

    # the one-stage class's (same attributes): fold BN, and the config dict as the native architecture
    fuse = MMDetModel.fuse
    native_arch = MMDetModel.native_arch

    @classmethod
    def from_native(cls, arch: dict, meta: dict):
        return cls(arch["model"], **native_kwargs(meta, (800, 1333)))
