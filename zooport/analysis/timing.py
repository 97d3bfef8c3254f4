"""Inference time of a model per backend: torch eager, torch with Conv+BN fused, onnxruntime.

Each backend runs ``warmup`` untimed passes, then ``repeats`` timed passes on the same (1, 3, H, W) input
(``time.perf_counter`` around the call); reported: median, min, max and the interquartile range in ms.
The onnxruntime backend is the verifier's (:func:`zooport.eval.runner.make_backend`): a dynamic-shape export.
"""
from __future__ import annotations

import copy
import time

import numpy as np

from ..errors import UsageError

BACKENDS = ("eager", "fused", "onnxruntime")


def _stats(ms) -> dict:
    a = np.asarray(ms, dtype=np.float64)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median_ms": float(med), "min_ms": float(a.min()), "max_ms": float(a.max()), "iqr_ms": float(q3 - q1),
            "repeats": int(len(a))}


def time_backends(model, imgsz=(640, 640), backends=BACKENDS, warmup: int = 2, repeats: int = 10) -> dict:
    """``{backend: {"median_ms", "min_ms", "max_ms", "iqr_ms", "repeats"}}`` (a backend that cannot run,
    e.g. a family without ``fuse``, maps to ``{"error": message}``)."""
    import torch

    if warmup < 0 or repeats < 1:
        raise UsageError(f"need warmup >= 0 and repeats >= 1, got {warmup}, {repeats}")
    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        raise UsageError(f"unknown timing backend(s) {bad}; choose from {', '.join(BACKENDS)}")
    h, w = (int(imgsz), int(imgsz)) if np.isscalar(imgsz) else (int(imgsz[0]), int(imgsz[1]))
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    out = {}
    for b in backends:
        try:
            if b == "onnxruntime":
                from ..eval.runner import make_backend

                fn = make_backend(model, "onnxruntime")
                call = lambda: fn(x)  # noqa: E731
            else:
                m = model.eval() if b == "eager" else copy.deepcopy(model).fuse().eval()
                xt = torch.from_numpy(x)

                def call(m=m, xt=xt):
                    with torch.inference_mode():
                        return m(xt)
        except NotImplementedError as e:
            out[b] = {"error": f"not available for this model ({e or 'no fuse'})"}
            continue
        for _ in range(warmup):
            call()
        ms = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            call()
            ms.append(1e3 * (time.perf_counter() - t0))
        out[b] = _stats(ms)
    return out
