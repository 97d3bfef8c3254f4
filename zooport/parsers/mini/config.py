"""mmdetection-mini RR* YOLO configs -> :class:`MiniArch` (torch-free; nothing in the config is executed).

mmdetection-mini (hhaAndroid/mmdetection-mini) keeps mmdet 2.x's config schema: a ``model`` dict with
``backbone`` / ``neck`` / ``bbox_head`` and a top-level ``test_cfg``. Its own YOLO models are recognised
by their type triple:

=============  =========================  ====================  ==================
kind           backbone                   neck                  bbox_head
=============  =========================  ====================  ==================
yolov3         RRDarknet53                RRDarkNeck            RRYolov3Head
yolov4         RRCSPDarknet53             RRYoloV4DarkNeck      RRYolov3Head
tiny_yolov3    RRTinyYolov3Backbone       (none)                RRTinyYolov3Head
tiny_yolov4    RRTinyYolov4Backbone       (none)                RRTinyYolov4Head
yolov5         RRYoloV5Backbone           (none)                RRYolov5Head
=============  =========================  ====================  ==================

Only what mini's code lets a config change is accepted: ``input_channels`` of RRDarknet53/RRDarkNeck
(the head's ``in_channels`` must then be ``(16, 8, 4) * input_channels``), ``num_classes`` (80 for
yolov5, whose head hard-codes 255 output channels), anchors, strides, coder and ``test_cfg``; yolov5's
``depth_multiple``/``width_multiple`` (the head repeats them as ``out_channels=[depth, width]``).
Every other width is hard-coded in mini's modules, so a config asking for another one is refused.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ...errors import ConfigError, UnsupportedError
from ..mmdet.config import load_config, model_section

KINDS = {
    ("RRDarknet53", "RRDarkNeck", "RRYolov3Head"): "yolov3",
    ("RRCSPDarknet53", "RRYoloV4DarkNeck", "RRYolov3Head"): "yolov4",
    ("RRTinyYolov3Backbone", None, "RRTinyYolov3Head"): "tiny_yolov3",
    ("RRTinyYolov4Backbone", None, "RRTinyYolov4Head"): "tiny_yolov4",
    ("RRYoloV5Backbone", None, "RRYolov5Head"): "yolov5",
}
# the bbox_head in/out channels each kind's hard-coded modules need (yolov3: scaled by input_channels/32)
_FIXED_HEAD = {
    "yolov3": {"in_channels": [512, 256, 128]},
    "yolov4": {"in_channels": [512, 256, 128]},
    "tiny_yolov3": {"in_channels": [256, 256], "out_channels": [512, 128]},
    "tiny_yolov4": {"in_channels": [512, 256], "out_channels": [256, 128]},
    "yolov5": {"in_channels": [512, 256, 128]},
}
# mmdet 2.x BaseYOLOHead defaults (mini's base_yolo_head.py)
_DEFAULT_ANCHORS = [[(116, 90), (156, 198), (373, 326)], [(30, 61), (62, 45), (59, 119)], [(10, 13), (16, 30), (33, 23)]]


@dataclass
class MiniArch:
    """One mini RR* YOLO model as its config describes it.

    ``anchors[i]``: (w, h) pixel base sizes of output level i in mini's order (largest stride first);
    ``strides[i]`` its stride. ``coder``: ``"YOLOBBoxCoder"`` or ``"YOLOV5BBoxCoder"``; ``scale_x_y``
    (YOLOBBoxCoder only). ``test_cfg``: mini's (nms_pre, conf_thr, score_thr, nms, max_per_img).
    ``input_channels``: RRDarknet53's stem width (yolov3; 32 in mini's own configs).
    ``depth_multiple`` / ``width_multiple``: yolov5 only. ``test_scale``: the test pipeline's
    (w, h) ``img_scale``; ``letterbox``: the pipeline uses ``LetterResize`` (yolov5) instead of
    a keep-ratio ``Resize`` + ``Pad(size_divisor=32)``.
    """

    kind: str
    num_classes: int
    anchors: list
    strides: list
    coder: str = "YOLOBBoxCoder"
    scale_x_y: float = 1.0
    test_cfg: dict = field(default_factory=dict)
    input_channels: int = 32
    depth_multiple: float = 1.0
    width_multiple: float = 1.0
    test_scale: tuple | None = None
    letterbox: bool = False
    where: str = "config"

    @property
    def num_anchors(self) -> int:
        return len(self.anchors[0])


def _type(d, key):
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, dict) or "type" not in v:
        raise ConfigError(f"model.{key} must be a dict with a 'type' (got {v!r})")
    return v["type"]


def _test_pipeline(cfg: dict):
    """(img_scale, letterbox) of ``data.test.pipeline`` (MultiScaleFlipAug's img_scale, LetterResize's own)."""
    try:
        pipe = cfg["data"]["test"]["pipeline"]
    except (KeyError, TypeError):
        return None, False
    scale, letter = None, False
    for step in pipe if isinstance(pipe, list) else []:
        if not isinstance(step, dict):
            continue
        if step.get("type") == "MultiScaleFlipAug":
            scale = step.get("img_scale", scale)
            for t in step.get("transforms", []):
                if isinstance(t, dict) and t.get("type") == "LetterResize":
                    letter, scale = True, t.get("img_scale", scale)
        elif step.get("type") == "LetterResize":
            letter, scale = True, step.get("img_scale", scale)
    return (tuple(int(v) for v in scale) if scale else None), letter


def mini_arch(cfg: dict, where: str = "config") -> MiniArch:
    """The :class:`MiniArch` of a loaded mini config dict (see module docstring); ConfigError /
    UnsupportedError name ``where`` and the offending key."""
    model = model_section(cfg, where)
    sig = (_type(model, "backbone"), _type(model, "neck"), _type(model, "bbox_head"))
    kind = KINDS.get(sig)
    if kind is None:
        known = "; ".join(f"{b} + {n or 'no neck'} + {h}" for b, n, h in KINDS)
        raise UnsupportedError(f"{where}: model {sig[0]} + {sig[1] or 'no neck'} + {sig[2]} is not one of "
                               f"mmdetection-mini's RR* YOLO models ({known})")
    head = model["bbox_head"]
    nc = int(head.get("num_classes", 80))
    gen = head.get("anchor_generator") or {}
    anchors = [[(float(w), float(h)) for w, h in lvl] for lvl in gen.get("base_sizes", _DEFAULT_ANCHORS)]
    strides = [int(s) for s in head.get("featmap_strides", [32, 16, 8])]
    gstrides = [int(s[0] if isinstance(s, (list, tuple)) else s) for s in gen.get("strides", strides)]
    if gstrides != strides or len(anchors) != len(strides):
        raise ConfigError(f"{where}: bbox_head.anchor_generator strides {gstrides} / {len(anchors)} anchor levels "
                          f"disagree with featmap_strides {strides}")
    if len({len(a) for a in anchors}) != 1:
        raise ConfigError(f"{where}: every anchor level needs the same number of base sizes")
    coder = head.get("bbox_coder") or {"type": "YOLOBBoxCoder"}
    arch = MiniArch(kind=kind, num_classes=nc, anchors=anchors, strides=strides, coder=coder.get("type"),
                    scale_x_y=float(coder.get("scale_x_y", 1.0)), test_cfg=dict(model.get("test_cfg") or {}),
                    where=where)
    if arch.coder not in ("YOLOBBoxCoder", "YOLOV5BBoxCoder"):
        raise UnsupportedError(f"{where}: bbox_head.bbox_coder type {arch.coder!r}; expected YOLOBBoxCoder or "
                               "YOLOV5BBoxCoder")
    arch.test_scale, arch.letterbox = _test_pipeline(cfg)
    fixed = dict(_FIXED_HEAD[kind])
    n_levels = {"tiny_yolov3": 2, "tiny_yolov4": 2}.get(kind, 3)
    if len(strides) != n_levels:
        raise UnsupportedError(f"{where}: {kind} has {n_levels} output levels, the config gives {len(strides)}")
    if kind == "yolov3":
        ic = int(model["backbone"].get("input_channels", 32))
        nic = int((model.get("neck") or {}).get("input_channels", 32))
        if ic != nic:
            raise ConfigError(f"{where}: backbone.input_channels={ic} but neck.input_channels={nic}; "
                              "RRDarkNeck must match RRDarknet53")
        arch.input_channels = ic
        fixed["in_channels"] = [16 * ic, 8 * ic, 4 * ic]
    if kind == "yolov5":
        bb = model["backbone"]
        arch.depth_multiple = float(bb.get("depth_multiple", 1.0))
        arch.width_multiple = float(bb.get("width_multiple", 1.0))
        oc = head.get("out_channels")
        if oc is None or [float(v) for v in oc] != [arch.depth_multiple, arch.width_multiple]:
            raise ConfigError(f"{where}: RRYolov5Head.out_channels must repeat the backbone's "
                              f"[depth_multiple, width_multiple] = {[arch.depth_multiple, arch.width_multiple]}, "
                              f"got {oc}")
        if nc != 80 or arch.num_anchors != 3:
            raise UnsupportedError(f"{where}: RRYolov5Head hard-codes 255 output channels (80 classes, 3 anchors); "
                                   f"the config asks for {nc} classes, {arch.num_anchors} anchors")
        if int(bb.get("input_channel", 3)) != 3:
            raise UnsupportedError(f"{where}: RRYoloV5Backbone.input_channel must be 3")
    for key, want in fixed.items():
        got = head.get(key, want if key != "in_channels" else None)
        if got is None or [int(v) for v in got] != want:
            raise UnsupportedError(f"{where}: bbox_head.{key}={got}; mini's {sig[2]} with {sig[0]} needs {want} "
                                   "(the other widths are hard-coded in its modules)")
    return arch


def load_mini_config(path: str | os.PathLike) -> MiniArch:
    """Read a mini ``.py`` config (``_base_`` resolved, nothing executed) into a :class:`MiniArch`."""
    return mini_arch(load_config(path), os.fspath(path))
