"""YOLOv5 -> Darknet export: ``.cfg`` + ``.weights`` + ``.names`` that Darknet and OpenCV 4 run.

* :func:`save_darknet` writes the three files for any native YOLOv5 model (structure:
  :mod:`zooport.converters.yolov5.darknet_lower`); :func:`yolov5_to_darknet` returns the cfg text and
  the Darknet state dict without writing.
* :func:`darknet_to_yolov5_state_dict` maps an exported network's Darknet tensors back to the YOLOv5
  state dict of the same architecture (the inverse of the export).

Tensor mapping per ``[convolutional]`` (Darknet ``.weights`` order: biases, scales, rolling mean,
rolling variance, weights; keys ``layers.{i}.{bn.bias, bn.weight, bn.running_mean, bn.running_var,
conv.weight}`` or ``layers.{i}.{conv.bias, conv.weight}``):

* BN beta and gamma copied; mean, variance and the conv weight by :func:`~zooport.converters.yolov5.bn_fold.fold_bn`:
  the conv weight and mean times ``k = 1024``, the variance a float32 ``var'' ~ k**2 (var + eps) - 1e-5``
  for which ``var'' + 1e-5`` rounds to exactly ``k**2`` times the float32 ``var + eps`` YOLOv5 computes
  (eps: the BatchNorm2d's own, 1e-3; 1e-4 in v1.0; Darknet's is a hard-coded 1e-5). Batch norm is
  scale-invariant, so Darknet and torch compute bit for bit what YOLOv5 computes, and a stored variance
  >= 1048 makes any epsilon <= 6e-5 (OpenCV 4's 1e-6 included) round away: one file for every consumer;
* conv weight (O, I/g, kh, kw) copied, with Focus's input-channel permutation and non-square kernels
  embedded centred in a square one (zeros elsewhere); a conv without bias and BN gets zero biases.

The inverse undoes each step: copies, the inverse permutation, the kernel crop (the cropped-away
entries must be zero) and :func:`~zooport.converters.yolov5.bn_fold.unfold_bn` (exact divisions by ``k``; the
variance the float32 whose sum with ``eps`` rounds to the same denominator): equal to the original within
float32 rounding of the fold (<= 1e-6 relative), every other tensor bit-exact. BatchNorm's
``num_batches_tracked`` (a training counter Darknet does not store) comes back as 0.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from ..._io import atomic_path
from ...errors import CheckpointError, UsageError, WeightsError
from ...model_defs.darknet.layers import BN_EPS as DARKNET_BN_EPS  # Darknet's hard-coded 1e-5
from ..strict import check_state_dict
from .bn_fold import BN_SCALE, check_scale, fold_bn, unfold_bn
from .darknet_lower import lower, render_cfg

__all__ = ["save_darknet", "yolov5_to_darknet", "darknet_to_yolov5_state_dict", "default_outputs"]


def _input_hw(model, input_size) -> tuple[int, int]:
    size = input_size if input_size is not None else model.input_size
    if isinstance(size, int):
        size = (size, size)
    h, w = (int(v) for v in size)
    s = max(int(v) for v in model.stride)
    if h <= 0 or w <= 0 or h % s or w % s:
        raise UsageError(f"input size {h}x{w} (height x width): expected positive multiples of the model's "
                         f"largest stride {s}")
    return h, w


def _check_model(model) -> None:
    from ...model_defs.yolov5.model import YOLOv5Model

    if not isinstance(model, YOLOv5Model):
        raise UsageError(f"save_darknet exports native YOLOv5 models (zooport.load_yolov5 / create_yolov5), "
                         f"got {type(model).__name__}")


def yolov5_to_darknet(model, input_size=None, comment: str = "", *, bn_eps: float = DARKNET_BN_EPS,
                      bn_scale: float = BN_SCALE) -> tuple[str, dict, object]:
    """``(cfg_text, darknet_state_dict, lowering)`` of a YOLOv5Model; nothing is written.

    ``input_size``: (height, width) or an int for ``[net]`` (default ``model.input_size``).
    ``bn_eps``, ``bn_scale``: see :func:`save_darknet`.
    ``darknet_state_dict``: float32 tensors keyed ``layers.{i}.{name}`` as the cfg's plan names them.
    """
    _check_model(model)
    h, w = _input_hw(model, input_size)
    lw = lower(model)
    cfg_text = render_cfg(lw, width=w, height=h, comment=comment)
    sd = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    return cfg_text, _gather(lw, sd, bn_eps, check_scale(bn_scale)), lw


def _gather(lw, sd: dict, bn_eps: float, k: float) -> dict:
    out = {}
    for i, b in lw.convs.items():
        wt = sd[b.weight].float()
        if b.perm is not None:
            wt = wt[:, torch.tensor(b.perm)]
        kh, kw = b.kernel
        if (kh, kw) != (b.size, b.size):
            full = wt.new_zeros(wt.shape[0], wt.shape[1], b.size, b.size)
            top, left = (b.size - kh) // 2, (b.size - kw) // 2
            full[:, :, top:top + kh, left:left + kw] = wt
            wt = full
        p = f"layers.{i}."
        if b.bn is not None:
            lo, hi = b.bn_slice
            out[p + "bn.bias"] = sd[b.bn + ".bias"].float()[lo:hi].clone()
            out[p + "bn.weight"] = sd[b.bn + ".weight"].float()[lo:hi].clone()
            wt, out[p + "bn.running_mean"], out[p + "bn.running_var"] = fold_bn(
                wt, sd[b.bn + ".running_mean"][lo:hi], sd[b.bn + ".running_var"][lo:hi], b.eps, bn_eps, k)
        else:
            out[p + "conv.bias"] = sd[b.bias].float().clone() if b.bias else torch.zeros(b.filters)
        out[p + "conv.weight"] = wt.contiguous()
    return out


def darknet_to_yolov5_state_dict(model, darknet, *, bn_eps: float = DARKNET_BN_EPS,
                                 bn_scale: float = BN_SCALE) -> dict:
    """The YOLOv5 state dict (native = YOLOv5 keys) held by an exported Darknet network.

    ``model``: a YOLOv5Model of the exported architecture (only its structure is used: one built with
    :func:`~zooport.model_defs.yolov5.create.build_uninitialised` from ``native_arch()`` will do);
    ``darknet``: the loaded :class:`~zooport.model_defs.darknet.model.DarknetModel` or its state dict
    (then the anchors are ``model``'s own, which must hold values). Anchors come from the ``[yolo]``
    layers (pixels / stride) when ``darknet`` is a model. ``bn_eps``, ``bn_scale``: those of the export.
    Raises CheckpointError when the Darknet network does not have the structure of ``model``'s export.
    """
    _check_model(model)
    k = check_scale(bn_scale)
    lw = lower(model)
    dsd = darknet if isinstance(darknet, dict) else darknet.state_dict()
    own = model.state_dict()
    want = {f"layers.{i}.{n}" for i, b in lw.convs.items()
            for n in (("bn.bias", "bn.weight", "bn.running_mean", "bn.running_var") if b.bn else ("conv.bias",))
            + ("conv.weight",)}
    check_state_dict(dict.fromkeys(sorted(want)), dsd, "the Darknet network",
                     subject="this YOLOv5 architecture's Darknet export")
    out: dict = {}
    filled: dict = {}

    def put(key, lo, hi, value):
        if key not in out:
            out[key] = torch.empty(own[key].shape, dtype=torch.float32)
            filled[key] = torch.zeros(own[key].shape[0], dtype=torch.bool)
        out[key][lo:hi] = value
        filled[key][lo:hi] = True

    for i, b in lw.convs.items():
        p = f"layers.{i}."
        wt = dsd[p + "conv.weight"].detach().float()
        kh, kw = b.kernel
        if (kh, kw) != (b.size, b.size):
            top, left = (b.size - kh) // 2, (b.size - kw) // 2
            inner = wt[:, :, top:top + kh, left:left + kw]
            rest = wt.clone()
            rest[:, :, top:top + kh, left:left + kw] = 0
            if bool(rest.any()):
                raise CheckpointError(f"Darknet layer {i}: the {b.size}x{b.size} kernel has non-zero entries "
                                      f"outside the embedded {kh}x{kw} kernel of {b.weight}")
            wt = inner
        if b.perm is not None:
            inv = torch.empty(len(b.perm), dtype=torch.long)
            inv[torch.tensor(b.perm)] = torch.arange(len(b.perm))
            wt = wt[:, inv]
        if b.bn is not None:
            lo, hi = b.bn_slice
            wt, mean, var = unfold_bn(wt, dsd[p + "bn.running_mean"], dsd[p + "bn.running_var"], bn_eps, b.eps, k)
            put(b.bn + ".bias", lo, hi, dsd[p + "bn.bias"].float())
            put(b.bn + ".weight", lo, hi, dsd[p + "bn.weight"].float())
            put(b.bn + ".running_mean", lo, hi, mean)
            put(b.bn + ".running_var", lo, hi, var)
            out[b.bn + ".num_batches_tracked"] = torch.zeros((), dtype=torch.long)
        elif b.bias is not None:
            put(b.bias, 0, b.filters, dsd[p + "conv.bias"].float())
        elif bool((dsd[p + "conv.bias"] != 0).any()):
            raise CheckpointError(f"Darknet layer {i}: non-zero biases, but {b.weight}'s conv has no bias")
        put(b.weight, 0, wt.shape[0], wt)
    for h in lw.heads:
        if isinstance(darknet, dict):
            anchors = own[h.anchors][h.level].float().cpu() if not own[h.anchors].is_meta else None
            if anchors is None:
                raise UsageError("darknet_to_yolov5_state_dict(state_dict): anchors live in the cfg; pass the "
                                 "loaded DarknetModel")
        else:
            anchors = torch.tensor(darknet.layers[h.layer].anchors, dtype=torch.float64) / h.stride
        put(h.anchors, h.level, h.level + 1, anchors.float().unsqueeze(0))
    not_filled = [k for k, f in filled.items() if not bool(f.all())]
    missing = [k for k in own if k not in out]
    if not_filled or missing:
        raise CheckpointError(f"export mapping does not cover {(not_filled + missing)[:5]}")
    return out


def default_outputs(out) -> tuple[Path, Path, Path]:
    """``OUT`` (a stem, or a path ending in .cfg/.weights/.names) -> (OUT.cfg, OUT.weights, OUT.names)."""
    p = Path(out)
    if p.suffix in (".cfg", ".weights", ".names"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".cfg"), p.with_name(p.name + ".weights"), p.with_name(p.name + ".names")


def _names_text(names) -> str:
    for i, n in enumerate(names):
        n = str(n)
        if not n or n != n.strip() or "\n" in n or "\r" in n:
            raise UsageError(f"class name {i} {n!r} cannot be written to a .names file (one name per line, no "
                             f"leading/trailing blanks)")
    return "".join(f"{n}\n" for n in names)


def save_darknet(model, cfg_path, weights_path, names_path=None, *, input_size=None,
                 bn_eps: float = DARKNET_BN_EPS, bn_scale: float = BN_SCALE) -> dict:
    """Write ``model`` (a native YOLOv5 model) as a Darknet cfg, ``.weights`` (header 0.2.5) and names.

    ``names_path``: one class name per line; default ``cfg_path`` with suffix ``.names``, ``False`` for none.
    ``input_size``: (height, width) or int for ``[net]`` (default ``model.input_size``). ``bn_eps``: the
    batch-norm epsilon the rolling variances are folded for exactly (Darknet's 1e-5, default).
    ``bn_scale``: the power of two ``k`` that conv weights and rolling means are multiplied by (and the
    variances by ``k**2``; see :mod:`zooport.converters.yolov5.bn_fold`): with the default 1024 the stored variances
    are so large that any consumer's epsilon <= 6e-5 rounds away, so OpenCV 4's ``readNetFromDarknet``
    (eps 1e-6) runs the same files exactly; ``bn_scale=1`` writes YOLOv5's own magnitudes, which only a
    consumer with eps ``bn_eps`` runs exactly (with Darknet's fold, OpenCV 4 is then 5e-3 off on yolov5n's
    head inputs: YOLOv5's running variances are small). All files are
    written to temporary files, the cfg re-parsed with zooport's Darknet parser, the weights file checked
    against the exact size that cfg needs (``weights_bytes``) and the names read back; only then are they
    renamed into place, so an error leaves none of them. Returns {"cfg", "weights", "names", "layers",
    "weights_bytes"}.
    """
    from ...parsers.names import read_names
    from ...parsers.darknet.cfg import parse_cfg
    from ...parsers.darknet.plan import build_plan, weights_bytes
    from ..darknet.weights import DEFAULT_HEADER, write_weights

    if names_path is None:          # Darknet keeps class names in a file of their own: write it beside the cfg
        names_path = Path(cfg_path).with_suffix(".names")
    write_names = names_path is not False
    paths = [Path(cfg_path), Path(weights_path)] + ([Path(names_path)] if write_names else [])
    if len({os.path.abspath(p) for p in paths}) != len(paths):
        raise UsageError(f"save_darknet: output paths must differ, got {[str(p) for p in paths]}")
    src = (getattr(model, "source", None) or {})
    comment = ("YOLOv5 -> Darknet by zooport (new_coords=1 [yolo] heads, letterbox input)"
               + (f"\nsource: {src.get('file')}" if src.get("file") else "")
               + f"\nrolling variances folded for batch-norm eps {bn_eps:g}"
               + (" (Darknet's)" if bn_eps == DARKNET_BN_EPS else " (not Darknet's 1e-05)")
               + (f"; conv weights and rolling means x{bn_scale:g}, variances x{bn_scale * bn_scale:g} (exact:"
                  f" batch norm is scale-invariant; any eps <= 6e-5 then rounds away)" if bn_scale != 1 else ""))
    cfg_text, sd, lw = yolov5_to_darknet(model, input_size, comment=comment, bn_eps=bn_eps, bn_scale=bn_scale)
    names_text = _names_text(model.names) if write_names else None
    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(atomic_path(p)) for p in paths]
        tmps[0].write_text(cfg_text, encoding="utf-8")
        cfg = parse_cfg(tmps[0])
        plan = build_plan(cfg)
        write_weights(tmps[1], plan, sd, dict(DEFAULT_HEADER))
        size, need = tmps[1].stat().st_size, weights_bytes(plan)
        if size != need:
            raise WeightsError(f"{weights_path}: wrote {size} bytes, the cfg needs {need} (internal error)")
        heads = [lp for lp in plan if lp.is_head]
        if len(heads) != len(lw.heads):
            raise WeightsError(f"{cfg_path}: {len(heads)} heads parsed, {len(lw.heads)} written (internal error)")
        if names_text is not None:
            tmps[2].write_text(names_text, encoding="utf-8")
            if read_names(tmps[2]) != [str(n) for n in model.names]:
                raise UsageError(f"{names_path}: class names do not read back unchanged")
    return {"cfg": str(paths[0]), "weights": str(paths[1]), "names": str(paths[2]) if write_names else None,
            "layers": len(plan), "weights_bytes": need}
