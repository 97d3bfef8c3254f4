"""UltralyticsModel: a native YOLOv8 / YOLO11 detector built from an explicit architecture.

``native_arch()`` = ``{"layers": [...], "nc", "reg_max", "act", "bn_eps",
"bn_momentum", "stride", "overrides", "fused"}``; the layer specs are those of
:mod:`zooport.parsers.ultralytics.ckpt` (read from a pickled module tree) or of
:func:`zooport.model_defs.ultralytics.build.arch_from_yaml` (Ultralytics' yamls).
``overrides`` carries per-module attributes that differ from the defaults (an
activation or BN eps of one block), applied as for YOLOv5.

Outputs:

* ``raw(x)``: per level (B, 4*reg_max + nc, H/s, W/s), the Detect head's
  concatenated box-distribution logits (side-major: left, top, right, bottom,
  reg_max bins each) and class logits;
* ``decoded(x)``: Ultralytics' inference tensor (B, 4 + nc, N): cx, cy, w, h in
  input pixels, sigmoid class scores; anchors ordered level by level, row-major;
* ``model(x)`` in eval: zooport's shared (B, N, 4 + 1 + nc) form, objectness
  slot 1 (the head has no objectness), then the class scores.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ...errors import ConfigError
from . import blocks as U
from ..yolov5 import blocks as B
from ..base import default_preprocess
from ..yolov5.model import ConvBlockModel, _SkipInit

FAMILY = "ultralytics"


def _build_layer(spec: dict, opt: B.BuildOptions, stride) -> nn.Module:
    t = spec["type"]
    if t == "Conv":
        return B.Conv(spec["c1"], spec["c2"], spec["k"], spec["s"], spec.get("p"), spec.get("g", 1),
                      spec.get("d", 1), act=bool(spec.get("act", True)), opt=opt)
    if t in ("C2f", "C3k2"):  # C2fCIB too (above): the same CSP body, CIB blocks
        return U.C2f(spec["c1"], spec["c2"], spec["c"], spec["blocks"], opt=opt)
    if t == "SPPF":
        return U.SPPF(spec["c1"], spec["c2"], spec["k"], spec.get("n", 3), spec.get("add", False),
                      spec.get("cv1_act", True), opt=opt)
    if t == "C2fCIB":
        return U.C2f(spec["c1"], spec["c2"], spec["c"], spec["blocks"], opt=opt)
    if t == "SCDown":
        from .blocks_v10 import SCDown

        return SCDown(spec["c1"], spec["c2"], spec["k"], spec["s"], opt=opt)
    if t == "PSA":
        from .blocks_v10 import PSA

        return PSA(spec["c1"], spec["c"], spec["num_heads"], spec["key_dim"], spec["head_dim"], spec["hidden"],
                   opt=opt)
    if t == "C2PSA":
        return U.C2PSA(spec["c1"], spec["c2"], spec["c"], spec["blocks"], opt=opt)
    if t == "Upsample":
        return nn.Upsample(spec.get("size"), spec.get("scale_factor"), spec.get("mode", "nearest"))
    if t == "Concat":
        return B.Concat(spec.get("d", 1))
    if t == "Classify":
        from ..yolov5.cls_head import Classify

        return Classify(spec["c1"], spec["nc"], spec["k"], spec["s"], spec.get("p"), spec.get("g", 1), opt=opt)
    if t == "Detect":
        return U.Detect(spec["nc"], spec["ch"], spec["c2"], spec["c3"], spec.get("reg_max", 16), spec["head"],
                        spec.get("end2end", False), stride=stride, opt=opt)
    raise ConfigError(f"unknown Ultralytics layer type {t!r}")


class UltralyticsModel(ConvBlockModel):
    """A YOLOv8 / YOLO11 detection model (any scale, any nc). See the module doc for outputs."""

    family = FAMILY
    head_type = "Detect"

    def __init__(self, arch: dict, meta: dict | None = None):
        meta = dict(meta or {})
        arch = copy.deepcopy(arch)
        layers = arch.get("layers") or []
        if not layers or layers[-1].get("type") != self.head_type:
            raise ConfigError(f"Ultralytics arch must list layers ending with a {self.head_type} layer")
        stride = arch.get("stride")
        if not stride or (self.head_type == "Detect" and len(stride) != len(layers[-1]["ch"])):
            raise ConfigError(f"Ultralytics arch stride {stride!r} does not give one stride per Detect level")
        opt = B.BuildOptions(act=arch.get("act") or {"type": "SiLU"}, csp_act=arch.get("act") or {"type": "SiLU"},
                             bn_eps=float(arch.get("bn_eps", 1e-3)), bn_momentum=float(arch.get("bn_momentum", 0.03)))
        nc = int(layers[-1]["nc"])
        names = meta.get("names") or [f"class{i}" for i in range(nc)]
        if len(names) != nc:
            raise ConfigError(f"{len(names)} class names given for nc={nc}")
        super().__init__(names=names, stride=[int(s) for s in stride],
                         input_size=meta.get("input_size") or self._default_size(),
                         preprocess=meta.get("preprocess") or self._default_preprocess(),
                         anchors=None, source=meta.get("source") or {"format": "ultralytics"})
        mods, froms, save = [], [], set()
        for i, spec in enumerate(layers):
            f = spec.get("from", -1)
            fl = [f] if isinstance(f, int) else list(f)
            absolute = [j if j == -1 else (j if j >= 0 else i + j) for j in fl]
            if any(j != -1 and not 0 <= j < i for j in absolute) or (i == 0 and absolute != [-1]):
                raise ConfigError(f"Ultralytics arch layer {i}: 'from' {f!r} points outside layers 0..{i - 1}")
            save.update(j for j in absolute if j != -1)
            froms.append(absolute[0] if isinstance(f, int) else absolute)
            try:
                mods.append(_build_layer(spec, opt, stride))
            except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
                raise ConfigError(f"Ultralytics arch layer {i} ({spec.get('type')}): cannot build ({e})") from None
        self.model = nn.Sequential(*mods)
        self.froms, self.save, self.detect_index = froms, sorted(save), len(mods) - 1
        self._adopt_arch(arch)

    @staticmethod
    def _default_size() -> list:
        return [640, 640]

    @staticmethod
    def _default_preprocess() -> dict:
        return default_preprocess("letterbox", 114)

    @property
    def detect(self) -> U.Detect:
        return self.model[self.detect_index]

    def _detect_inputs(self, x: torch.Tensor) -> list:
        """The head's inputs (the forward shared with YOLOv5: :func:`~zooport.model_defs.yolo_rows.route`)."""
        from ..yolo_rows import route

        return route(self.model, self.froms, self.save, self.detect_index, x)

    def raw(self, x: torch.Tensor, branch: str = "one2many") -> list:
        """Per-level head outputs (module doc) of the one-to-many or (end-to-end heads) one-to-one branch."""
        return self.detect.heads(self._detect_inputs(x), branch)

    def decoded(self, x: torch.Tensor, branch: str = "one2many") -> torch.Tensor:
        """Ultralytics' own inference output (B, 4 + nc, N) (module doc); the one-to-one branch decodes
        x1, y1, x2, y2 instead of cx, cy, w, h, as Ultralytics' end-to-end mode does."""
        return self.detect.decode(self.raw(x, branch), xywh=branch != "one2one")

    @property
    def end2end(self) -> bool:
        """True when the head has YOLO26 / YOLOv10's one-to-one branch (NMS-free output available)."""
        return self.detect.end2end

    def end2end_output(self, x: torch.Tensor, max_det: int = 300) -> torch.Tensor:
        """Ultralytics' end-to-end output (B, min(max_det, N), 6): x1, y1, x2, y2, score, class of the
        one-to-one branch, top-k without NMS (:func:`zooport.postprocess.ultralytics.topk_end2end`).

        ``forward`` keeps the one-to-many branch (as Ultralytics 8.4's ``predict`` does unless ``nms=False``)."""
        from ...postprocess.ultralytics import topk_end2end

        return topk_end2end(self.decoded(x, "one2one"), self.detect.nc, max_det)

    def forward(self, x: torch.Tensor):
        outs = self.raw(x)
        if self.training:
            return outs
        y = self.detect.decode(outs).transpose(1, 2)
        ones = torch.ones_like(y[..., :1])
        return torch.cat((y[..., :4], ones, y[..., 4:]), 2)

    # -- conversion (fuse / native_arch: ConvBlockModel) -------------------------------------
    @classmethod
    def from_native(cls, arch: dict, meta: dict) -> "UltralyticsModel":
        with _SkipInit():
            model = cls(arch, meta)
        model.to_empty(device="cpu")
        return model
