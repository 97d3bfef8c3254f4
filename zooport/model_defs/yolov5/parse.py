"""YOLOv5's ``parse_model``: the layer list of an architecture dict (``model.yaml`` schema), read as data.

String arguments are resolved from a fixed table of names (``nc``, ``anchors``,
``None`` ...), never evaluated. Every module YOLOv5 v7.0's ``parse_model``
accepts is here (plus ``Sum`` from ``models/experimental.py`` and the v1.0
``nn.Conv2d`` heads), with YOLOv5's channel bookkeeping (width multiple,
``make_divisible``, repeat counts scaled by the depth multiple).
"""
from __future__ import annotations

import re

from torch import nn

from ...errors import ConfigError
from ..yolo_rows import from_channels, yaml_rows
from . import blocks as B
from . import cls_head as C
from . import conv_variants as X
from . import seg_head as S

# yaml module name -> (constructor, kind). kind: "conv" takes (c1, c2, ...) with width scaling,
# "csp" additionally takes the repeat count n as third argument.
_MODULES = {
    "Conv": (B.Conv, "conv"), "DWConv": (B.DWConv, "conv"), "Focus": (B.Focus, "conv"),
    "Bottleneck": (B.Bottleneck, "conv"), "CrossConv": (B.CrossConv, "conv"),
    "GhostConv": (B.GhostConv, "conv"), "GhostBottleneck": (B.GhostBottleneck, "conv"),
    "SPP": (B.SPP, "conv"), "SPPF": (B.SPPF, "conv"),
    "BottleneckCSP": (B.BottleneckCSP, "csp"), "C3": (B.C3, "csp"), "C3x": (B.C3x, "csp"),
    "C3TR": (B.C3TR, "csp"), "C3Ghost": (B.C3Ghost, "csp"),
    "C3SPP": (B.C3SPP, "conv"),  # YOLOv5 passes no repeat count to C3SPP (its 3rd argument is k)
    "nn.Conv2d": (nn.Conv2d, "plainconv"), "nn.ConvTranspose2d": (nn.ConvTranspose2d, "plainconv"),
    "DWConvTranspose2d": (X.DWConvTranspose2d, "plainconv"), "MixConv2d": (X.MixConv2d, "conv"),
    "Sum": (X.Sum, "sum"),
    "Concat": (B.Concat, "concat"), "Contract": (B.Contract, "contract"), "Expand": (B.Expand, "expand"),
    "Detect": (B.Detect, "detect"), "Segment": (S.Segment, "detect"), "Classify": (C.Classify, "classify"),
    "nn.Upsample": (nn.Upsample, "same"), "nn.MaxPool2d": (nn.MaxPool2d, "same"),
    "nn.ZeroPad2d": (nn.ZeroPad2d, "same"), "nn.Identity": (nn.Identity, "same"),
    "nn.BatchNorm2d": (nn.BatchNorm2d, "bn"),
}
_NEEDS_OPT = {"conv", "csp", "classify"}
HEADS = ("Detect", "Segment", "Classify")  # the module a YOLOv5 architecture ends with
_EXPR_NA_NO = re.compile(r"^na\s*\*\s*\(\s*nc\s*\+\s*5\s*\)$")

def make_divisible(x: float, divisor: int = 8) -> int:
    return int(-(-x // divisor) * divisor)  # ceil(x / divisor) * divisor, YOLOv5's channel rounding


def _resolve_arg(a, env: dict, where: str):
    if not isinstance(a, str):
        return a
    if a in env:
        return env[a]
    if _EXPR_NA_NO.match(a.strip()):
        return env["na"] * (env["nc"] + 5)
    if a in ("nearest", "bilinear", "bicubic"):
        return a
    raise ConfigError(f"{where}: unsupported string argument {a!r} (zooport resolves only nc, anchors, na, "
                      f"None, True, False, 'na * (nc + 5)' and upsample modes; nothing is evaluated)")


def parse_model(d: dict, opt: B.BuildOptions, ch_in: int = 3, stride=None):
    """Build YOLOv5's layer list from the architecture dict ``d``.

    Returns (layers, froms, save, detect_index): ``froms[i]`` is -1, an absolute
    layer index or a list of them, as YOLOv5 routes its ``Model._forward_once``;
    ``detect_index`` is the last layer, the head (Detect, Segment or Classify).
    """
    classify = bool(d.get("head")) and isinstance(d["head"][-1], (list, tuple)) and len(d["head"][-1]) == 4 \
        and d["head"][-1][2] == "Classify"
    for key in ("nc", "backbone", "head") + (() if classify else ("anchors",)):
        if key not in d:
            raise ConfigError(f"YOLOv5 architecture dict has no key {key!r}")
    nc, anchors = int(d["nc"]), d.get("anchors", [[]])
    gd, gw = float(d.get("depth_multiple", 1.0)), float(d.get("width_multiple", 1.0))
    na = len(anchors[0]) // 2 if isinstance(anchors, list) else int(anchors)
    no = na * (nc + 5)
    env = {"nc": nc, "anchors": anchors, "na": na, "None": None, "True": True, "False": False}
    layers, froms, save, ch, types = [], [], [], [], []
    detect_index = None
    for i, f, n, mname, args, where in yaml_rows(d, gd, "architecture"):
        if mname not in _MODULES:
            raise ConfigError(f"{where}: unknown module {mname!r}; expected one of {sorted(_MODULES)}")
        ctor, kind = _MODULES[mname]
        args = [_resolve_arg(a, env, where) for a in args]

        def chan(j):  # output channels of the layer a 'from' entry names (-1 = previous)
            return from_channels(ch, i, j, where, ch_in)[0]

        if kind == "detect" and isinstance(f, list) and not f:
            # v1.0: Detect's inputs are the earlier layers that output na*(nc+5) channels, P5 first
            f = list(reversed([j for j in range(i) if ch[j] == no]))
        kw = {"opt": opt} if kind in _NEEDS_OPT else {}
        c1 = chan(f) if isinstance(f, int) else None
        if kind in ("conv", "csp", "plainconv"):
            c2 = args[0]
            if c2 != no:
                c2 = make_divisible(c2 * gw, 8)
            args = [c1, c2, *args[1:]]
            if kind == "csp":
                args.insert(2, n)
                n = 1
        elif kind == "bn":
            # YOLOv5 leaves c2 at the previous layer's value here (equal to c1 when from = -1)
            args, c2 = [c1], (ch[-1] if ch else ch_in)
        elif kind == "sum":
            c2 = chan(f[0]) if isinstance(f, list) else c1
        elif kind == "classify":
            args = [c1 if c1 is not None else sum(chan(x) for x in f), *args]
            detect_index = i
            c2 = args[1]
        elif kind == "concat":
            c2 = sum(chan(x) for x in f)
        elif kind == "contract":
            c2 = c1 * args[0] ** 2
        elif kind == "expand":
            c2 = c1 // args[0] ** 2
        elif kind == "detect":
            if isinstance(args[1], int):
                args[1] = [list(range(args[1] * 2))] * len(f)
            inputs = [chan(x) for x in f]
            with_convs = not all(types[x if x >= 0 else i + x] == "nn.Conv2d" and chan(x) == no for x in f)
            if mname == "Segment":  # (nc, anchors, nm, npr): npr scaled by the width multiple
                nm = args[2] if len(args) > 2 else 32
                npr = make_divisible((args[3] if len(args) > 3 else 256) * gw, 8)
                args, kw = [args[0], args[1], nm, npr, inputs], {"stride": stride, "opt": opt}
            else:
                args = [args[0], args[1], inputs if with_convs else ()]
                kw = {"stride": stride, "with_convs": with_convs}
            detect_index = i
            c2 = no
        else:
            c2 = c1
        try:
            m = nn.Sequential(*(ctor(*args, **kw) for _ in range(n))) if n > 1 else ctor(*args, **kw)
        except (TypeError, ValueError, ZeroDivisionError) as e:
            raise ConfigError(f"{where}: cannot build {mname} with args {args}: {e}") from None
        fa = [x if x == -1 or x >= 0 else i + x for x in f] if isinstance(f, list) else (f if f == -1 else (f if f >= 0 else i + f))
        save.extend(x for x in ([fa] if isinstance(fa, int) else fa) if x != -1)
        layers.append(m)
        froms.append(fa)
        ch.append(c2)
        types.append(mname)
    if detect_index is None or detect_index != len(d["backbone"]) + len(d["head"]) - 1:
        raise ConfigError(f"YOLOv5 architecture dict must end with a head layer (one of {', '.join(HEADS)})")
    return layers, froms, sorted(set(save)), detect_index
