"""Native definitions of MMDetection detectors (no mmcv / mmdet needed): one-stage here, the R-CNN family
(``FasterRCNN``, ``CascadeRCNN``) in :mod:`.two_stage` (same ``"mmdet"`` family; ``from_native`` dispatches).

:class:`MMDetModel` is built from an MMDetection *model* config dict (the
``model = dict(...)`` of a config file: ``type``, ``backbone``, ``neck``,
``bbox_head``, ``test_cfg``); its ``state_dict()`` keys equal an MMDetection
checkpoint's ``state_dict`` keys exactly (``backbone.*``, ``neck.*``,
``bbox_head.*``, including BN ``num_batches_tracked``).

* ``raw(x)``: MMDetection's ``_forward`` output, a list of output groups
  (class logits, box regression, then centerness / objectness), each a list
  of per-level (B, C, H, W) tensors. ``x``: (B, 3, H, W) fed straight to the
  backbone (no data preprocessor; ``preprocess`` says how MMDetection
  normalises real images: see :func:`_preprocess`).
* ``forward(x)`` in eval: (B, N, 4 + 1 + nc) - xywh in input pixels, the
  score factor (sigmoid centerness for FCOS/ATSS, sigmoid objectness for
  YOLOX/YOLOv3, 1 for RetinaNet/GFL), class probabilities.
* ``predict(x)``: MMDetection's post-processing per ``test_cfg``: list of
  (n, 6) tensors x1, y1, x2, y2, score, label.
"""
from __future__ import annotations

from .one_stage import MMDetModel
from .registry import BACKBONES, DETECTORS, HEADS, NECKS

__all__ = ["MMDetModel", "BACKBONES", "NECKS", "HEADS", "DETECTORS"]
