"""Ultralytics YOLOv8 / YOLO11 checkpoints <-> native :class:`~zooport.model_defs.ultralytics.model.UltralyticsModel`.

* :func:`load_ultralytics` reads an Ultralytics detection ``.pt`` safely (see
  :mod:`zooport.parsers.ultralytics.ckpt`) into a ready native model (eval mode).
* :func:`to_ultralytics_state_dict` / :func:`from_ultralytics_state_dict`: the
  native state dict <-> Ultralytics' ``DetectionModel`` state dict
  (``model.N....`` keys, the same shapes). Native modules carry Ultralytics'
  names, so the key map is the identity on ``model.*`` keys; both directions
  are strict (a missing, unused or reshaped key is a :class:`CheckpointError`).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..._io import sha256_file
from ...errors import CheckpointError, UsageError
from ..yolov5.load import _defaults, _overrides, from_yolov5_state_dict, native_key_to_yolov5


def from_ultralytics_state_dict(model, state_dict: dict, source: str = "<state dict>") -> dict:
    """Map an Ultralytics-style state dict onto ``model``'s native keys (strict); returns the native dict.

    The same ``model.N.<name>`` identity map and strict checks as YOLOv5's (one implementation):
    a missing or unused key, or a shape mismatch, is a :class:`CheckpointError` naming the key.
    """
    return from_yolov5_state_dict(model, state_dict, source)


def to_ultralytics_state_dict(model) -> dict:
    """The native model's tensors under Ultralytics' keys and shapes (what ``DetectionModel(yaml)
    .load_state_dict`` takes)."""
    if model.native_arch().get("fused"):
        raise UsageError("a fused model has no BatchNorm tensors; Ultralytics' DetectionModel expects them: "
                         "convert the unfused model")
    return {native_key_to_yolov5(k): v.detach().clone() for k, v in model.state_dict().items()}


def load_ultralytics(path: str | os.PathLike, *, names=None):
    """Load an Ultralytics YOLOv8 / YOLO11 / YOLO26 / YOLOv10 detection ``.pt`` into a native UltralyticsModel
    (eval mode), or a ``ClassificationModel`` into an
    :class:`~zooport.model_defs.ultralytics.classify.UltralyticsClsModel`.

    ``names``: a names file or a list overriding the checkpoint's class names (same count as its nc).

    No Ultralytics code is imported and nothing from the file is executed.
    Settings outside the state dict (BN eps/momentum, activations, upsampling)
    are read from the pickled modules; weights are float32; ``model.source``
    records the file, its sha256 and whether EMA weights were used. Segment,
    pose, OBB and classify models raise :class:`~zooport.errors.UnsupportedError`.
    """
    from ...model_defs.base import default_preprocess
    from ...model_defs.ultralytics.build import build_uninitialised
    from ...model_defs.yolov5.model import apply_overrides
    from ...parsers.ultralytics.ckpt import parse_ultralytics_checkpoint

    path = Path(path)
    ck = parse_ultralytics_checkpoint(path)
    d = _defaults(ck.modules)
    head = ck.arch["layers"][-1]
    arch = dict(ck.arch, act=d["act"], bn_eps=d["bn_eps"], bn_momentum=d["bn_momentum"],
                reg_max=head.get("reg_max", 16))
    if not ck.stride:
        raise CheckpointError(f"{path}: the pickled model has no 'stride' tensor")
    arch["stride"] = ck.stride
    source = {"format": "ultralytics", "file": path.name, "sha256": sha256_file(path), "weights": ck.source_key,
              "note": "EMA weights used (training checkpoint)" if ck.source_key == "ema" else
              "released weights ('model')", "head": head.get("head", head["type"]),
              **{k: v for k, v in ck.info.items() if k in ("epoch", "date", "version")}}
    if names is not None:
        from ...parsers.names import resolve_names

        names = resolve_names(names)
        if len(names) != len(ck.names):
            raise UsageError(f"{path}: {len(names)} class names given, the checkpoint has nc={len(ck.names)}")
    meta = {"names": names or ck.names, "source": source, "input_size": ck.imgsz}
    if head["type"] == "Classify":  # the classifier's own defaults (centre crop, no mean/std)
        from ...model_defs.ultralytics.classify import classify_preprocess_ultralytics

        meta["preprocess"] = classify_preprocess_ultralytics(ck.imgsz[0])
    else:
        meta["preprocess"] = default_preprocess("letterbox", 114)
    model = build_uninitialised(arch, meta)
    ov = _overrides(model, ck.modules)
    apply_overrides(model, ov)
    model._arch["overrides"] = ov
    sd = from_ultralytics_state_dict(model, ck.state_dict, str(path))
    model.load_state_dict(sd, strict=True, assign=True)
    return model.eval()
