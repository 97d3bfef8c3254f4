"""The YOLOv3 bridge: MMDetection's ``YOLOV3`` (Darknet-53 + YOLOV3Neck + YOLOV3Head) <-> Darknet ``yolov3.cfg``.

Both hold the same 75 convolutions with the same tensor layouts (OIHW
weights, BN per channel); only the names and the order differ:

* Darknet order (the ``.weights`` file): backbone convs, then per scale s:
  (``neck.conv{s}`` for s > 0), ``neck.detect{s+1}.conv1..5``,
  ``bbox_head.convs_bridge.{s}``, ``bbox_head.convs_pred.{s}``;
* MMDetection order (state-dict registration): backbone, neck
  (detect1, conv1, detect2, conv2, detect3), all bridges, all preds.

Darknet BN conv ``layers.i.{bn.bias, bn.weight, bn.running_mean, bn.running_var, conv.weight}``
<-> MMDetection ``P.bn.bias, P.bn.weight, P.bn.running_mean, P.bn.running_var, P.conv.weight``;
the linear output convs ``layers.i.{conv.bias, conv.weight}`` <-> ``P.bias, P.weight``.
MMDetection's BN also has ``num_batches_tracked`` (int64 scalar, written as 0).
Values are copied, never recomputed, so Darknet -> MMDetection -> Darknet is byte-identical.
"""
from __future__ import annotations

import copy

from ...errors import CheckpointError, ConfigError

BLOCKS53 = (1, 2, 8, 8, 4)
_BN = ("bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")  # MMDetection's order inside a BN

# MMDetection's YOLOv3 (Darknet-53) model config for COCO at 608, test_cfg as in mmdet's yolov3_d53 configs.
YOLOV3_CONFIG = {
    "type": "YOLOV3",
    "data_preprocessor": {"type": "DetDataPreprocessor", "mean": [0, 0, 0], "std": [255.0, 255.0, 255.0],
                          "bgr_to_rgb": True, "pad_size_divisor": 32},
    "backbone": {"type": "Darknet", "depth": 53, "out_indices": [3, 4, 5]},
    "neck": {"type": "YOLOV3Neck", "num_scales": 3, "in_channels": [1024, 512, 256], "out_channels": [512, 256, 128]},
    "bbox_head": {
        "type": "YOLOV3Head", "num_classes": 80, "in_channels": [512, 256, 128], "out_channels": [1024, 512, 256],
        "anchor_generator": {"type": "YOLOAnchorGenerator",
                             "base_sizes": [[[116, 90], [156, 198], [373, 326]], [[30, 61], [62, 45], [59, 119]],
                                            [[10, 13], [16, 30], [33, 23]]],
                             "strides": [32, 16, 8]},
        "bbox_coder": {"type": "YOLOBBoxCoder"}, "featmap_strides": [32, 16, 8]},
    "test_cfg": {"nms_pre": 1000, "min_bbox_size": 0, "score_thr": 0.05, "conf_thr": 0.005,
                 "nms": {"type": "nms", "iou_threshold": 0.45}, "max_per_img": 100},
}


def _check_cfg(model_cfg: dict) -> int:
    """Validate that ``model_cfg`` is the YOLOv3 layout this bridge maps; returns num_scales."""
    if model_cfg.get("type") != "YOLOV3":
        raise ConfigError(f"Darknet bridge: model type {model_cfg.get('type')!r} is not YOLOV3")
    bb = model_cfg.get("backbone", {})
    if bb.get("type") != "Darknet" or bb.get("depth", 53) != 53:
        raise ConfigError("Darknet bridge: backbone must be Darknet depth 53")
    return int(model_cfg.get("neck", {}).get("num_scales", 3))


def conv_prefixes(model_cfg: dict | None = None, order: str = "darknet") -> list[tuple[str, bool]]:
    """(MMDetection module prefix, has_bn) of every conv, in Darknet file order or MMDetection order."""
    model_cfg = model_cfg or YOLOV3_CONFIG
    ns = _check_cfg(model_cfg)
    bb = [("backbone.conv1", True)]
    for i, n in enumerate(BLOCKS53):
        bb.append((f"backbone.conv_res_block{i + 1}.conv", True))
        for k in range(n):
            bb += [(f"backbone.conv_res_block{i + 1}.res{k}.conv1", True),
                   (f"backbone.conv_res_block{i + 1}.res{k}.conv2", True)]

    def detect(s):
        return [(f"neck.detect{s + 1}.conv{j}", True) for j in range(1, 6)]

    if order == "darknet":
        out = list(bb)
        for s in range(ns):
            if s > 0:
                out.append((f"neck.conv{s}", True))
            out += detect(s) + [(f"bbox_head.convs_bridge.{s}", True), (f"bbox_head.convs_pred.{s}", False)]
        return out
    neck = []
    for s in range(ns):
        neck += ([(f"neck.conv{s}", True)] if s > 0 else []) + detect(s)
    head = [(f"bbox_head.convs_bridge.{s}", True) for s in range(ns)]
    head += [(f"bbox_head.convs_pred.{s}", False) for s in range(ns)]
    return bb + neck + head


def _pairs(plan, model_cfg):
    """[(darknet layer index, mmdet prefix, has_bn)] pairing the cfg's convolutional layers in order."""
    convs = [lp for lp in plan if lp.params]
    prefixes = conv_prefixes(model_cfg, "darknet")
    if any(lp.type != "convolutional" for lp in convs) or len(convs) != len(prefixes):
        raise ConfigError(f"Darknet bridge: the cfg has {len(convs)} layers with weights "
                          f"({sorted({lp.type for lp in convs})}); MMDetection's YOLOv3 has {len(prefixes)} convolutions")
    out = []
    for lp, (prefix, has_bn) in zip(convs, prefixes):
        names = [n for n, _ in lp.params]
        if ("bn.weight" in names) != has_bn:
            raise ConfigError(f"Darknet bridge: layer {lp.index} ({'with' if not has_bn else 'without'} batch_normalize) "
                              f"cannot map onto {prefix} ({'BN' if has_bn else 'bias'} expected)")
        out.append((lp, prefix, has_bn))
    return out


def _conv_keys(prefix: str, has_bn: bool) -> list[tuple[str, str]]:
    """(Darknet param name, MMDetection key) of one conv, in Darknet ``.weights`` order: THE mapping."""
    if has_bn:
        return [(n, f"{prefix}.{n}") for n in ("bn.bias", "bn.weight", "bn.running_mean", "bn.running_var",
                                               "conv.weight")]
    return [("conv.bias", f"{prefix}.bias"), ("conv.weight", f"{prefix}.weight")]


def _name_map(prefix: str, has_bn: bool) -> dict[str, str]:
    """darknet param name -> mmdet key for one conv."""
    return dict(_conv_keys(prefix, has_bn))


def _get(sd, key, shape, where):
    if key not in sd:
        raise CheckpointError(f"{where}: missing key {key!r}")
    t = sd[key]
    if tuple(t.shape) != tuple(shape):
        raise CheckpointError(f"{where}: key {key!r} has shape {tuple(t.shape)}, expected {tuple(shape)}")
    return t


def darknet_to_mmdet_state_dict(darknet_sd: dict, plan, model_cfg: dict | None = None,
                                where: str = "darknet state dict") -> dict:
    """Darknet native state dict (``layers.i.*``) -> MMDetection YOLOV3 state dict in MMDetection's key order."""
    import torch

    from ..strict import check_state_dict

    check_state_dict({f"layers.{lp.index}.{n}": shape for lp in plan for n, shape in lp.params}, darknet_sd,
                     where, subject="the Darknet cfg")
    by_prefix = {}
    for lp, prefix, has_bn in _pairs(plan, model_cfg):
        m = _name_map(prefix, has_bn)
        for n, _shape in lp.params:
            by_prefix[m[n]] = darknet_sd[f"layers.{lp.index}.{n}"]
    out = {}
    for prefix, has_bn in conv_prefixes(model_cfg, "mmdet"):
        if has_bn:
            out[f"{prefix}.conv.weight"] = by_prefix[f"{prefix}.conv.weight"]
            for n in _BN:
                out[f"{prefix}.{n}"] = by_prefix[f"{prefix}.{n}"]
            out[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.int64)
        else:
            out[f"{prefix}.weight"] = by_prefix[f"{prefix}.weight"]
            out[f"{prefix}.bias"] = by_prefix[f"{prefix}.bias"]
    return out


def mmdet_to_darknet_state_dict(mmdet_sd: dict, plan, model_cfg: dict | None = None,
                                where: str = "MMDetection state dict") -> dict:
    """MMDetection YOLOV3 state dict -> Darknet native state dict (``layers.i.*``, the plan's keys)."""
    sd = dict(darknet_payload(mmdet_sd, model_cfg, where))  # every key mapped, none missing, none unused
    out = {}
    for lp, prefix, has_bn in _pairs(plan, model_cfg):
        m = _name_map(prefix, has_bn)
        for n, shape in lp.params:
            out[f"layers.{lp.index}.{n}"] = _get(sd, m[n], shape, where)
    return out


def darknet_to_mmdet_checkpoint(model_or_state_dict, plan=None, *, names=None, header=None,
                                model_cfg: dict | None = None) -> dict:
    """An MMDetection checkpoint dict ``{"meta", "state_dict"}`` for a Darknet YOLOv3 model
    (a DarknetModel, or its native state dict with ``plan``). ``meta['cfg']`` holds the model config as
    Python config text, so :func:`~zooport.converters.mmdet.load.load_mmdet` needs no ``--config``; the
    Darknet header is kept in ``meta['darknet_header']`` for a byte-identical trip back."""
    from ...parsers.mmdet.config import to_python_text

    if plan is None:
        plan = getattr(model_or_state_dict, "plan", None)
        if plan is None:
            raise ConfigError("darknet_to_mmdet_checkpoint: pass the layer plan with a bare state dict")
    if hasattr(model_or_state_dict, "state_dict"):
        model = model_or_state_dict
        sd = model.state_dict()
        names = names or list(getattr(model, "names", []) or [])
        header = header or (getattr(model, "source", {}) or {}).get("darknet_header")
    else:
        sd = model_or_state_dict
    cfg = copy.deepcopy(model_cfg or YOLOV3_CONFIG)
    anchors = getattr(model_or_state_dict, "anchors", None)
    if model_cfg is None and anchors and len(anchors) == 3:
        # keep the cfg's own [yolo] anchors (per head, in pixels, stride 32/16/8 order)
        cfg["bbox_head"]["anchor_generator"]["base_sizes"] = [[[int(round(w)), int(round(h))] for w, h in lvl]
                                                               for lvl in anchors]
    mm = darknet_to_mmdet_state_dict(sd, plan, cfg)
    nc = int(mm["bbox_head.convs_pred.0.weight"].shape[0]) // 3 - 5
    cfg["bbox_head"]["num_classes"] = nc
    names = list(names) if names else [f"class{i}" for i in range(nc)]
    if len(names) != nc:
        raise ConfigError(f"darknet_to_mmdet_checkpoint: {len(names)} names for {nc} classes")
    meta = {"mmdet_version": "3.3.0", "cfg": to_python_text({"model": cfg}),
            "dataset_meta": {"classes": names}, "converted_by": "zooport"}
    if header:
        meta["darknet_header"] = {k: int(v) for k, v in dict(header).items()}
    return {"meta": meta, "state_dict": {k: v.detach().clone() for k, v in mm.items()}}


def darknet_payload(mmdet_sd: dict, model_cfg: dict | None = None, where: str = "MMDetection state dict"):
    """Yield (key, tensor) of an MMDetection YOLOV3 state dict in Darknet ``.weights`` order
    (per conv: BN bias, scale, mean, variance, then weights; output convs: bias, weights), checking
    that every key is used. Needs no Darknet cfg: the order follows from the module structure."""
    from ..strict import check_state_dict

    expected, order = {}, []
    for prefix, has_bn in conv_prefixes(model_cfg, "darknet"):
        for _, k in _conv_keys(prefix, has_bn):
            expected[k] = None
            order.append(k)
        if has_bn and f"{prefix}.bn.num_batches_tracked" in mmdet_sd:  # optional: a counter Darknet has not
            expected[f"{prefix}.bn.num_batches_tracked"] = None
    check_state_dict(expected, mmdet_sd, where, subject="a YOLOV3 of Darknet's layout")
    return [(k, mmdet_sd[k]) for k in order]


def write_darknet_weights(path, mmdet_sd: dict, model_cfg: dict | None = None, header: dict | None = None,
                          progress: bool = False, where: str = "MMDetection state dict") -> int:
    """Write a Darknet ``.weights`` file (atomically) from an MMDetection YOLOV3 state dict; returns bytes written.
    ``header`` (major, minor, revision, seen) defaults to Darknet's own (0, 2, 5, 0)."""
    import numpy as np

    from ..._io import atomic_write
    from ..darknet.weights import DEFAULT_HEADER, pack_header

    items = darknet_payload(mmdet_sd, model_cfg, where)
    blob = pack_header({**DEFAULT_HEADER, **(header or {})})
    n = len(blob)
    it = items
    if progress:
        from tqdm import tqdm

        it = tqdm(items, desc="writing .weights", unit="tensor", leave=False, disable=None)  # terminal only
    with atomic_write(path, "wb") as f:
        f.write(blob)
        for _, t in it:
            a = np.ascontiguousarray(t.detach().cpu().to(dtype=t.dtype).float().numpy(), dtype="<f4").reshape(-1)
            f.write(memoryview(a).cast("B"))
            n += a.nbytes
    return n


def save_mmdet_checkpoint(model_or_state_dict, path, *, plan=None, names=None, header=None) -> int:
    """``zooport convert darknet CFG WEIGHTS --to mmdet -o OUT.pth``: write (atomically) the MMDetection
    YOLOV3 checkpoint of a Darknet yolov3 model; returns the number of state-dict entries."""
    from ..._io import save_torch

    ckpt = darknet_to_mmdet_checkpoint(model_or_state_dict, plan, names=names, header=header)
    save_torch(ckpt, path)
    return len(ckpt["state_dict"])
