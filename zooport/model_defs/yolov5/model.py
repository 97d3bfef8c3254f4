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

import torch
from torch import nn

from ...errors import ConfigError
from ..base import Detector, default_preprocess
from . import blocks as B
from .parse import parse_model

FAMILY = "yolov5"



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
        """The head's inputs: the layers routed as the yaml's ``from`` entries say (the shared forward)."""
        from ..yolo_rows import route

        return route(self.model, self.froms, self.save, self.detect_index, x)

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
        with _SkipInit():
            model = cls(arch, meta)
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


def head_type(yaml: dict) -> str:
    """The module name of the architecture's last row (``Detect``, ``Segment`` or ``Classify``)."""
    try:
        return str(list(yaml["head"])[-1][2])
    except (KeyError, IndexError, TypeError):
        raise ConfigError("YOLOv5 architecture dict: 'head' must be a non-empty list of "
                          "[from, number, module, args] rows") from None


def _yaml_act(yaml: dict) -> dict:
    return B.parse_act_expr(yaml["activation"]) if yaml.get("activation") else {"type": "SiLU"}
