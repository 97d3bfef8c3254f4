"""mAP verification on COCO and Pascal VOC (see :func:`zooport.eval.verify.verify`).

Light at import: names resolve lazily. ``voc_ap`` (numpy only) is usable on its own::

    from zooport.eval import voc_ap
    voc_ap(recall, precision, use_07_metric=True)
"""
from __future__ import annotations

import importlib

_API = {
    "voc_ap": "zooport.eval.voc:voc_ap",
    "score_voc": "zooport.eval.voc:score_voc",
    "verify": "zooport.eval.verify:verify",
    "VerifyResult": "zooport.eval.result:VerifyResult",
    "merge": "zooport.eval.verify:merge",
    "load_coco": "zooport.eval.data:load_coco",
    "load_voc": "zooport.eval.data:load_voc",
    "darknet_resize": "zooport.eval.preprocess:darknet_resize",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    try:
        module, attr = _API[name].split(":")
    except KeyError:
        raise AttributeError(f"module 'zooport.eval' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
