"""zooport: object-detection model zoos that interoperate.

Darknet cfg/weights, YOLOv5 checkpoints and MMDetection checkpoints as clean
native PyTorch models; round-trip converters; ONNX export; mAP verification;
a verified model zoo.

The public API is resolved lazily (PEP 562) from the explicit table below, so
``import zooport`` imports neither torch nor any optional dependency.
"""
from __future__ import annotations

import importlib

from .errors import (  # noqa: F401  (light, re-exported)
    CheckpointError,
    ConfigError,
    DatasetError,
    DownloadError,
    ExportError,
    IntegrityError,
    ManifestError,
    ParseError,
    UnsafeCheckpointError,
    UnsupportedError,
    UsageError,
    WeightsError,
    WriteError,
    ZooportError,
)

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "load": "zooport.loading:load_model",
    "load_darknet": "zooport.converters.darknet.load:load_darknet",
    "save_darknet_weights": "zooport.converters.darknet.load:save_darknet_weights",
    "save_darknet": "zooport.converters.yolov5.to_darknet:save_darknet",
    "load_yolov5": "zooport.converters.yolov5.load:load_yolov5",
    "create_yolov5": "zooport.model_defs.yolov5.create:create_yolov5",
    "load_ultralytics": "zooport.converters.ultralytics.load:load_ultralytics",
    "create_ultralytics": "zooport.model_defs.ultralytics.build:create_ultralytics",
    "load_mmdet": "zooport.converters.mmdet.load:load_mmdet",
    "load_native": "zooport.converters.native:load_native",
    "save_native": "zooport.converters.native:save_native",
    "load_pretrained": "zooport.zoo.api:load_pretrained",
    "list_models": "zooport.zoo.api:list_models",
    "export_onnx": "zooport.export.onnx:export_onnx",
    "verify": "zooport.eval.verify:verify",
    "non_max_suppression": "zooport.postprocess:non_max_suppression",
    "predict": "zooport.inference.api:predict",
    "draw": "zooport.inference.draw:draw",
    "Detections": "zooport.inference.detections:Detections",
    "non_max_suppression_seg": "zooport.postprocess.yolov5_seg:non_max_suppression_seg",
    "predict_segments": "zooport.postprocess.yolov5_seg:predict_segments",
    "verify_segmentation": "zooport.eval.segm:verify_segmentation",
    "verify_classifier": "zooport.eval.classify:verify_classifier",
}

__all__ = sorted(_API) + ["ZooportError", "__version__"]


def __getattr__(name: str):
    try:
        target = _API[name]
    except KeyError:
        raise AttributeError(f"module 'zooport' has no attribute {name!r}") from None
    module, attr = target.split(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
