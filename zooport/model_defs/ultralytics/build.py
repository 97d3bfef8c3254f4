"""Ultralytics detection yamls (YOLOv8, YOLO11) -> zooport's explicit layer specs, and ``create_ultralytics``.

The yaml is Ultralytics' schema (``nc``, ``scales: {n: [depth, width,
max_channels], ...}``, ``backbone``/``head`` rows ``[from, repeats, module,
args]``), read as data: strings resolve from a fixed table (``nc``, ``None``,
upsample modes), never evaluated. Channel and repeat scaling follow Ultralytics'
``parse_model``: ``n = max(round(n * depth), 1)`` when n > 1, ``c2 =
make_divisible(min(c2, max_channels) * width, 8)``; ``C3k2`` forces ``c3k`` on
scales m/l/x; a model with a ``C3k2`` layer gets the YOLO11 head class branch
(Ultralytics' ``legacy`` flag off), else YOLOv8's. The output layer specs are
those of :mod:`zooport.parsers.ultralytics.ckpt` (the same spec a pickled model
of that yaml gives).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from ...errors import ConfigError, UsageError
from ..yolo_rows import from_channels, probe_strides, yaml_rows

CFG_DIR = Path(__file__).resolve().parent.parent.parent / "cfgs" / "ultralytics"
_NAME = re.compile(r"^(yolov8|yolo11)([nsmlx])$")


def _div8(x: float) -> int:
    return int(math.ceil(x / 8) * 8)


def _conv(c1, c2, k=1, s=1, act=True) -> dict:
    return {"type": "Conv", "c1": c1, "c2": c2, "k": k, "s": s, "p": k // 2, "g": 1, "d": 1, "act": act}


def _bottleneck(c1, c2, shortcut, e, k=3) -> dict:
    return {"type": "Bottleneck", "c1": c1, "c2": c2, "c_": int(c2 * e), "k": [k, k], "g": 1, "add": bool(shortcut)}


def _layer(mname: str, c1: int, args: list, n: int, scale: str, where: str):
    """(spec, c2) of one yaml row after channel scaling (``args[0]`` is the scaled c2 for conv-like rows)."""
    if mname == "Conv":
        c2, k, s = (list(args) + [1, 1])[:3]
        return _conv(c1, c2, k, s), c2
    if mname == "C2f":
        c2 = args[0]
        shortcut = bool(args[1]) if len(args) > 1 else False
        c = int(c2 * (float(args[2]) if len(args) > 2 else 0.5))
        return {"type": "C2f", "c1": c1, "c2": c2, "c": c,
                "blocks": [_bottleneck(c, c, shortcut, 1.0) for _ in range(n)]}, c2
    if mname == "C3k2":
        c2 = args[0]
        c3k = bool(args[1]) if len(args) > 1 else False
        e = float(args[2]) if len(args) > 2 else 0.5
        c3k = True if scale in ("m", "l", "x") else c3k
        c = int(c2 * e)
        if c3k:
            c_ = int(c * 0.5)
            blocks = [{"type": "C3k", "c1": c, "c2": c, "c_": c_,
                       "blocks": [_bottleneck(c_, c_, True, 1.0) for _ in range(2)]} for _ in range(n)]
        else:
            blocks = [_bottleneck(c, c, True, 0.5) for _ in range(n)]
        return {"type": "C3k2", "c1": c1, "c2": c2, "c": c, "blocks": blocks}, c2
    if mname == "SPPF":
        c2 = args[0]
        # the bundled 8.3 yamls: three pools, no residual, cv1 with its activation (8.4 drops it)
        return {"type": "SPPF", "c1": c1, "c2": c2, "k": int(args[1]) if len(args) > 1 else 5,
                "n": 3, "add": False, "cv1_act": True}, c2
    if mname == "C2PSA":
        c2 = args[0]
        if c1 != c2:
            raise ConfigError(f"{where}: C2PSA needs c1 == c2, got {c1} and {c2}")
        c = int(c1 * 0.5)
        heads = c // 64
        if heads < 1:
            raise ConfigError(f"{where}: C2PSA width {c} gives no 64-channel attention head")
        hd = c // heads
        return {"type": "C2PSA", "c1": c1, "c2": c2, "c": c, "blocks": [
            {"num_heads": heads, "key_dim": int(hd * 0.5), "head_dim": hd, "hidden": 2 * c, "add": True}
            for _ in range(n)]}, c2
    raise ConfigError(f"{where}: unsupported module {mname!r}")


def arch_from_yaml(d: dict, scale: str | None = None) -> dict:
    """Layer specs (plus ``nc``, ``reg_max``, BN/activation defaults) of an Ultralytics detection yaml dict."""
    for key in ("nc", "backbone", "head"):
        if key not in d:
            raise ConfigError(f"Ultralytics yaml has no key {key!r}")
    nc = int(d["nc"])
    scales = d.get("scales") or {}
    scale = scale or d.get("scale") or (next(iter(scales)) if scales else None)
    if scales and scale not in scales:
        raise ConfigError(f"Ultralytics yaml has no scale {scale!r}; expected one of {sorted(scales)}")
    depth, width, max_ch = scales[scale] if scales else (1.0, 1.0, float("inf"))
    rows = list(d["backbone"]) + list(d["head"])
    legacy = not any(r[2] == "C3k2" for r in rows if isinstance(r, (list, tuple)) and len(r) == 4)
    ch: list[int] = []
    layers = []
    for i, f, n, mname, args, where in yaml_rows(d, depth, "Ultralytics yaml"):
        args = [nc if a == "nc" else None if a == "None" else a for a in args]
        cin = from_channels(ch, i, f, where) if i else [3]
        if mname == "nn.Upsample":
            spec, c2 = {"type": "Upsample", "size": args[0], "scale_factor": float(args[1]),
                        "mode": str(args[2])}, cin[0]
        elif mname == "Concat":
            spec, c2 = {"type": "Concat", "d": int(args[0]) if args else 1}, sum(cin)
        elif mname == "Detect":
            reg_max = 16
            spec, c2 = {"type": "Detect", "nc": nc, "ch": cin, "reg_max": reg_max, "head": "v8" if legacy else "v11",
                        "end2end": False,
                        "c2": max(16, cin[0] // 4, reg_max * 4), "c3": max(cin[0], min(nc, 100))}, None
        else:
            c2 = args[0]
            if c2 != nc:
                c2 = _div8(min(c2, max_ch) * width)
            spec, c2 = _layer(mname, cin[0], [c2, *args[1:]], n, scale, where)
        spec["from"] = f
        layers.append(spec)
        ch.append(c2)
    if layers[-1]["type"] != "Detect":
        raise ConfigError("Ultralytics yaml must end with a Detect layer")
    return {"layers": layers, "nc": nc, "reg_max": 16, "act": {"type": "SiLU"}, "bn_eps": 1e-3,
            "bn_momentum": 0.03, "fused": False}


def load_cfg(name: str) -> tuple[dict, str]:
    """A bundled yaml dict and scale for ``yolov8{n,s,m,l,x}`` / ``yolo11{n,s,m,l,x}``, or a yaml path."""
    import yaml as _yaml

    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        with open(p, encoding="utf-8") as f:
            d = _yaml.safe_load(f)
        return d, d.get("scale")
    m = _NAME.fullmatch(name)
    if not m:
        raise UsageError(f"unknown Ultralytics model {name!r}; expected yolov8n/s/m/l/x, yolo11n/s/m/l/x "
                         f"or a .yaml path")
    with open(CFG_DIR / f"{m.group(1)}.yaml", encoding="utf-8") as f:
        return _yaml.safe_load(f), m.group(2)


def create_ultralytics(name: str = "yolo11n", num_classes: int | None = None, names: list[str] | None = None, *,
                       nc: int | None = None):
    """A randomly initialised YOLOv8 / YOLO11 detection model (PyTorch default init; BN eps 1e-3,
    momentum 0.03; Detect biases as Ultralytics' ``bias_init``: box 1.0, class log(5 / nc / (640 / s)^2)).

    ``num_classes``: default ``len(names)`` when names are given, else 80 (as :func:`zooport.create_yolov5`);
    ``nc=`` is a deprecated alias."""
    import warnings

    from ...errors import UsageError
    from .model import UltralyticsModel

    if nc is not None:
        warnings.warn("create_ultralytics(nc=) is deprecated; use num_classes=", DeprecationWarning, stacklevel=2)
        if num_classes is not None and int(num_classes) != int(nc):
            raise UsageError(f"create_ultralytics: num_classes={num_classes} and nc={nc} disagree")
        num_classes = nc
    if num_classes is None:
        num_classes = len(names) if names else 80
    if names is not None and len(names) != int(num_classes):
        raise UsageError(f"create_ultralytics: {len(names)} names for num_classes={num_classes}")
    d, scale = load_cfg(name)
    d = dict(d, nc=int(num_classes))
    arch = arch_from_yaml(d, scale)
    arch["stride"] = probe_strides(build_uninitialised(dict(arch, stride=[1] * len(arch["layers"][-1]["ch"]))))
    model = UltralyticsModel(arch, {"names": names, "source": {"format": "ultralytics", "created": name}})
    det = model.detect
    with torch.no_grad():
        for a, b, s in zip(det.cv2, det.cv3, det.stride):
            a[-1].bias.fill_(1.0)
            b[-1].bias.fill_(math.log(5 / det.nc / (640 / s) ** 2))
    return model.eval()


def build_uninitialised(arch: dict, meta: dict | None = None):
    """An :class:`~.model.UltralyticsModel` (or, for a ``Classify`` head, an
    :class:`~.classify.UltralyticsClsModel`) on the meta device (no memory, no init): load with
    ``assign=True`` or materialise with ``to_empty(device=...)``."""
    from .classify import UltralyticsClsModel
    from .model import UltralyticsModel, _SkipInit

    cls = UltralyticsClsModel if (arch.get("layers") or [{}])[-1].get("type") == "Classify" else UltralyticsModel
    with _SkipInit():
        return cls(arch, meta)
