"""The explicit registries of MMDetection components zooport implements (config ``type`` -> builder), the
one component builder, and what both detector classes share (native-checkpoint keywords, the ``mmdet``
preprocessing spec). Imported by :mod:`.one_stage`, :mod:`.two_stage` and :mod:`.roi_heads`; imports none
of them.
"""

from __future__ import annotations

from ...errors import ConfigError
from .fpn import FPN
from .hourglass import HourglassNet
from .corner import CentripetalHead, CornerHead
from .ga_retina import GARetinaHead
from .heads import ATSSHead, FCOSHead, GFLHead, RetinaHead
from .mobilenet import MobileNetV2
from .paa import PAAHead
from .reppoints import RepPointsHead
from .reppoints_v2 import RepPointsV2Head
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
         "RepPointsHead": RepPointsHead, "RepPointsV2Head": RepPointsV2Head, "GARetinaHead": GARetinaHead,
         "CornerHead": CornerHead, "CentripetalHead": CentripetalHead}
DETECTORS = {"RetinaNet", "FCOS", "ATSS", "GFL", "YOLOX", "YOLOV3", "SingleStageDetector", "PAA", "VFNet", "RepPointsDetector", "CornerNet"}


# two-stage detector types (built by :mod:`.two_stage`); listed here so errors can name every type
TWO_STAGE = {"FasterRCNN", "CascadeRCNN", "TwoStageDetector"}


def build_component(registry: dict, cfg, where: str):
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ConfigError(f"model.{where}: expected a dict with a 'type' key")
    t = cfg["type"]
    if isinstance(t, str) and t.startswith("mmdet."):
        t = t[len("mmdet."):]
    if t not in registry:
        raise ConfigError(f"model.{where}: unknown module type {t!r}; supported: {sorted(registry)}")
    from .options import build_checked

    try:
        return build_checked(registry[t], cfg, t, f"model.{where}")
    except KeyError as e:
        raise ConfigError(f"model.{where} ({t}): missing required argument {e}") from None


def native_kwargs(meta: dict, default_size) -> dict:
    """Constructor keywords from a native checkpoint's ``meta`` (shared by the one- and two-stage classes)."""
    return {"names": meta.get("names"), "input_size": meta.get("input_size", default_size),
            "preprocess": meta.get("preprocess"), "source": meta.get("source")}


def preprocess_spec(model_cfg: dict, resize=None, given: dict | None = None) -> dict:
    """The ``mmdet`` preprocessing mode: how MMDetection's test pipeline feeds images, on zooport's
    input contract (RGB in [0, 1]; the model normalises inside, see
    :class:`zooport.model_defs.input_norm.InputNorm`).

    ``resize_scale`` (w, h) and ``keep_ratio``: the test pipeline's ``Resize`` (``resize`` = ((w, h),
    keep_ratio) from the config; default: (1333, 800) for R-CNN models, else the detector's usual input
    size, keep-ratio); ``pad_size_divisor`` from the ``data_preprocessor``; ``model_normalises``: what
    the model's :class:`InputNorm` does (from the ``data_preprocessor``: mean, std in pixel units,
    ``bgr``). See :func:`zooport.eval.preprocess.preprocess_mmdet`. ``given``: a stored preprocess
    dict (a native checkpoint's meta, maybe written before the model normalised inside): its resize
    settings are kept, its normalisation keys dropped.
    """
    from ..input_norm import mmdet_input_norm

    dp = model_cfg.get("data_preprocessor") or {}
    if resize is None:
        default = {"YOLOX": (640, 640), "YOLOV3": (608, 608)}.get(model_cfg.get("type"), (1333, 800))
        resize = (default, True)
    pre = {"mode": "mmdet", "pad_value": 0, "color": "rgb", "scale": 1.0 / 255.0,
           "resize_scale": [int(v) for v in resize[0]], "keep_ratio": bool(resize[1]),
           "pad_size_divisor": int(dp.get("pad_size_divisor") or 1)}
    if given:  # only its resize settings: normalisation keys of older dicts describe what the model now does
        pre.update({k: v for k, v in given.items() if k in ("resize_scale", "keep_ratio", "pad_size_divisor",
                                                            "interpolation")})
    pre["model_normalises"] = mmdet_input_norm(model_cfg).spec()
    return pre
