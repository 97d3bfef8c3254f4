"""The interface every zooport detector shares.

Export, evaluation and the zoo only ever talk to a :class:`Detector`, so no
model family is special-cased downstream.

* ``model.raw(x) -> list[Tensor]``: family-defined raw head tensors
  (Darknet: per head, the (B, C, H, W) tensor feeding it; YOLOv5: the Detect
  convs' (B, na*no, H, W) outputs; MMDetection: per output group a list of
  per-level tensors). ``x`` is (B, 3, H, W) float32 RGB in [0, 1].
* ``model(x)`` in eval mode: decoded predictions (B, N, 4 + 1 + nc):
  box centre x, centre y, width, height in input pixels, objectness, then
  per-class scores (probabilities, not logits). Families without objectness
  put 1 there (or their own score factor, documented by the family).
* metadata attributes, all JSON-serialisable: ``names`` (list[str]),
  ``stride`` (list[int], one per output level), ``anchors`` (list per level
  of [w, h] pairs in input pixels, or None), ``input_size`` ([h, w]),
  ``preprocess`` (dict: ``mode`` "letterbox" | "resize" | "mmdet" | "center_crop",
  ``pad_value``, ``color`` "rgb", ``scale`` (1/255 means uint8 -> [0, 1]); a model
  trained on other inputs normalises inside (:mod:`zooport.model_defs.input_norm`)
  and says how in ``model_normalises``), ``source`` (dict: ``format``, ``sha256``, ``file``).
* ``model.native_arch() -> dict``: a JSON-serialisable architecture
  description from which ``from_native`` (classmethod) rebuilds the model;
  together with ``state_dict()`` and ``meta`` it is the native checkpoint
  (see :mod:`zooport.converters.native`).
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


def default_preprocess(mode: str = "letterbox", pad_value: int = 114) -> dict:
    """The preprocessing dict of a model fed RGB images scaled to [0, 1]."""
    return {"mode": mode, "pad_value": pad_value, "color": "rgb", "scale": 1.0 / 255.0}


class Detector(nn.Module):
    """Base class of every native detector. Subclasses set ``family`` (a constant)."""

    family: str = ""

    def __init__(
        self,
        *,
        names: list[str],
        stride: list[int],
        input_size: tuple[int, int] | list[int],
        preprocess: dict,
        anchors: list | None = None,
        source: dict | None = None,
    ) -> None:
        super().__init__()
        self.names = list(names)
        self.stride = [int(s) for s in stride]
        self.input_size = [int(v) for v in input_size]
        self.preprocess = dict(preprocess)
        self.anchors = anchors
        self.source = dict(source or {})

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def with_names(self, names: list[str] | None, where: str = "names") -> "Detector":
        """Replace the class names (same count; ``None`` keeps them); returns self. ``where`` names the file or
        argument in the error."""
        if names is None:
            return self
        if len(names) != len(self.names):
            from ..errors import UsageError

            raise UsageError(f"{where}: {len(names)} class names given, the model has {len(self.names)} classes")
        self.names = [str(n) for n in names]
        return self

    @property
    def meta(self) -> dict[str, Any]:
        """All metadata as one JSON-serialisable dict (used by export, verify and checkpoints)."""
        return copy.deepcopy(
            {
                "family": self.family,
                "names": self.names,
                "stride": self.stride,
                "anchors": self.anchors,
                "input_size": self.input_size,
                "preprocess": self.preprocess,
                "source": self.source,
            }
        )

    def raw(self, x: torch.Tensor) -> list:  # pragma: no cover - interface
        raise NotImplementedError

    def fuse(self) -> "Detector":  # pragma: no cover - interface
        """Fold every Conv+BN pair in place; returns self."""
        raise NotImplementedError

    def native_arch(self) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    @classmethod
    def from_native(cls, arch: dict, meta: dict) -> "Detector":  # pragma: no cover - interface
        """Build an (uninitialised-weights) model from ``native_arch()`` output and ``meta``."""
        raise NotImplementedError
