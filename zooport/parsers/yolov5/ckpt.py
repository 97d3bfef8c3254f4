"""YOLOv5 ``.pt`` checkpoint -> plain data (tensors, architecture dict, metadata).

Pure data out, no ``nn.Module``: the file is read by the allowlisted
unpickler of :mod:`zooport.parsers.pickled.allowlist` (no YOLOv5 code, nothing
executed), then the pickled module tree (``models.yolo.Model`` /
``DetectionModel`` with its ``_modules``, ``_parameters``, ``_buffers`` and
plain attributes) is walked:

* ``state_dict``: YOLOv5's own keys (``model.N.conv.weight`` ...), float
  tensors cast to float32 (released files are fp16), ``num_batches_tracked``
  kept as int64;
* ``yaml``: the architecture dict (``model.yaml``; ``model.md`` in v1.0; for a
  ``ClassificationModel``, which pickles none, rebuilt from its layers by
  :mod:`zooport.parsers.yolov5.cls_arch`);
* ``modules``: ``{path: StandIn}`` of every pickled module, for attributes
  that live outside the state dict (BN eps, activation types, pooling and
  upsampling parameters);
* names, stride, epoch/date/version metadata; ``ema`` is preferred over
  ``model`` when a training checkpoint carries both.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...errors import CheckpointError
from ..pickled.allowlist import StandIn
from ..pickled.reader import read_torch_zip

_MODEL_CLASSES = ("models.yolo.Model", "models.yolo.DetectionModel", "models.yolo.SegmentationModel",
                  "models.yolo.ClassificationModel")


@dataclass
class YOLOv5Checkpoint:
    path: str
    state_dict: dict
    yaml: dict
    names: list
    stride: list
    modules: dict
    source_key: str  # "model" or "ema"
    info: dict = field(default_factory=dict)  # epoch, date, git, release hints (JSON-serialisable)


def _walk(node: StandIn, prefix: str, path: Path, sd: dict, modules: dict) -> None:
    """Collect parameters and persistent buffers of ``node`` and its children (depth first)."""
    if not isinstance(node, StandIn) or not isinstance(node.state, dict):
        raise CheckpointError(f"{path}: module {prefix.rstrip('.') or '<root>'} is not a pickled nn.Module")
    modules[prefix.rstrip(".")] = node
    params = node.get("_parameters") or {}
    buffers = node.get("_buffers") or {}
    non_persistent = node.get("_non_persistent_buffers_set") or set()
    if not isinstance(params, dict) or not isinstance(buffers, dict):
        raise CheckpointError(f"{path}: module {prefix.rstrip('.')} has malformed _parameters/_buffers")
    for group, items in (("parameter", params), ("buffer", buffers)):
        for name, t in items.items():
            if t is None or (group == "buffer" and name in non_persistent):
                continue
            key = prefix + name
            if not isinstance(t, torch.Tensor):
                raise CheckpointError(f"{path}: {group} {key!r} is not a tensor")
            if t.layout != torch.strided:
                raise CheckpointError(f"{path}: {group} {key!r} has layout {t.layout}; only dense tensors are read")
            if name == "num_batches_tracked":
                if t.is_floating_point() or t.is_complex():
                    raise CheckpointError(f"{path}: buffer {key!r} must be an integer counter, got {t.dtype}")
                sd[key] = _own(t.to(torch.int64))
            else:
                if not t.is_floating_point():
                    raise CheckpointError(f"{path}: {group} {key!r} has dtype {t.dtype}; float weights expected")
                sd[key] = _own(t.to(torch.float32))
    for name, child in (node.get("_modules") or {}).items():
        if child is None:
            continue
        _walk(child, prefix + name + ".", path, sd, modules)


def _own(t: torch.Tensor) -> torch.Tensor:
    """``t`` as a tensor owning its whole (fresh, unshared) storage: copied only if it is a view."""
    if t.is_contiguous() and t.storage_offset() == 0 and t.untyped_storage().nbytes() == t.numel() * t.element_size():
        return t
    return t.contiguous().clone()


def _plain(v):
    """JSON-safe copy of simple metadata (strings, numbers, lists, dicts); others dropped to repr."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, torch.Tensor) and v.numel() <= 16:
        return v.tolist()
    return repr(v)[:200]


def read_model_entry(path: Path, what: str) -> tuple[dict, str]:
    """Read a pickled-module checkpoint (YOLOv5 or Ultralytics) safely -> (top-level dict, the key of the
    model to use): ``ema`` when it holds a model (a training checkpoint), else ``model``; a bare
    pickled model counts as ``{"model": it}``. ``what`` names the family in errors ("a YOLOv5")."""
    obj = read_torch_zip(path, float_dtype=torch.float32)
    if isinstance(obj, StandIn):
        return {"model": obj}, "model"
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: top-level object is {type(obj).__name__}, expected {what} checkpoint dict")
    if isinstance(obj.get("ema"), StandIn):
        return obj, "ema"
    if "model" in obj:
        return obj, "model"
    raise CheckpointError(f"{path}: checkpoint dict has no 'model' or 'ema' entry "
                          f"(keys: {sorted(map(str, obj))[:10]})")


def parse_yolov5_checkpoint(path: str | os.PathLike) -> YOLOv5Checkpoint:
    """Read a YOLOv5 checkpoint (any release v1.0 ... v7.0) safely; see the module doc."""
    path = Path(path)
    top, source_key = read_model_entry(path, "a YOLOv5")
    model = top[source_key]
    if not isinstance(model, StandIn) or model.foreign not in _MODEL_CLASSES:
        got = model.foreign if isinstance(model, StandIn) else type(model).__name__
        raise CheckpointError(f"{path}: entry {source_key!r} is {got}, expected a pickled models.yolo.Model, "
                              f"DetectionModel, SegmentationModel or ClassificationModel")
    yaml = model.get("yaml") if isinstance(model.get("yaml"), dict) else model.get("md")
    if not isinstance(yaml, dict) and model.foreign == "models.yolo.ClassificationModel":
        from .cls_arch import classification_yaml

        yaml = classification_yaml(model, path)
    if not isinstance(yaml, dict):
        raise CheckpointError(f"{path}: the pickled model has no architecture dict ('yaml', or 'md' in v1.0)")
    sd: dict = {}
    modules: dict = {}
    _walk(model, "", path, sd, modules)
    if not sd:
        raise CheckpointError(f"{path}: the pickled model holds no tensors")
    names = model.get("names")
    nc = int(yaml.get("nc", 0))
    if isinstance(names, dict):
        names = [str(names[k]) for k in sorted(names)]
    if not isinstance(names, list) or len(names) != nc:
        names = [str(n) for n in names] if isinstance(names, list) and len(names) == nc else \
            [f"class{i}" for i in range(nc)]
    stride = _find_stride(model, modules)
    info = {k: _plain(top.get(k)) for k in ("epoch", "date", "git", "wandb_id", "updates") if k in top}
    info["keys"] = sorted(str(k) for k in top)
    info["model_class"] = model.foreign
    info["yaml_file"] = _plain(model.get("yaml_file"))
    return YOLOv5Checkpoint(path=str(path), state_dict=sd, yaml=yaml, names=[str(n) for n in names],
                            stride=stride, modules=modules, source_key=source_key, info=info)


def _find_stride(model: StandIn, modules: dict) -> list:
    """Per-level strides from the pickled Detect (or Model) ``stride`` tensor; [] when absent."""
    if model.foreign.endswith(".ClassificationModel"):
        return []  # its 'stride' is the cut detection model's; the classifier's is computed from the layers
    cands = [m.get("stride") for m in modules.values() if m.foreign.endswith((".Detect", ".Segment"))] \
        + [model.get("stride")]
    for s in cands:
        if isinstance(s, torch.Tensor) and s.numel():
            return [int(round(float(v))) for v in s.flatten().tolist()]
        if isinstance(s, (list, tuple)) and s:
            return [int(round(float(v))) for v in s]
    return []
