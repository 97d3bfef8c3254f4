"""See what a model does on pictures and videos: ``predict`` -> :class:`Detections`, ``draw``.

Light at import (names resolve lazily); torch and cv2 load on first use.
"""
from __future__ import annotations

import importlib

_API = {
    "predict": "zooport.predict.api:predict",
    "Predictor": "zooport.predict.api:Predictor",
    "Detections": "zooport.predict.detections:Detections",
    "draw": "zooport.predict.draw:draw",
    "class_color": "zooport.predict.draw:class_color",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    try:
        module, attr = _API[name].split(":")
    except KeyError:
        raise AttributeError(f"module 'zooport.predict' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
