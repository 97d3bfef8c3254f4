"""UltralyticsClsModel: Ultralytics' ``ClassificationModel`` (YOLOv8-cls, YOLO11-cls, YOLO26-cls) natively.

A backbone of the detection blocks (:mod:`.model`) ending in ``Classify`` (the same head as YOLOv5's,
:class:`zooport.model_defs.yolov5.cls_head.Classify`: Conv to 1280, global average pool, Dropout, Linear).

Outputs: ``raw(x)`` logits (B, nc); ``model(x)`` in eval: softmax probabilities (B, nc), as Ultralytics'
``Classify`` returns in eval (``output_softmax`` False gives the logits instead, e.g. for an ONNX graph); top-5 as Ultralytics'
``Probs``: :func:`zooport.postprocess.ultralytics.classify_topk`.
Default preprocessing: square centre crop resized to 224, RGB / 255, no mean/std (Ultralytics 8.4's
``classify_transforms`` use mean 0, std 1; it resizes with PIL, so pixel values can differ slightly).
"""
from __future__ import annotations

import torch

from .model import UltralyticsModel


def classify_preprocess_ultralytics(size: int = 224) -> dict:
    """The preprocessing dict of an Ultralytics classifier (module doc)."""
    return {"mode": "center_crop", "color": "rgb", "scale": 1.0 / 255.0, "size": [int(size), int(size)],
            "interpolation": "linear"}  # no mean / std: Ultralytics classifiers take RGB [0, 1] as is


class UltralyticsClsModel(UltralyticsModel):
    """An Ultralytics ``ClassificationModel``; see the module doc."""

    family = "ultralytics-cls"
    head_type = "Classify"
    output_softmax = True

    @property
    def output_names(self) -> tuple:
        return ("probs",) if self.output_softmax else ("logits",)

    def onnx_dynamic_axes(self) -> dict:
        return {self.output_names[0]: {0: "batch"}}

    @staticmethod
    def _default_size() -> list:
        return [224, 224]

    @staticmethod
    def _default_preprocess() -> dict:
        return classify_preprocess_ultralytics(224)

    @property
    def end2end(self) -> bool:
        return False

    def raw(self, x: torch.Tensor, branch: str = "one2many") -> torch.Tensor:
        """Logits (B, nc)."""
        return self.detect.heads(self._detect_inputs(x))[0]

    def decoded(self, x: torch.Tensor, branch: str = "one2many") -> torch.Tensor:
        """Softmax probabilities (B, nc) (Ultralytics' eval output)."""
        return self.raw(x).softmax(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.raw(x)
        return logits.softmax(1) if self.output_softmax and not self.training else logits

