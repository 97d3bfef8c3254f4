"""``load_mini``: an mmdetection-mini checkpoint + its config -> a native model (the family's loader).

Checkpoint: ``{"state_dict": OrderedDict}`` (optionally ``"meta"``) as mini's converters and its
training loop save it, zip or legacy ``torch.save`` format, read with ``torch.load(weights_only=True)``
(:func:`zooport.converters.mmdet.load.read_checkpoint`: nothing in the file is executed). Config: mini's
``.py`` (mmdet 2.x schema, read by the restricted AST reader) or an already loaded dict.

The result is a native :class:`~zooport.model_defs.darknet.model.DarknetModel` (yolov3, yolov4,
tiny_yolov3, tiny_yolov4) or :class:`~zooport.model_defs.yolov5.model.YOLOv5Model` (yolov5) with
``model.mini``: the :class:`~zooport.parsers.mini.config.MiniArch` (anchors, coder, test_cfg) that
:func:`raw_outputs` and :func:`predict` use to reproduce mini's own outputs and detections.
"""
from __future__ import annotations

import dataclasses
import os

from ...parsers.mini.config import MiniArch, load_mini_config, mini_arch


def resolve_arch(config) -> MiniArch:
    if isinstance(config, MiniArch):
        return config
    if isinstance(config, dict):
        return mini_arch(config)
    return load_mini_config(config)


def load_mini(checkpoint, config, *, names=None):
    """Native model of a mini ``checkpoint`` (path) described by ``config`` (path, dict or MiniArch)."""
    from ..mmdet.load import read_checkpoint

    arch = resolve_arch(config)
    where = os.fspath(checkpoint)
    sd, _meta = read_checkpoint(checkpoint)
    if arch.kind == "yolov5":
        from .yolov5 import build_model
    else:
        from .darknet import build_model
    model = build_model(arch, sd, where, names=names)
    model.mini = arch
    model.source = dict(model.source or {}, mini=dataclasses.asdict(arch))  # kept by native checkpoints
    return model


def mini_arch_of(model) -> MiniArch:
    """The MiniArch of a model read by :func:`load_mini`, also after a native save / load round trip."""
    arch = getattr(model, "mini", None)
    if arch is None:
        d = (getattr(model, "source", None) or {}).get("mini")
        if not isinstance(d, dict):
            from ...errors import UsageError

            raise UsageError(f"{type(model).__name__} was not read from an mmdetection-mini checkpoint")
        arch = MiniArch(**d)
        model.mini = arch
    return arch


def raw_outputs(model, x):
    """mini's ``bbox_head.forward`` outputs for input ``x`` (B, 3, H, W) RGB in [0, 1]: per level, largest
    stride first, the (B, na * (5 + nc), H/s, W/s) map before any sigmoid."""
    from .keys import HEAD_ORDER

    kind = mini_arch_of(model).kind
    outs = model.raw(x)
    if kind == "yolov5":
        return list(reversed(outs))  # native Detect levels run stride 8 -> 32
    return [outs[j] for j in HEAD_ORDER[kind]]


def predict(model, x, *, scale_factor=None, pad_param=None, rescale: bool = False):
    """mini's ``get_bboxes`` for one image: ``(dets (N, 5), labels (N,))`` (see
    :mod:`zooport.model_defs.mini.predict`)."""
    from ...model_defs.mini.predict import get_bboxes

    return get_bboxes(raw_outputs(model, x), mini_arch_of(model), scale_factor=scale_factor, pad_param=pad_param,
                      rescale=rescale)
