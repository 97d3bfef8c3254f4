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
from .yolov5_parse import HEADS, make_divisible, parse_model  # noqa: F401  (re-exported)

FAMILY = "yolov5"

CFG_DIR = Path(__file__).resolve().parent.parent / "cfgs" / "yolov5"
# model name -> (bundled yaml base, depth_multiple, width_multiple)
_SIZES = {"n": (0.33, 0.25), "s": (0.33, 0.50), "m": (0.67, 0.75), "l": (1.0, 1.0), "x": (1.33, 1.25)}


class ConvBlockModel(Detector):
    """What YOLOv5 and Ultralytics models share: their layers are built from YOLOv5's ``Conv`` blocks
    and described by an ``_arch`` dict (the native checkpoint's architecture)."""

    def fuse(self):
        """Fold every Conv block's BatchNorm into its conv (outputs equal within 1e-5); recorded in the arch."""
        for m in self.modules():
            if isinstance(m, B.Conv):
                m.fuse_()
        self._arch["fused"] = True
        return self

    def native_arch(self) -> dict:
        return copy.deepcopy(self._arch)

    def _adopt_arch(self, arch: dict) -> None:
        """Keep ``arch`` (already copied) as ``_arch`` and bring the built layers to it: its per-module
        ``overrides`` and, for a fused checkpoint, the conv-with-bias structure (no BN)."""
        self._arch = arch
        self._arch["overrides"] = dict(arch.get("overrides") or {})
        apply_overrides(self, self._arch["overrides"])
        if arch.get("fused"):
            for m in self.modules():
                if isinstance(m, B.Conv):
                    m.fused_structure_()


class YOLOv5Model(ConvBlockModel):
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
        self._adopt_arch(arch)
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
    from torch.nn import functional as F
    from torch.overrides import TorchFunctionMode

    class _ShapesOnly(TorchFunctionMode):  # batch norm keeps shapes; on meta tensors it is slow Python
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return args[0] if func is F.batch_norm else func(*args, **(kwargs or {}))

    with _ShapesOnly():
        feats = m._detect_inputs(torch.zeros(1, int(yaml.get("ch", 3)), s, s, device="meta"))
    return [s // o.shape[-2] for o in feats]


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
