"""YOLOv5 v7.0's non-detection models as native classes: segmentation and classification.

Both reuse :class:`~zooport.model_defs.yolov5.model.YOLOv5Model` (layers ``model``,
routing ``froms``/``save``, ``detect_index`` = the head, fuse, overrides,
native arch = the YOLOv5 architecture dict); only the head and the outputs
differ. :func:`zooport.model_defs.yolov5.create.model_class` picks the class from
the architecture's last module.

* :class:`YOLOv5SegModel` (``SegmentationModel``, head ``Segment``):
  ``raw(x)`` = ``[p3, p4, p5, proto]`` (levels (B, na*(5+nc+nm), H, W) before
  sigmoid, prototypes (B, nm, 2*H3, 2*W3)); ``model(x)`` in eval = ``(pred,
  proto)`` with pred (B, N, 5+nc+nm) (see :mod:`.yolov5_seg`).
* :class:`YOLOv5ClsModel` (``ClassificationModel``, head ``Classify``):
  ``raw(x)`` and ``model(x)`` = logits (B, nc); with ``output_softmax = True``
  ``model(x)`` returns softmax probabilities instead (for export). Input: the
  classification preprocessing (:data:`CLASSIFY_PREPROCESS`), 224 x 224 by default.
"""
from __future__ import annotations

import torch

from ..input_norm import InputNorm
from .model import YOLOv5Model

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def classify_preprocess(size: int = 224) -> dict:
    """YOLOv5 v7.0 ``classify_transforms(size)`` as a preprocessing dict: centre square crop of side
    min(h, w), ``cv2.resize`` to size x size (INTER_LINEAR), BGR -> RGB, /255; the ImageNet
    ``(x - mean) / std`` is the model's own first step (``model_normalises``, see
    :class:`~zooport.model_defs.input_norm.InputNorm`), so its input is RGB in [0, 1] as for every model."""
    return {"mode": "center_crop", "color": "rgb", "scale": 1.0 / 255.0, "size": [int(size), int(size)],
            "interpolation": "linear", "model_normalises": {"scale": 1.0, "bgr": False, "mean": list(IMAGENET_MEAN),
                                                            "std": list(IMAGENET_STD)}}


class YOLOv5SegModel(YOLOv5Model):
    """A YOLOv5 v7.0 ``SegmentationModel``; see the module doc. ``output_names`` name the ONNX outputs
    as YOLOv5's own export does (``output0`` predictions, ``output1`` prototypes)."""

    family = "yolov5-seg"
    head_types = ("Segment",)
    output_names = ("output0", "output1")

    @property
    def num_masks(self) -> int:
        return self.model[self.detect_index].nm

    def onnx_dynamic_axes(self) -> dict:
        return {"output0": {0: "batch", 1: "anchors"}, "output1": {0: "batch", 2: "proto_h", 3: "proto_w"}}

    # forward = YOLOv5Model.forward: Segment.decode returns (pred, proto)


class YOLOv5ClsModel(YOLOv5Model):
    """A YOLOv5 v7.0 ``ClassificationModel``; see the module doc."""

    family = "yolov5-cls"
    head_types = ("Classify",)
    output_softmax = False

    @property
    def output_names(self) -> tuple:
        return ("probs",) if self.output_softmax else ("logits",)

    def onnx_dynamic_axes(self) -> dict:
        return {self.output_names[0]: {0: "batch"}}

    @staticmethod
    def _default_input_size(big: bool) -> list:
        return [224, 224]

    @staticmethod
    def _default_preprocess() -> dict:
        return classify_preprocess(224)

    def _pixel_anchors(self):
        return None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # YOLOv5's classify_transforms normalise with the ImageNet statistics; here the model does
        # (RGB [0, 1] in); a preprocess dict stored before that (mean / std keys) is brought up to date
        self.input_norm = InputNorm(IMAGENET_MEAN, IMAGENET_STD)
        old = {k: v for k, v in self.preprocess.items() if k not in ("mean", "std")}
        self.preprocess = {**old, "model_normalises": self.input_norm.spec()}

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, nc) of RGB [0, 1] ``x`` (ImageNet-normalised first)."""
        return self.model[self.detect_index].heads(self._detect_inputs(self.input_norm(x)))[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.raw(x)
        return logits.softmax(1) if self.output_softmax and not self.training else logits
