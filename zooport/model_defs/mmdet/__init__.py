"""Native definitions of MMDetection detectors (no mmcv / mmdet needed): one-stage here, the R-CNN family
(``FasterRCNN``, ``CascadeRCNN``) in :mod:`.two_stage` (same ``"mmdet"`` family; ``from_native`` dispatches).

:class:`MMDetModel` is built from an MMDetection *model* config dict (the
``model = dict(...)`` of a config file: ``type``, ``backbone``, ``neck``,
``bbox_head``, ``test_cfg``); its ``state_dict()`` keys equal an MMDetection
checkpoint's ``state_dict`` keys exactly (``backbone.*``, ``neck.*``,
``bbox_head.*``, including BN ``num_batches_tracked``).

* ``raw(x)``: MMDetection's ``_forward`` output, a list of output groups
  (class logits, box regression, then centerness / objectness), each a list
  of per-level (B, C, H, W) tensors. ``x``: (B, 3, H, W) fed straight to the
  backbone (no data preprocessor; ``preprocess`` says how MMDetection
  normalises real images: see :func:`_preprocess`).
* ``forward(x)`` in eval: (B, N, 4 + 1 + nc) - xywh in input pixels, the
  score factor (sigmoid centerness for FCOS/ATSS, sigmoid objectness for
  YOLOX/YOLOv3, 1 for RetinaNet/GFL), class probabilities.
* ``predict(x)``: MMDetection's post-processing per ``test_cfg``: list of
  (n, 6) tensors x1, y1, x2, y2, score, label.
"""
from __future__ import annotations

import copy

import torch

from ...errors import ConfigError
from ..base import Detector
from .common import fuse_modules
from .fpn import FPN
from .hourglass import HourglassNet
from .corner import CentripetalHead, CornerHead
from .ga_retina import GARetinaHead
from .heads import ATSSHead, FCOSHead, GFLHead, RetinaHead
from .mobilenet import MobileNetV2
from .paa import PAAHead
from .reppoints import RepPointsHead
from .sabl_retina import SABLRetinaHead
from .vfnet import VFNetHead
from .resnet import ResNet
from .ssd import SSDHead, SSDNeck, SSDVGG
from .yolov3 import Darknet, YOLOV3Head, YOLOV3Neck
from .yolox import CSPDarknet, YOLOXHead, YOLOXPAFPN

# config 'type' -> builder, per component (explicit registry)
BACKBONES = {"ResNet": ResNet, "CSPDarknet": CSPDarknet, "Darknet": Darknet, "SSDVGG": SSDVGG,
             "MobileNetV2": MobileNetV2, "HourglassNet": HourglassNet}
NECKS = {"FPN": FPN, "YOLOXPAFPN": YOLOXPAFPN, "YOLOV3Neck": YOLOV3Neck, "SSDNeck": SSDNeck}
# PISARetinaHead differs from RetinaHead only in its training losses (ISR / CARL): same inference
HEADS = {"RetinaHead": RetinaHead, "PISARetinaHead": RetinaHead, "FCOSHead": FCOSHead, "ATSSHead": ATSSHead,
         "GFLHead": GFLHead, "YOLOXHead": YOLOXHead, "YOLOV3Head": YOLOV3Head, "SSDHead": SSDHead, "PAAHead": PAAHead,
         "SABLRetinaHead": SABLRetinaHead, "VFNetHead": VFNetHead,
         "RepPointsHead": RepPointsHead, "GARetinaHead": GARetinaHead,
         "CornerHead": CornerHead, "CentripetalHead": CentripetalHead}
DETECTORS = {"RetinaNet", "FCOS", "ATSS", "GFL", "YOLOX", "YOLOV3", "SingleStageDetector", "PAA", "VFNet", "RepPointsDetector", "CornerNet"}


def _build(registry: dict, cfg, where: str):
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ConfigError(f"model.{where}: expected a dict with a 'type' key")
    t = cfg["type"]
    if isinstance(t, str) and t.startswith("mmdet."):
        t = t[len("mmdet."):]
    if t not in registry:
        raise ConfigError(f"model.{where}: unknown module type {t!r}; supported: {sorted(registry)}")
    try:
        return registry[t](cfg, f"model.{where}")
    except KeyError as e:
        raise ConfigError(f"model.{where} ({t}): missing required argument {e}") from None


class MMDetModel(Detector):
    family = "mmdet"

    def __init__(self, model_cfg: dict, *, names=None, input_size=(640, 640), preprocess=None, source=None):
        t = model_cfg.get("type")
        if t not in DETECTORS:
            from .two_stage import TWO_STAGE

            raise ConfigError(f"model: unknown detector type {t!r}; supported: {sorted(DETECTORS | TWO_STAGE)}")
        head_cfg = dict(model_cfg.get("bbox_head") or {})
        test_cfg = copy.deepcopy(model_cfg.get("test_cfg") or head_cfg.get("test_cfg") or {})
        head_cfg["test_cfg"] = test_cfg
        nc = int(head_cfg.get("num_classes", 80))
        names = list(names) if names else [f"class{i}" for i in range(nc)]
        if len(names) != nc:
            raise ConfigError(f"model.bbox_head: num_classes={nc} but {len(names)} class names given")
        pre = preprocess or _preprocess(model_cfg)
        super().__init__(names=names, stride=[1], input_size=input_size, preprocess=pre, source=source)
        self.model_cfg = copy.deepcopy(model_cfg)
        self.test_cfg = test_cfg
        self.backbone = _build(BACKBONES, model_cfg.get("backbone"), "backbone")
        self.neck = _build(NECKS, model_cfg.get("neck"), "neck") if model_cfg.get("neck") else None
        self.bbox_head = _build(HEADS, head_cfg, "bbox_head")
        self.stride = [int(s) for s in self.bbox_head.strides]
        gen = getattr(self.bbox_head, "prior_generator", None)
        if gen is not None and hasattr(gen, "base_sizes") and t == "YOLOV3":
            self.anchors = [[list(wh) for wh in lvl] for lvl in gen.base_sizes]

    def raw(self, x):
        feats = self.backbone(x)
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
        return predict(self.bbox_head, self.raw(x), hw, cfg or self.test_cfg, scale_factor)

    def fuse(self):
        fuse_modules(self)
        return self

    def native_arch(self) -> dict:
        return {"model": copy.deepcopy(self.model_cfg)}

    @classmethod
    def from_native(cls, arch: dict, meta: dict):
        from .two_stage import TWO_STAGE, TwoStageDetector

        if (arch.get("model") or {}).get("type") in TWO_STAGE:  # one "mmdet" family, two model classes
            return TwoStageDetector.from_native(arch, meta)
        return cls(arch["model"], **native_kwargs(meta, (640, 640)))


def native_kwargs(meta: dict, default_size) -> dict:
    """Constructor keywords from a native checkpoint's ``meta`` (shared by the one- and two-stage classes)."""
    return {"names": meta.get("names"), "input_size": meta.get("input_size", default_size),
            "preprocess": meta.get("preprocess"), "source": meta.get("source")}


def _preprocess(model_cfg: dict, resize=None) -> dict:
    """The ``mmdet`` preprocessing mode: how MMDetection's test pipeline and data preprocessor feed images.

    ``resize_scale`` (w, h) and ``keep_ratio``: the test pipeline's ``Resize`` (``resize`` = ((w, h),
    keep_ratio) from the config; default: (1333, 800) for R-CNN models, else the detector's usual input
    size, keep-ratio); ``mmdet_mean`` / ``mmdet_std`` in pixel units, ``bgr_to_rgb`` and
    ``pad_size_divisor``: the ``data_preprocessor`` (images load as BGR). See
    :func:`zooport.eval.preprocess.preprocess_mmdet`.

    The same normalisation is also given for images scaled to [0, 1] (``scale``, ``mean``, ``std``,
    ``color``: (x - mean/255) / (std/255), channels swapped to RGB only when ``bgr_to_rgb``), which is
    what the ``resize`` mode uses.
    """
    dp = model_cfg.get("data_preprocessor") or {}
    mean = [float(v) for v in (dp.get("mean") or (0.0, 0.0, 0.0))]
    std = [float(v) for v in (dp.get("std") or (1.0, 1.0, 1.0))]
    if resize is None:
        default = {"YOLOX": (640, 640), "YOLOV3": (608, 608)}.get(model_cfg.get("type"), (1333, 800))
        resize = (default, True)
    pre = {"mode": "mmdet", "pad_value": 0, "color": "rgb" if dp.get("bgr_to_rgb") else "bgr",
           "scale": 1.0 / 255.0, "mean": [m / 255.0 for m in mean], "std": [s / 255.0 for s in std],
           "mmdet_mean": mean, "mmdet_std": std, "bgr_to_rgb": bool(dp.get("bgr_to_rgb", False)),
           "resize_scale": [int(v) for v in resize[0]], "keep_ratio": bool(resize[1]),
           "pad_size_divisor": int(dp.get("pad_size_divisor") or 1)}
    return pre


__all__ = ["MMDetModel", "BACKBONES", "NECKS", "HEADS", "DETECTORS"]
