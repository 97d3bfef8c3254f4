"""Feature maps of chosen layers as heat-map PNGs over the network input image.

The image goes through :class:`zooport.inference.api.Predictor`'s preprocessing (the model family's own); a
forward hook on each chosen layer (a row index of ``zooport analyze model``'s table) records its output; the
heat map is the mean absolute activation over channels, min-max scaled, OpenCV's JET colour map, resized to
the input and blended 50 % over it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UsageError


def feature_maps(model, image, layers, **predictor_kw) -> dict:
    """``{layer: (C, H, W) float32 ndarray}`` for the row indices ``layers``, plus ``"_input"``: the network
    input as a BGR uint8 image."""
    import torch

    from ..inference.api import Predictor, as_image
    from .flops import _groups

    pred = Predictor(model, **predictor_kw)
    img, _ = as_image(image, pred.decoder)
    x, _to_image = pred.preprocess(img)
    rows = {str(i): m for i, _t, m in _groups(pred.model)}
    want = [str(v) for v in layers]
    bad = [v for v in want if v not in rows]
    if bad:
        raise UsageError(f"no layer(s) {bad}; layers are: {', '.join(list(rows)[:60])}")
    got, hooks = {}, []
    for k in want:
        hooks.append(rows[k].register_forward_hook(lambda m, i, o, k=k: got.__setitem__(k, o)))
    try:
        with torch.inference_mode():
            pred.model.eval()(torch.from_numpy(x))
    finally:
        for h in hooks:
            h.remove()
    out = {}
    for k in want:
        o = got.get(k)
        o = o[0] if isinstance(o, (list, tuple)) else o
        if not hasattr(o, "dim") or o.dim() != 4:
            raise UsageError(f"layer {k} does not output a (B, C, H, W) feature map")
        out[k] = o[0].float().numpy()
    rgb = x[0, :3].transpose(1, 2, 0)
    rgb = (rgb - rgb.min()) / max(float(rgb.max() - rgb.min()), 1e-12)
    out["_input"] = np.ascontiguousarray((rgb[:, :, ::-1] * 255).round().astype(np.uint8))
    return out


def heatmap(fm: np.ndarray, base: np.ndarray) -> np.ndarray:
    """(C, H, W) feature map -> BGR uint8 heat map of ``base``'s size blended over it."""
    import cv2

    m = np.abs(fm).mean(0)
    m = (m - m.min()) / max(float(m.max() - m.min()), 1e-12)
    hm = cv2.applyColorMap((m * 255).astype(np.uint8), cv2.COLORMAP_JET)
    hm = cv2.resize(hm, (base.shape[1], base.shape[0]), interpolation=cv2.INTER_NEAREST)
    return cv2.addWeighted(base, 0.5, hm, 0.5, 0)


def write_feature_maps(maps: dict, out_dir) -> list:
    from ..inference.outputs import write_image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for k, fm in maps.items():
        if k.startswith("_"):
            continue
        files.append(out / f"layer_{k}.png")
        write_image(files[-1], heatmap(fm, maps["_input"]))
    return files
