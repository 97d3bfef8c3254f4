"""YOLOv5Model: a native detector built from a YOLOv5 architecture dict (``model.yaml``).

The architecture dict is YOLOv5's own yaml schema (``nc``, ``depth_multiple``,
``width_multiple``, ``anchors``, ``backbone``, ``head``, optional
``activation``), read as data: string arguments are resolved from a fixed
table of names (``nc``, ``anchors``, ``None`` ...), never evaluated.

``native_arch()`` = ``{"yaml": ..., "act": ..., "csp_act": ..., "bn_eps": ...,
"bn_momentum": ..., "stride": [...], "overrides": {module path: {attr: value}},
"fused": bool}``; ``overrides`` carries per-module attributes read from a
pickled checkpoint that differ from what the yaml alone builds (e.g. another
BN eps or activation in one block).
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError, UsageError
from .base import Detector, default_preprocess
from . import yolov5_blocks as B
from . import yolov5_cls as C
from . import yolov5_extra as X
from . import yolov5_seg as S

FAMILY = "yolov5"

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

CFG_DIR = Path(__file__).resolve().parent.parent / "cfgs" / "yolov5"
# model name -> (bundled yaml base, depth_multiple, width_multiple)
_SIZES = {"n": (0.33, 0.25), "s": (0.33, 0.50), "m": (0.67, 0.75), "l": (1.0, 1.0), "x": (1.33, 1.25)}


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
    rows = list(d["backbone"]) + list(d["head"])
    for i, row in enumerate(rows):
        where = f"architecture layer {i}"
        try:
            f, n, mname, args = row
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected [from, number, module, args], got {row!r}") from None
        if mname not in _MODULES:
            raise ConfigError(f"{where}: unknown module {mname!r}; expected one of {sorted(_MODULES)}")
        ctor, kind = _MODULES[mname]
        args = [_resolve_arg(a, env, where) for a in args]

        def chan(j):  # output channels of the layer a 'from' entry names (-1 = previous)
            k = i + j if j < 0 else j
            if not 0 <= k < i:
                if i == 0 and j == -1:
                    return ch_in
                raise ConfigError(f"{where}: 'from' index {j} points outside layers 0..{i - 1}")
            return ch[k]

        if kind == "detect" and isinstance(f, list) and not f:
            # v1.0: Detect's inputs are the earlier layers that output na*(nc+5) channels, P5 first
            f = list(reversed([j for j in range(i) if ch[j] == no]))
        n = max(round(n * gd), 1) if n > 1 else n
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
    if detect_index is None or detect_index != len(rows) - 1:
        raise ConfigError(f"YOLOv5 architecture dict must end with a head layer (one of {', '.join(HEADS)})")
    return layers, froms, sorted(set(save)), detect_index


class YOLOv5Model(Detector):
    """A YOLOv5 detector (any release, P5/P6/P2/P7, any nc/anchors/multiples).

    ``raw(x)``: list of (B, na*(5+nc), H/s, W/s) Detect outputs before sigmoid.
    ``forward(x)`` in eval: (B, N, 5+nc) xywh pixels, objectness, class probabilities.
    """

    family = FAMILY
    head_types = ("Detect",)  # the final module this class runs (subclasses: Segment, Classify)

    def __init__(self, arch: dict, meta: dict | None = None):
        meta = dict(meta or {})
        arch = copy.deepcopy(arch)
        yaml = arch["yaml"]
        head = head_type(yaml)
        if head not in self.head_types:
            raise ConfigError(f"the architecture ends with {head!r}; {type(self).__name__} runs "
                              f"{'/'.join(self.head_types)} (build it with model_class(yaml) instead)")
        opt = B.BuildOptions(act=arch.get("act") or _yaml_act(yaml), csp_act=arch.get("csp_act") or _yaml_act(yaml),
                             bn_eps=float(arch.get("bn_eps", 1e-3)), bn_momentum=float(arch.get("bn_momentum", 0.03)))
        stride = arch.get("stride")
        if not stride:
            raise ConfigError("YOLOv5 arch has no 'stride' (use create_yolov5 to compute it from the yaml)")
        nc = int(yaml["nc"])
        names = meta.get("names") or [f"class{i}" for i in range(nc)]
        if len(names) != nc:
            raise ConfigError(f"{len(names)} class names given for nc={nc}")
        big = max(stride) >= 64
        super().__init__(names=names, stride=[int(s) for s in stride],
                         input_size=meta.get("input_size") or self._default_input_size(big),
                         preprocess=meta.get("preprocess") or self._default_preprocess(),
                         anchors=None, source=meta.get("source") or {"format": "yolov5"})
        layers, self.froms, self.save, self.detect_index = parse_model(yaml, opt, int(yaml.get("ch", 3)), stride)
        self.model = nn.Sequential(*layers)
        self._arch = arch
        self._arch["overrides"] = dict(arch.get("overrides") or {})
        apply_overrides(self, self._arch["overrides"])
        if arch.get("fused"):
            for m in self.modules():
                if isinstance(m, B.Conv):
                    m.fused_structure_()
        self.anchors = self._pixel_anchors()

    # -- metadata -----------------------------------------------------------------------------
    @staticmethod
    def _default_input_size(big: bool) -> list:
        return [1280, 1280] if big else [640, 640]

    @staticmethod
    def _default_preprocess() -> dict:
        return default_preprocess("letterbox", 114)

    def _pixel_anchors(self) -> list:
        det = self.model[self.detect_index]
        a = det.anchors.detach()
        if a.is_meta:  # built without data (meta device): the yaml's anchors are already pixels
            ya = self._arch["yaml"]["anchors"]
            ya = [list(range(det.na * 2))] * det.nl if isinstance(ya, int) else ya
            return [[[float(lv[2 * k]), float(lv[2 * k + 1])] for k in range(det.na)] for lv in ya]
        return [[[round(float(v) * det.stride[i], 4) for v in pair] for pair in a[i].tolist()] for i in range(det.nl)]

    def refresh_meta(self) -> None:
        """Recompute the pixel anchors after the state dict was loaded."""
        self.anchors = self._pixel_anchors()

    # -- forward ------------------------------------------------------------------------------
    def _detect_inputs(self, x: torch.Tensor) -> list:
        y = []
        for i, (m, f) in enumerate(zip(self.model, self.froms)):
            if i == self.detect_index:
                if isinstance(f, int):
                    return [x if f == -1 else y[f]]
                return [x if j == -1 else y[j] for j in f]
            if f != -1:
                x = y[f] if isinstance(f, int) else [x if j == -1 else y[j] for j in f]
            x = m(x)
            y.append(x if i in self.save else None)
        raise AssertionError("unreachable: parse_model guarantees a final Detect")

    def raw(self, x: torch.Tensor) -> list:
        return self.model[self.detect_index].heads(self._detect_inputs(x))

    def forward(self, x: torch.Tensor):
        outs = self.raw(x)
        if self.training:
            return outs
        return self.model[self.detect_index].decode(outs)

    # -- conversion ---------------------------------------------------------------------------
    def fuse(self) -> "YOLOv5Model":
        for m in self.modules():
            if isinstance(m, B.Conv):
                m.fuse_()
        self._arch["fused"] = True
        return self

    def native_arch(self) -> dict:
        return copy.deepcopy(self._arch)

    @classmethod
    def from_native(cls, arch: dict, meta: dict) -> "YOLOv5Model":
        model = build_uninitialised(arch, meta, cls)
        model.to_empty(device="cpu")
        model.anchors = meta.get("anchors") or model.anchors
        return model


class _SkipInit:
    """Context: build modules on the meta device and skip their random initialisation.

    Loading overwrites every tensor anyway; on the meta device ``uniform_`` and
    friends go through slow Python reference kernels, so they are skipped.
    """

    _INPLACE_INIT = ("uniform_", "normal_", "fill_", "zero_", "kaiming_uniform_", "xavier_uniform_")

    def __enter__(self):
        from torch.overrides import TorchFunctionMode

        skip = self._INPLACE_INIT

        class _Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if getattr(func, "__name__", "") in skip:
                    # torch.nn.init passes the tensor by keyword, Tensor methods positionally
                    t = args[0] if args else kwargs.get("tensor")
                    if isinstance(t, torch.Tensor) and t.is_meta:
                        return t
                return func(*args, **kwargs)

        self._dev = torch.device("meta")
        self._mode = _Mode()
        self._dev.__enter__()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)
        self._dev.__exit__(*exc)
        return False


def build_uninitialised(arch: dict, meta: dict | None = None, cls=None) -> "YOLOv5Model":
    """A model (class ``cls``, default :func:`model_class` of the yaml) whose tensors live on the meta
    device (no memory, no init): load with ``load_state_dict(..., assign=True)`` or materialise with
    ``to_empty(device=...)``."""
    cls = cls or model_class(arch["yaml"])
    with _SkipInit():
        return cls(arch, meta)


def head_type(yaml: dict) -> str:
    """The module name of the architecture's last row (``Detect``, ``Segment`` or ``Classify``)."""
    try:
        return str(list(yaml["head"])[-1][2])
    except (KeyError, IndexError, TypeError):
        raise ConfigError("YOLOv5 architecture dict: 'head' must be a non-empty list of "
                          "[from, number, module, args] rows") from None


def model_class(yaml: dict) -> type:
    """The native class for an architecture: YOLOv5Model (Detect), YOLOv5SegModel, YOLOv5ClsModel."""
    head = head_type(yaml)
    if head == "Detect":
        return YOLOv5Model
    from . import yolov5_tasks

    try:
        return {"Segment": yolov5_tasks.YOLOv5SegModel, "Classify": yolov5_tasks.YOLOv5ClsModel}[head]
    except KeyError:
        raise ConfigError(f"YOLOv5 architecture ends with {head!r}; expected one of {', '.join(HEADS)}") from None


def _yaml_act(yaml: dict) -> dict:
    return B.parse_act_expr(yaml["activation"]) if yaml.get("activation") else {"type": "SiLU"}


def apply_overrides(model: nn.Module, overrides: dict) -> None:
    """Set per-module attributes (``{path: {attr: value}}``; attr ``"act"`` replaces an activation module)."""
    for path, attrs in overrides.items():
        if "act_module" in attrs:
            parent_path, _, name = path.rpartition(".")
            parent = model.get_submodule(parent_path) if parent_path else model
            if not hasattr(parent, name):
                raise ConfigError(f"override for {path!r}: no such module")
            setattr(parent, name, B.make_act(attrs["act_module"]))
            continue
        try:
            mod = model.get_submodule(path)
        except AttributeError:
            raise ConfigError(f"override for {path!r}: no such module in the built model") from None
        for k, v in attrs.items():
            if not hasattr(mod, k):
                raise ConfigError(f"override {path}.{k}: the module has no such attribute")
            setattr(mod, k, tuple(v) if isinstance(v, list) else v)


def compute_stride(yaml: dict, opt_arch: dict) -> list:
    """Strides of the head's inputs (the Detect/Segment levels; the Classify input), from a forward pass at
    256x256 (as YOLOv5 computes them; a Classify model has one)."""
    if head_type(yaml) == "Classify":
        nl = 1
    else:
        nl = len(yaml["anchors"]) if isinstance(yaml["anchors"], list) else len(yaml["head"][-1][0])
    arch = dict(opt_arch, yaml=yaml, stride=[1] * nl)
    m = build_uninitialised(arch)
    s = 256
    feats = m._detect_inputs(torch.zeros(1, int(yaml.get("ch", 3)), s, s, device="meta"))
    return [s // o.shape[-2] for o in feats]


def load_cfg(name: str) -> dict:
    """A bundled architecture dict: ``yolov5{n,s,m,l,x}[6]``, ``yolov5{size}-p2``/``-p7`` or a yaml path."""
    import yaml as _yaml

    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        with open(p, encoding="utf-8") as f:
            return _yaml.safe_load(f)
    m = re.fullmatch(r"yolov5([nsmlx])(6|-p2|-p6|-p7)?", name)
    if not m:
        raise UsageError(f"unknown YOLOv5 model {name!r}; expected yolov5n/s/m/l/x, yolov5n6..x6, "
                         f"yolov5s-p2, yolov5s-p7 or a .yaml path")
    base = {None: "yolov5-p5", "6": "yolov5-p6", "-p6": "yolov5-p6", "-p2": "yolov5-p2", "-p7": "yolov5-p7"}[m.group(2)]
    with open(CFG_DIR / f"{base}.yaml", encoding="utf-8") as f:
        d = _yaml.safe_load(f)
    d["depth_multiple"], d["width_multiple"] = _SIZES[m.group(1)]
    return d


def create_yolov5(name: str = "yolov5s", nc: int = 80, names: list[str] | None = None,
                  anchors=None) -> YOLOv5Model:
    """A randomly initialised YOLOv5 model from a bundled architecture (YOLOv5's own initialisation:
    BN eps 1e-3 / momentum 0.03, Detect biases set for 640 px images and ~8 objects per image)."""
    import math

    d = load_cfg(name)
    d["nc"] = int(nc)
    if anchors is not None:
        d["anchors"] = anchors
    base_arch = {"act": _yaml_act(d), "csp_act": _yaml_act(d), "bn_eps": 1e-3, "bn_momentum": 0.03}
    stride = compute_stride(d, base_arch)
    model = YOLOv5Model(dict(base_arch, yaml=d, stride=stride),
                        {"names": names, "source": {"format": "yolov5", "created": name}})
    det = model.model[model.detect_index]
    if det.m is not None:
        with torch.no_grad():
            for mi, s in zip(det.m, det.stride):
                b = mi.bias.view(det.na, -1)
                b[:, 4] += math.log(8 / (640 / s) ** 2)
                b[:, 5:] += math.log(0.6 / (det.nc - 0.99999))
    return model.eval()
