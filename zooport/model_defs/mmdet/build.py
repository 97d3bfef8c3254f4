"""The ``mmdet`` family's one entry to its two model classes: a config's detector ``type`` picks the one-stage
:class:`~.one_stage.MMDetModel` or the R-CNN :class:`~.two_stage.TwoStageDetector`."""
from __future__ import annotations

from .one_stage import MMDetModel
from .registry import TWO_STAGE
from .two_stage import TwoStageDetector


def model_class(model_cfg: dict) -> type:
    """The native class for an MMDetection ``model`` config dict."""
    return TwoStageDetector if (model_cfg or {}).get("type") in TWO_STAGE else MMDetModel


def from_native(arch: dict, meta: dict):
    """A model from a native checkpoint's ``arch`` (``{"model": cfg}``) and ``meta``."""
    return model_class(arch.get("model") or {}).from_native(arch, meta)
