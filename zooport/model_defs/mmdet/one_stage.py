"""The one-stage MMDetection detectors as one native class, :class:`MMDetModel` (see the package docstring
for its tensors).
"""
from __future__ import annotations

import copy

import torch

from ...errors import ConfigError
from ..base import Detector
from ..input_norm import mmdet_input_norm
from .common import fuse_modules
from .options import check_detector_keys
from .registry import BACKBONES, DETECTORS, HEADS, NECKS, TWO_STAGE, build_component, native_kwargs, preprocess_spec


class MMDetModel(Detector):
    family = "mmdet"

    def __init__(self, model_cfg: dict, *, names=None, input_size=(640, 640), preprocess=None, source=None):
        t = model_cfg.get("type")
        if t not in DETECTORS:
            raise ConfigError(f"model: unknown detector type {t!r}; supported: {sorted(DETECTORS | TWO_STAGE)}")
        check_detector_keys(model_cfg)
        head_cfg = dict(model_cfg.get("bbox_head") or {})
        test_cfg = copy.deepcopy(model_cfg.get("test_cfg") or head_cfg.get("test_cfg") or {})
        head_cfg["test_cfg"] = test_cfg
        nc = int(head_cfg.get("num_classes", 80))
        names = list(names) if names else [f"class{i}" for i in range(nc)]
        if len(names) != nc:
            raise ConfigError(f"model.bbox_head: num_classes={nc} but {len(names)} class names given")
        pre = preprocess_spec(model_cfg, given=preprocess)
        super().__init__(names=names, stride=[1], input_size=input_size, preprocess=pre, source=source)
        self.input_norm = mmdet_input_norm(model_cfg)  # RGB [0, 1] in, MMDetection's normalisation inside
        self.model_cfg = copy.deepcopy(model_cfg)
        self.test_cfg = test_cfg
        self.backbone = build_component(BACKBONES, model_cfg.get("backbone"), "backbone")
        self.neck = build_component(NECKS, model_cfg.get("neck"), "neck") if model_cfg.get("neck") else None
        self.bbox_head = build_component(HEADS, head_cfg, "bbox_head")
        self.stride = [int(s) for s in self.bbox_head.strides]
        gen = getattr(self.bbox_head, "prior_generator", None)
        if gen is not None and hasattr(gen, "base_sizes") and t == "YOLOV3":
            self.anchors = [[list(wh) for wh in lvl] for lvl in gen.base_sizes]

    def raw(self, x, img_hw=None):
        """The head's raw output groups for RGB [0, 1] ``x``; ``img_hw``: the valid (h, w) of a padded
        ``x`` (the padding is zero after normalising, as in MMDetection)."""
        feats = self.backbone(self.input_norm(x, img_hw))
        if self.neck is not None:
            feats = self.neck(feats)
        return self.bbox_head(list(feats))

    def forward(self, x):
        from .predict import decode

        return decode(self.bbox_head, self.raw(x), (x.shape[2], x.shape[3]))

    @torch.no_grad()
    def predict(self, x, cfg: dict | None = None, *, img_hw=None, scale_factor=None):
        """MMDetection post-processing of ``raw(x)``: list of (n, 6) x1, y1, x2, y2, score, label.

        ``img_hw``: the resized image's (h, w) inside a padded ``x`` (boxes are clipped to it; default
        the input size); ``scale_factor`` (w, h): MMDetection's ``rescale=True`` (boxes divided by it
        before NMS, i.e. in original-image pixels)."""
        from .predict import predict

        hw = (x.shape[2], x.shape[3]) if img_hw is None else (int(img_hw[0]), int(img_hw[1]))
        return predict(self.bbox_head, self.raw(x, img_hw), hw, cfg or self.test_cfg, scale_factor)

    def fuse(self):
        fuse_modules(self)
        return self

    def native_arch(self) -> dict:
        return {"model": copy.deepcopy(self.model_cfg)}

    @classmethod
    def from_native(cls, arch: dict, meta: dict):
        return cls(arch["model"], **native_kwargs(meta, (640, 640)))
