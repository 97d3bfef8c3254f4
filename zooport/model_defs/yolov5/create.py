"""Building YOLOv5 models from architecture dicts: the class for a yaml's head, meta-device builds, the stride
probe, the bundled yamls (``cfgs/yolov5``) and :func:`create_yolov5`.

Kept apart from :mod:`.model` so that the task classes (:mod:`.tasks`, which subclass ``YOLOv5Model``) and the
detector class import in one direction only.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from ...errors import ConfigError, UsageError
from . import blocks as B
from .model import YOLOv5Model, _SkipInit, _yaml_act, head_type
from .parse import HEADS
from .tasks import YOLOv5ClsModel, YOLOv5SegModel

CFG_DIR = Path(__file__).resolve().parent.parent.parent / "cfgs" / "yolov5"
# model name -> (depth_multiple, width_multiple)
_SIZES = {"n": (0.33, 0.25), "s": (0.33, 0.50), "m": (0.67, 0.75), "l": (1.0, 1.0), "x": (1.33, 1.25)}


def build_uninitialised(arch: dict, meta: dict | None = None, cls=None) -> "YOLOv5Model":
    """A model (class ``cls``, default :func:`model_class` of the yaml) whose tensors live on the meta
    device (no memory, no init): load with ``load_state_dict(..., assign=True)`` or materialise with
    ``to_empty(device=...)``."""
    cls = cls or model_class(arch["yaml"])
    with _SkipInit():
        return cls(arch, meta)


def model_class(yaml: dict) -> type:
    """The native class for an architecture: YOLOv5Model (Detect), YOLOv5SegModel, YOLOv5ClsModel."""
    head = head_type(yaml)
    try:
        return {"Detect": YOLOv5Model, "Segment": YOLOv5SegModel, "Classify": YOLOv5ClsModel}[head]
    except KeyError:
        raise ConfigError(f"YOLOv5 architecture ends with {head!r}; expected one of {', '.join(HEADS)}") from None


def compute_stride(yaml: dict, opt_arch: dict) -> list:
    """Strides of the head's inputs (the Detect/Segment levels; the Classify input), from a forward pass at
    256x256 (as YOLOv5 computes them; a Classify model has one)."""
    if head_type(yaml) == "Classify":
        nl = 1
    else:
        nl = len(yaml["anchors"]) if isinstance(yaml["anchors"], list) else len(yaml["head"][-1][0])
    arch = dict(opt_arch, yaml=yaml, stride=[1] * nl)
    from ..yolo_rows import probe_strides

    return probe_strides(build_uninitialised(arch), ch=int(yaml.get("ch", 3)))


def load_cfg(name: str) -> dict:
    """A bundled architecture dict: ``yolov5{n,s,m,l,x}[6]``, ``yolov5{size}-p2``/``-p7``, ``-seg``
    (segmentation), ``-cls`` (classification) or a yaml path."""
    import yaml as _yaml

    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        with open(p, encoding="utf-8") as f:
            return _yaml.safe_load(f)
    m = re.fullmatch(r"yolov5([nsmlx])(6|-p2|-p6|-p7|-seg|-cls)?", name)
    if not m:
        raise UsageError(f"unknown YOLOv5 model {name!r}; expected yolov5n/s/m/l/x, yolov5n6..x6, "
                         f"yolov5s-p2, yolov5s-p7, yolov5s-seg, yolov5s-cls or a .yaml path")
    base = {None: "yolov5-p5", "6": "yolov5-p6", "-p6": "yolov5-p6", "-p2": "yolov5-p2", "-p7": "yolov5-p7",
            "-seg": "yolov5-seg", "-cls": "yolov5-cls"}[m.group(2)]
    with open(CFG_DIR / f"{base}.yaml", encoding="utf-8") as f:
        d = _yaml.safe_load(f)
    d["depth_multiple"], d["width_multiple"] = _SIZES[m.group(1)]
    return d


def create_yolov5(name: str = "yolov5s", num_classes: int | None = None, names: list[str] | None = None,
                  anchors=None, *, nc: int | None = None) -> YOLOv5Model:
    """A randomly initialised YOLOv5 model from a bundled architecture (YOLOv5's own initialisation:
    BN eps 1e-3 / momentum 0.03, Detect/Segment biases set for 640 px images and ~8 objects per image).

    ``-seg`` names give a :class:`~.yolov5_tasks.YOLOv5SegModel`, ``-cls`` a
    :class:`~.yolov5_tasks.YOLOv5ClsModel`.

    ``num_classes``: default ``len(names)`` when names are given, else the yaml's (80; 1000 for ``-cls``).
    ``nc=`` is a deprecated
    alias of ``num_classes``."""
    import math
    import warnings

    if nc is not None:
        warnings.warn("create_yolov5(nc=) is deprecated; use num_classes=", DeprecationWarning, stacklevel=2)
        if num_classes is not None and int(num_classes) != int(nc):
            raise UsageError(f"create_yolov5: num_classes={num_classes} and nc={nc} disagree")
        num_classes = nc
    d = load_cfg(name)
    if num_classes is None:
        num_classes = len(names) if names else d.get("nc", 80)
    if names is not None and len(names) != int(num_classes):
        raise UsageError(f"create_yolov5: {len(names)} names for num_classes={num_classes}")
    d["nc"] = int(num_classes)
    if anchors is not None:
        d["anchors"] = anchors
    base_arch = {"act": _yaml_act(d), "csp_act": _yaml_act(d), "bn_eps": 1e-3, "bn_momentum": 0.03}
    stride = compute_stride(d, base_arch)
    model = model_class(d)(dict(base_arch, yaml=d, stride=stride),
                           {"names": names, "source": {"format": "yolov5", "created": name}})
    det = model.model[model.detect_index]
    if isinstance(det, B.Detect) and det.m is not None:
        with torch.no_grad():
            for mi, s in zip(det.m, det.stride):
                b = mi.bias.view(det.na, -1)
                b[:, 4] += math.log(8 / (640 / s) ** 2)
                b[:, 5:5 + det.nc] += math.log(0.6 / (det.nc - 0.99999))  # not the mask columns (Segment)
    return model.eval()
