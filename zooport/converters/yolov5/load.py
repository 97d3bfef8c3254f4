"""YOLOv5 checkpoints <-> native :class:`~zooport.model_defs.yolov5.model.YOLOv5Model`.

* :func:`load_yolov5` reads a YOLOv5 ``.pt`` (safely, see
  :mod:`zooport.parsers.yolov5.ckpt`) into a ready native model (eval mode).
* :func:`to_yolov5_state_dict` / :func:`from_yolov5_state_dict`: the native
  state dict <-> a YOLOv5-style state dict ``{"model.N....": tensor}`` with
  YOLOv5's keys and shapes (what ``DetectionModel(cfg).load_state_dict``
  takes). Native modules use YOLOv5's names, so the key map is the identity on
  ``model.*`` keys; the only YOLOv5-side extra is the ``anchor_grid`` buffer
  of releases <= v5.0, which must equal ``anchors * stride`` and is dropped.
  Both directions are strict: an unmatched or unused key is a CheckpointError.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import torch

from ..._io import sha256_file
from ...errors import CheckpointError, UsageError

_KEY = re.compile(r"^model\.\d+\.[A-Za-z0-9_.]+$")

# pickled activation classes -> our activation spec type
_ACT_NAMES = {
    "torch.nn.modules.activation.SiLU": "SiLU", "torch.nn.modules.activation.LeakyReLU": "LeakyReLU",
    "torch.nn.modules.activation.Hardswish": "Hardswish", "torch.nn.modules.activation.ReLU": "ReLU",
    "torch.nn.modules.activation.Sigmoid": "Sigmoid", "torch.nn.modules.activation.Mish": "Mish",
    "torch.nn.modules.activation.Tanh": "Tanh", "torch.nn.modules.activation.GELU": "GELU",
    "torch.nn.modules.linear.Identity": "Identity",
    "utils.activations.SiLU": "SiLU", "utils.activations.MemoryEfficientSwish": "SiLU",
    "utils.activations.Hardswish": "Hardswish", "utils.activations.Mish": "Mish",
    "utils.activations.MemoryEfficientMish": "Mish",
}
# pickled attributes read onto native modules (they live outside the state dict)
_ATTRS = {
    "torch.nn.modules.batchnorm.BatchNorm2d": ("eps", "momentum"),
    "torch.nn.modules.upsampling.Upsample": ("size", "scale_factor", "mode", "align_corners"),
    "torch.nn.modules.pooling.MaxPool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "torch.nn.modules.padding.ZeroPad2d": ("padding",),
    "torch.nn.modules.conv.ConvTranspose2d": ("stride", "padding", "output_padding", "dilation"),
    "models.common.DWConvTranspose2d": ("stride", "padding", "output_padding", "dilation"),
}


def yolov5_key_to_native(key: str) -> str:
    """YOLOv5 state-dict key -> native key (identity on ``model.N...`` keys; anything else is an error)."""
    if not _KEY.match(key):
        raise CheckpointError(f"YOLOv5 state dict key {key!r} does not have the form 'model.N.<name>'")
    return key


def native_key_to_yolov5(key: str) -> str:
    """Native key -> YOLOv5 key (identity; native modules carry YOLOv5's names)."""
    if not _KEY.match(key):
        raise CheckpointError(f"native key {key!r} has no YOLOv5 counterpart")
    return key


def _act_spec(node) -> dict | None:
    kind = _ACT_NAMES.get(node.foreign)
    if kind is None:
        return None
    spec = {"type": kind}
    if kind == "LeakyReLU":
        spec["negative_slope"] = float(node.get("negative_slope", 0.01))
    return spec


def _json(v):
    return list(v) if isinstance(v, tuple) else v


def _defaults(modules: dict) -> dict:
    """Most common Conv activation, BottleneckCSP activation and BN eps/momentum of a pickled model."""
    acts = Counter()
    csp = Counter()
    eps = Counter()
    mom = Counter()
    for path, node in modules.items():
        if node.foreign.endswith(".Conv") and "act" in node.children:
            s = _act_spec(node.children["act"])
            if s:
                acts[tuple(sorted(s.items()))] += 1
        if node.foreign.endswith(".BottleneckCSP") and "act" in node.children:
            s = _act_spec(node.children["act"])
            if s:
                csp[tuple(sorted(s.items()))] += 1
        if node.foreign == "torch.nn.modules.batchnorm.BatchNorm2d":
            eps[float(node.get("eps", 1e-5))] += 1
            if node.get("momentum") is not None:
                mom[float(node.get("momentum"))] += 1
    act = dict(acts.most_common(1)[0][0]) if acts else {"type": "SiLU"}
    return {"act": act, "csp_act": dict(csp.most_common(1)[0][0]) if csp else act,
            "bn_eps": eps.most_common(1)[0][0] if eps else 1e-3,
            "bn_momentum": mom.most_common(1)[0][0] if mom else 0.03}


def _overrides(model, modules: dict) -> dict:
    """Per-module attributes of the pickled model that differ from the yaml-built native model."""
    from ...model_defs.yolov5.blocks import act_spec

    native = dict(model.named_modules())
    out: dict = {}
    for path, node in modules.items():
        if path not in native:
            continue  # structural differences surface as state-dict key errors
        mine = native[path]
        spec = _act_spec(node)
        if spec is not None:
            if act_spec(mine) != spec:
                out[path] = {"act_module": spec}
            continue
        for attr in _ATTRS.get(node.foreign, ()):
            if attr not in (node.state or {}):
                continue
            v = _json(node.get(attr))
            if _json(getattr(mine, attr, None)) != v:
                out.setdefault(path, {})[attr] = v
    return out


def from_yolov5_state_dict(model, state_dict: dict, source: str = "<state dict>") -> dict:
    """Map a YOLOv5-style state dict onto ``model``'s native keys (strict); returns the native dict.

    Raises :class:`CheckpointError` naming the first missing/unused key or shape mismatch.
    """
    from ..strict import check_state_dict

    own = model.state_dict()
    out, given = {}, {}  # native key -> tensor, native key -> the key the file used
    det = model.model[model.detect_index]
    det_prefix = f"model.{model.detect_index}."
    for k, v in state_dict.items():
        if k == det_prefix + "anchor_grid":  # releases <= v5.0: pixels, (nl, 1, na, 1, 1, 2)
            anchors = state_dict.get(det_prefix + "anchors")
            if anchors is None or v.numel() != anchors.numel():
                raise CheckpointError(f"{source}: key {k!r} does not match the anchors buffer")
            ref = anchors.float().reshape(det.nl, -1, 2) * torch.tensor(det.stride).view(-1, 1, 1)
            if not torch.allclose(v.float().reshape(det.nl, -1, 2), ref, rtol=1e-2, atol=1e-2):
                raise CheckpointError(f"{source}: key {k!r} (pixels) is not anchors * stride")
            continue
        nk = yolov5_key_to_native(k)
        out[nk], given[nk] = v, k
    check_state_dict({k: v.shape for k, v in own.items()}, out, source, subject="the architecture",
                     show=lambda k: given.get(k) or native_key_to_yolov5(k))
    return out


def to_yolov5_state_dict(model) -> dict:
    """The native model's tensors under YOLOv5's keys and shapes (v6/v7 layout: no ``anchor_grid``)."""
    if model.native_arch().get("fused"):
        raise UsageError("a fused model has no BatchNorm tensors; YOLOv5's DetectionModel expects them: "
                         "convert the unfused model")
    return {native_key_to_yolov5(k): v.detach().clone() for k, v in model.state_dict().items()}


def load_yolov5(path: str | os.PathLike, *, names=None):
    """Load a YOLOv5 ``.pt`` checkpoint (any release) into a native YOLOv5Model in eval mode.

    No YOLOv5 code is imported and nothing from the file is executed. Weights
    are float32; ``model.source`` records the file, its sha256 and whether the
    EMA weights were used. ``names``: a names file or a list overriding the
    checkpoint's class names (same count as the checkpoint's ``nc``).
    """
    from ...model_defs.yolov5.create import build_uninitialised, compute_stride, model_class
    from ...model_defs.yolov5.model import apply_overrides
    from ...parsers.yolov5.ckpt import parse_yolov5_checkpoint

    path = Path(path)
    ck = parse_yolov5_checkpoint(path)
    arch = dict(_defaults(ck.modules), yaml=_jsonable_yaml(ck.yaml, path))
    arch["stride"] = ck.stride or compute_stride(arch["yaml"], arch)
    # a model saved after YOLOv5's fuse(): its Conv blocks lost 'bn' and gained a conv bias
    if any(n.foreign.endswith((".Conv", ".DWConv")) and "bn" not in n.children for n in ck.modules.values()):
        arch["fused"] = True
    source = {"format": "yolov5", "file": path.name, "sha256": sha256_file(path), "weights": ck.source_key,
              "note": "EMA weights used (training checkpoint)" if ck.source_key == "ema" else
              "released weights ('model')", **{k: v for k, v in ck.info.items() if k in ("epoch", "date")}}
    if names is not None:
        from ...parsers.names import resolve_names

        names = resolve_names(names)
        nc = int(arch["yaml"].get("nc", len(names)))
        if len(names) != nc:
            raise UsageError(f"{path}: {len(names)} class names given, the checkpoint has nc={nc}")
    cls = model_class(arch["yaml"])
    meta = {"names": names or ck.names, "source": source, "preprocess": cls._default_preprocess()}
    model = build_uninitialised(arch, meta, cls)
    ov = _overrides(model, ck.modules)
    apply_overrides(model, ov)
    model._arch["overrides"] = ov
    sd = from_yolov5_state_dict(model, ck.state_dict, str(path))
    model.load_state_dict(sd, strict=True, assign=True)  # keys and shapes checked by from_yolov5_state_dict
    model.refresh_meta()
    return model.eval()


def _jsonable_yaml(d, path):
    """The architecture dict as plain JSON data (it came from the pickle: lists, numbers, strings)."""
    import json

    try:
        return json.loads(json.dumps(d))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: architecture dict holds non-plain data ({e})") from None
