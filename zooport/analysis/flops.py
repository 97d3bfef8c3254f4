"""Per-layer parameters and FLOPs of a detector, in three documented conventions.

* ``zooport`` (default for YOLOv5/MMDetection models): FLOPs = 2 x multiply-adds of convolutions
  (``2 * out_elements * (c_in / groups) * kh * kw``), transposed convolutions
  (``2 * in_elements * (c_out / groups) * kh * kw``) and linear layers (``2 * out_elements * in_features``),
  measured at the requested input size. Batch norm, activations, pooling, resampling and additions count 0
  (they fold into the convolutions or are memory-bound).
* ``darknet`` (default for Darknet models): Darknet's own per-layer ``bflops`` from the layer plan, the
  numbers its layer table prints: convolutional ``2 * filters * size^2 * (c / groups) * out_h * out_w``;
  (/ 32 for ``xnor=1``); maxpool and local_avgpool ``size^2 * c * out_h * out_w``; shortcut ``out_h * out_w * out_c * n_from``;
  every other layer 0. At the cfg's own size these equal Darknet's figures exactly.
* ``yolov5``: what YOLOv5's ``model_info`` reports through thop 0.1.1: a convolution counts
  ``out_elements * (c_in / groups) * kh * kw`` (bias not counted), an affine batch norm ``4 * in_elements``
  (thop's ``calculate_norm`` gives 2 per element and doubles it for an affine norm; this reproduces
  YOLOv5's figures exactly, where "2 per element" alone falls 1 % short),
  a nearest ``Upsample`` its output elements, a linear layer ``out_elements * in_features``, everything else
  0; the sum is doubled, measured at ``s = max(max stride, 32)`` pixels square and scaled by
  ``(imgsz / s)^2``.

``params`` counts every parameter (``numel`` of ``model.parameters()``), as YOLOv5 does.
"""
from __future__ import annotations

import math

from ..errors import UsageError

CONVENTIONS = ("zooport", "darknet", "yolov5")


def _shape(o):
    if hasattr(o, "shape"):
        return list(o.shape[1:])
    if isinstance(o, (list, tuple)):
        return [_shape(v) for v in o]
    return None


def _leaf_flops(m, inp, out, convention: str) -> float:
    """FLOPs of one leaf module call (``inp``: its first input tensor, ``out`` its output)."""
    from torch import nn

    if not hasattr(out, "numel"):
        return 0.0
    if isinstance(m, nn.Conv2d):
        kk = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        return float(out.numel() * kk) * (2 if convention == "zooport" else 1)
    if isinstance(m, nn.ConvTranspose2d):
        kk = m.kernel_size[0] * m.kernel_size[1] * (m.out_channels // m.groups)
        if convention == "zooport":
            return 4.0 * inp.numel() * kk
        return float(out.numel() * m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups))
    if isinstance(m, nn.Linear):
        return float(out.numel() * m.in_features) * (2 if convention == "zooport" else 1)
    if convention == "yolov5":
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            return 4.0 * inp.numel()
        if isinstance(m, nn.Upsample) and m.mode == "nearest":
            return float(out.numel())
    return 0.0


def _groups(model):
    """The rows of the table: (index, type name, module) in execution order."""
    fam = getattr(model, "family", "")
    if fam == "yolov5" or (hasattr(model, "model") and hasattr(model, "froms")):
        return [(i, type(m).__name__, m) for i, m in enumerate(model.model)]
    if hasattr(model, "plan") and hasattr(model, "layers"):
        return [(lp.index, lp.type, model.layers[lp.index]) for lp in model.plan]
    rows = []
    for name, child in model.named_children():
        sub = list(child.named_children())
        if sub and name in ("backbone", "neck", "bbox_head"):
            rows.extend((f"{name}.{n}", type(c).__name__, c) for n, c in sub)
        else:
            rows.append((name, type(child).__name__, child))
    return rows


def darknet_layer_flops(lp) -> float:
    """Darknet's ``bflops`` x 1e9 of one :class:`~zooport.parsers.darknet.plan.LayerPlan` (module doc)."""
    c, _h, _w = lp.in_shape
    oc, oh, ow = lp.out_shape
    a = lp.attrs
    if lp.type == "convolutional":
        f = _darknet_macs2(lp)
        return f / 32 if a.get("xnor") else f  # Darknet counts a binary (xnor) convolution as 1/32
    if lp.type in ("maxpool", "local_avgpool"):
        size = int(a.get("size", a.get("stride", 1)))
        return float(size * size * c * oh * ow)  # input channels, also with maxpool_depth
    if lp.type == "shortcut":
        return float(oh * ow * oc * max(1, len(lp.inputs) - 1))
    return 0.0


def _darknet_macs2(lp) -> float:
    """2 x multiply-adds of a Darknet layer (the ``zooport`` convention): convolutional (binary ones too)
    and connected layers; everything else 0."""
    if lp.type == "convolutional":
        c, oc, (_, oh, ow) = lp.in_shape[0], lp.out_shape[0], lp.out_shape
        size, groups = int(lp.attrs.get("size", 1)), int(lp.attrs.get("groups", 1) or 1)
        return 2.0 * oc * size * size * (c // groups) * oh * ow
    if lp.type == "connected":
        return 2.0 * math.prod(lp.in_shape) * math.prod(lp.out_shape)
    return 0.0


def _params(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def analyze_layers(model, imgsz=None, convention: str | None = None) -> dict:
    """``{"params", "flops", "convention", "imgsz", "layers": [{"index", "type", "shape", "params", "flops"}]}``.

    ``imgsz``: int or (h, w) input size (default the model's ``input_size``); ``convention`` as in the module
    doc (default ``darknet`` for Darknet models, else ``zooport``). One forward pass on zeros (batch 1).
    """
    import torch

    is_dk = hasattr(model, "plan") and hasattr(model, "layers")
    convention = convention or ("darknet" if is_dk else "zooport")
    if convention not in CONVENTIONS:
        raise UsageError(f"flops convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    hw = [int(v) for v in (getattr(model, "input_size", None) or [640, 640])]
    if imgsz is not None:
        hw = [int(imgsz), int(imgsz)] if isinstance(imgsz, int) else [int(v) for v in imgsz][:2]
    if is_dk and convention != "darknet":  # Darknet layers compute functionally: counted from the plan
        if convention == "yolov5":
            raise UsageError("the yolov5 FLOPs convention is for YOLOv5 models; Darknet models: darknet or zooport")
        if hw != [int(v) for v in model.input_size]:
            raise UsageError(f"Darknet models are analysed at the cfg's own size {model.input_size}")
        layers = [{"index": lp.index, "type": lp.type, "shape": list(lp.out_shape),
                   "params": int(sum(math.prod(s) for _n, s in lp.params)), "flops": _darknet_macs2(lp)}
                  for lp in model.plan]
        return {"params": _params(model), "flops": sum(r["flops"] for r in layers), "convention": convention,
                "imgsz": hw, "layers": layers}
    if convention == "darknet":
        if not is_dk:
            raise UsageError("the darknet FLOPs convention needs a Darknet model (it reads the layer plan)")
        if hw != [int(v) for v in model.input_size]:
            raise UsageError(f"darknet FLOPs are computed at the cfg's own size {model.input_size}; "
                             "resize the network in the cfg to change it")
        layers = [{"index": lp.index, "type": lp.type, "shape": list(lp.out_shape),
                   "params": int(sum(math.prod(s) for _n, s in lp.params)), "flops": darknet_layer_flops(lp)}
                  for lp in model.plan]
        return {"params": _params(model), "flops": sum(r["flops"] for r in layers), "convention": convention,
                "imgsz": hw, "layers": layers}
    run_hw, scale = hw, 1.0
    if convention == "yolov5":
        s = max(int(max(getattr(model, "stride", None) or [32])), 32)
        run_hw, scale = [s, s], (hw[0] / s) * (hw[1] / s)
    groups = _groups(model)
    owner, per, shapes, hooks = {}, {}, {}, []
    for idx, _t, g in groups:
        for m in g.modules():
            owner.setdefault(m, idx)
    for m, idx in owner.items():
        if not list(m.children()):
            hooks.append(m.register_forward_hook(
                lambda mod, i, o, idx=idx: per.__setitem__(
                    idx, per.get(idx, 0.0) + _leaf_flops(mod, i[0] if i else None, o, convention))))
    for idx, _t, g in groups:
        hooks.append(g.register_forward_hook(lambda mod, i, o, idx=idx: shapes.__setitem__(idx, _shape(o))))
    try:
        p = next(model.parameters())
        with torch.no_grad():
            was = model.training
            model.eval()
            model(torch.zeros(1, 3, *run_hw, dtype=p.dtype, device=p.device))
            model.train(was)
    finally:
        for h in hooks:
            h.remove()
    mult = 2.0 * scale if convention == "yolov5" else 1.0
    layers = [{"index": idx, "type": t, "shape": shapes.get(idx), "params": _params(g),
               "flops": per.get(idx, 0.0) * mult} for idx, t, g in groups]
    return {"params": _params(model), "flops": sum(r["flops"] for r in layers), "convention": convention,
            "imgsz": hw, "layers": layers}
