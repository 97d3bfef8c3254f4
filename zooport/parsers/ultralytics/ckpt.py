"""Ultralytics YOLOv8 / YOLO11 / YOLO26 / YOLOv10 detection ``.pt`` checkpoint -> plain data (tensors,
explicit architecture, metadata). Pickles of ultralytics 8.0 - 8.4 (release-style and trainer-style).

Pure data out, no ``nn.Module``. The file is read by the same allowlisted
unpickler as YOLOv5 files (:mod:`zooport.parsers.pickled.allowlist`; Ultralytics
classes are inert records, nothing is imported or executed). The checkpoint is
a dict (``model`` / ``ema``: a pickled ``ultralytics.nn.tasks.DetectionModel``;
``train_args``, ``date``, ``version`` ...); ``ema`` is preferred when it holds a
model (a trainer's ``last.pt``), else ``model`` (``strip_optimizer`` output).

The architecture is read from the pickled module tree, not from the yaml: layer
``i`` of ``model.model`` with its ``f`` (from) attribute, channel counts and
kernels from the weight shapes, residual flags (``add``), attention sizes
(``num_heads``, ``key_dim``, ``head_dim``) and the ``Detect`` class-branch
generation (YOLOv8's ``Conv`` vs YOLO11's ``Sequential(DWConv, Conv)``; the
file does not store Ultralytics' ``legacy`` flag). ``Detect``'s cached
``anchors``/``strides``/``shape`` are plain attributes: read and ignored.

``arch`` layer specs (JSON): ``{"type": "Conv", "from": -1, "c1", "c2", "k", "s",
"p", "g", "d", "act"}``, ``{"type": "C2f" | "C3k2", "c1", "c2", "c", "blocks"}``
(blocks: ``Bottleneck`` ``{"c1", "c2", "c_", "k", "g", "add"}`` or ``C3k``
``{"c1", "c2", "c_", "blocks"}``), ``{"type": "SPPF", "c1", "c2", "k", "n", "add", "cv1_act"}`` (8.4: n pools, YOLO26's residual, cv1
without activation; 8.0-8.3 files give 3, False, True), inner ``BottleneckPSA`` ``{"bottleneck", "psa"}``
(8.4's ``C3k2(attn=True)``), YOLOv10's ``{"type": "SCDown", "c1", "c2", "k", "s"}``, ``{"type": "PSA",
"c1", "c", "num_heads", "key_dim", "head_dim", "hidden"}``, ``C2fCIB`` (a C2f of ``CIB`` blocks ``{"c1", "c2",
"c_", "lk", "add"}``),
``{"type": "C2PSA", "c1", "c2", "c", "blocks": [{"num_heads", "key_dim",
"head_dim", "hidden", "add"}]}``, ``{"type": "Upsample", "size",
"scale_factor", "mode"}``, ``{"type": "Concat", "d"}``, ``{"type": "Detect",
"nc", "ch", "c2", "c3", "reg_max", "head": "v8" | "v11", "end2end"}`` (``end2end``: the head has
YOLO26 / YOLOv10's one-to-one copies ``one2one_cv2`` / ``one2one_cv3``; ``v10Detect`` reads as ``v11``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...errors import CheckpointError, UnsupportedError
from ..yolov5.ckpt import _plain, _walk, read_model_entry
from ..pickled.allowlist import StandIn

_TASKS = "ultralytics.nn.tasks."
# pickled head / model classes of tasks zooport does not build -> the task they belong to
_OTHER_HEADS = {"Segment": "segment", "Pose": "pose", "OBB": "obb (oriented boxes)", "Segment26": "segment",
                "Pose26": "pose", "OBB26": "obb (oriented boxes)", "Depth": "depth", "SemanticSegment": "semantic",
                "YOLOESegment26": "YOLOE segment",
                "WorldDetect": "YOLO-World detect",
                "RTDETRDecoder": "RT-DETR detect", "YOLOEDetect": "YOLOE detect", "YOLOESegment": "YOLOE segment"}
_OTHER_MODELS = {"SegmentationModel": "segment", "PoseModel": "pose", "OBBModel": "obb (oriented boxes)",
                 "WorldModel": "YOLO-World", "RTDETRDetectionModel": "RT-DETR"}


@dataclass
class UltralyticsCheckpoint:
    path: str
    state_dict: dict  # Ultralytics keys (model.N...), float32 (num_batches_tracked int64)
    arch: dict  # {"layers": [...], "nc", "fused"} (module doc)
    names: list
    stride: list
    modules: dict  # {path: StandIn} of every pickled module
    source_key: str  # "ema" or "model"
    imgsz: list = field(default_factory=lambda: [640, 640])
    info: dict = field(default_factory=dict)


def _short(node) -> str:
    return node.foreign.rsplit(".", 1)[-1] if isinstance(node, StandIn) else type(node).__name__


def _child(node, name, where):
    c = node.children.get(name) if isinstance(node, StandIn) else None
    if not isinstance(c, StandIn):
        raise CheckpointError(f"{where}: module has no submodule {name!r}")
    return c


def _seq(node, where) -> list:
    """Children of a pickled Sequential/ModuleList in index order."""
    kids = node.children
    try:
        return [kids[str(i)] for i in range(len(kids))]
    except KeyError:
        raise CheckpointError(f"{where}: container children are not numbered 0..{len(kids) - 1}") from None


def _int(v, where, what):
    if isinstance(v, bool) or not isinstance(v, int):
        raise CheckpointError(f"{where}: attribute {what!r} is {v!r}, expected an integer")
    return v


def _pair(v):
    v = list(v) if isinstance(v, (tuple, list)) else [v, v]
    return v[0] if v[0] == v[1] else v


def _conv(node, where) -> dict:
    """Spec of an Ultralytics Conv / DWConv (conv [+ bn] + act) from its pickled Conv2d."""
    conv = _child(node, "conv", where)
    w = (conv.get("_parameters") or {}).get("weight")
    if not isinstance(w, torch.Tensor) or w.dim() != 4:
        raise CheckpointError(f"{where}.conv: no 4-d weight")
    g = _int(conv.get("groups", 1), where + ".conv", "groups")
    act = node.children.get("act")
    return {"c1": int(w.shape[1]) * g, "c2": int(w.shape[0]), "k": _pair(tuple(w.shape[2:])),
            "s": _pair(conv.get("stride", 1)), "p": _pair(conv.get("padding", 0)), "g": g,
            "d": _pair(conv.get("dilation", 1)),
            "act": not (isinstance(act, StandIn) and act.foreign == "torch.nn.modules.linear.Identity")}


def _psa_block(blk, w) -> dict:
    """Spec of a pickled PSABlock (attention sizes from its attributes, ffn width from its weight)."""
    if _short(blk) != "PSABlock":
        raise UnsupportedError(f"{w}: {blk.foreign} is not supported here (expected PSABlock)")
    at = _child(blk, "attn", w)
    ffn0 = _conv(_seq(_child(blk, "ffn", w), w + ".ffn")[0], w + ".ffn.0")
    return {"num_heads": _int(at.get("num_heads"), w + ".attn", "num_heads"),
            "key_dim": _int(at.get("key_dim"), w + ".attn", "key_dim"),
            "head_dim": _int(at.get("head_dim"), w + ".attn", "head_dim"),
            "hidden": ffn0["c2"], "add": bool(blk.get("add", True)), "c": ffn0["c1"]}


def _inner(node, where) -> dict:
    kind = _short(node)
    if kind == "Sequential":  # 8.4's C3k2(attn=True) block: Sequential(Bottleneck, PSABlock)
        kids = _seq(node, where)
        if len(kids) != 2 or _short(kids[0]) != "Bottleneck":
            raise UnsupportedError(f"{where}: inner Sequential is not (Bottleneck, PSABlock)")
        return {"type": "BottleneckPSA", "bottleneck": _inner(kids[0], where + ".0"),
                "psa": _psa_block(kids[1], where + ".1")}
    if kind == "CIB":  # YOLOv10
        cv = _seq(_child(node, "cv1", where), where + ".cv1")
        first, mid = _conv(cv[0], where + ".cv1.0"), _conv(cv[1], where + ".cv1.1")
        lk = _short(cv[2]) == "RepVGGDW"
        return {"type": "CIB", "c1": first["c1"], "c2": _conv(cv[3], where + ".cv1.3")["c2"],
                "c_": mid["c2"] // 2, "lk": lk, "add": bool(node.get("add", False))}
    if kind == "Bottleneck":
        a, b = _conv(_child(node, "cv1", where), where + ".cv1"), _conv(_child(node, "cv2", where), where + ".cv2")
        return {"type": "Bottleneck", "c1": a["c1"], "c2": b["c2"], "c_": a["c2"],
                "k": [a["k"], b["k"]], "g": b["g"], "add": bool(node.get("add", False))}
    if kind == "C3k":
        a, c = _conv(_child(node, "cv1", where), where + ".cv1"), _conv(_child(node, "cv3", where), where + ".cv3")
        m = _child(node, "m", where)
        return {"type": "C3k", "c1": a["c1"], "c2": c["c2"], "c_": a["c2"],
                "blocks": [_inner(b, f"{where}.m.{j}") for j, b in enumerate(_seq(m, where + ".m"))]}
    raise UnsupportedError(f"{where}: inner block {node.foreign} is not supported (expected Bottleneck, C3k, CIB "
                           f"or Sequential(Bottleneck, PSABlock))")


def _layer(node, where) -> dict:
    kind = _short(node)
    if kind in ("Conv", "DWConv"):
        return {"type": "Conv", **_conv(node, where)}
    if kind in ("C2f", "C3k2", "C2fCIB"):
        a, b = _conv(_child(node, "cv1", where), where + ".cv1"), _conv(_child(node, "cv2", where), where + ".cv2")
        m = _child(node, "m", where)
        return {"type": kind, "c1": a["c1"], "c2": b["c2"], "c": a["c2"] // 2,
                "blocks": [_inner(x, f"{where}.m.{j}") for j, x in enumerate(_seq(m, where + ".m"))]}
    if kind == "SPPF":
        a, b = _conv(_child(node, "cv1", where), where + ".cv1"), _conv(_child(node, "cv2", where), where + ".cv2")
        k = _child(node, "m", where).get("kernel_size", 5)
        if a["c2"] != a["c1"] // 2:
            raise UnsupportedError(f"{where}: SPPF hidden width {a['c2']} is not c1/2 = {a['c1'] // 2}")
        # 8.4 adds n (pool count), add (YOLO26's residual) and drops cv1's activation; 8.0-8.3 have none of them
        return {"type": "SPPF", "c1": a["c1"], "c2": b["c2"], "k": _int(_pair(k), where, "kernel_size"),
                "n": _int(node.get("n", 3), where, "n"), "add": bool(node.get("add", False)), "cv1_act": a["act"]}
    if kind == "SCDown":
        a, b = _conv(_child(node, "cv1", where), where + ".cv1"), _conv(_child(node, "cv2", where), where + ".cv2")
        return {"type": "SCDown", "c1": a["c1"], "c2": b["c2"], "k": b["k"], "s": b["s"]}
    if kind == "PSA":
        a = _conv(_child(node, "cv1", where), where + ".cv1")
        at = _child(node, "attn", where)
        ffn0 = _conv(_seq(_child(node, "ffn", where), where + ".ffn")[0], where + ".ffn.0")
        return {"type": "PSA", "c1": a["c1"], "c": a["c2"] // 2, "hidden": ffn0["c2"],
                **{k: _int(at.get(k), where + ".attn", k) for k in ("num_heads", "key_dim", "head_dim")}}
    if kind == "C2PSA":
        a, b = _conv(_child(node, "cv1", where), where + ".cv1"), _conv(_child(node, "cv2", where), where + ".cv2")
        blocks = []
        for j, blk in enumerate(_seq(_child(node, "m", where), where + ".m")):
            spec = _psa_block(blk, f"{where}.m.{j}")
            spec.pop("c")
            blocks.append(spec)
        return {"type": "C2PSA", "c1": a["c1"], "c2": b["c2"], "c": a["c2"] // 2, "blocks": blocks}
    if kind == "Upsample":
        sf = node.get("scale_factor")
        return {"type": "Upsample", "size": _plain(node.get("size")), "scale_factor": _plain(sf),
                "mode": str(node.get("mode", "nearest"))}
    if kind == "Concat":
        return {"type": "Concat", "d": _int(node.get("d", 1), where, "d")}
    if kind in ("Detect", "v10Detect"):
        return _detect(node, where)
    if kind == "Classify":
        c = _conv(_child(node, "conv", where), where + ".conv")
        w = (_child(node, "linear", where).get("_parameters") or {}).get("weight")
        if not isinstance(w, torch.Tensor) or w.dim() != 2:
            raise CheckpointError(f"{where}.linear: no 2-d weight")
        return {"type": "Classify", "c1": c["c1"], "k": c["k"], "s": c["s"], "p": c["p"], "g": c["g"],
                "nc": int(w.shape[0])}
    if kind in _OTHER_HEADS:
        raise UnsupportedError(f"{where}: Ultralytics head {node.foreign} ({_OTHER_HEADS[kind]} task) is not "
                               f"supported; zooport reads Ultralytics detection (Detect, v10Detect) and classification models only")
    raise UnsupportedError(f"{where}: Ultralytics module {node.foreign} is not supported (zooport builds Conv, "
                           f"DWConv, C2f, C3k2, C3k, SPPF, C2PSA, Upsample, Concat and Detect)")


def _detect(node, where) -> dict:
    cv2 = [_seq(b, f"{where}.cv2.{i}") for i, b in enumerate(_seq(_child(node, "cv2", where), where + ".cv2"))]
    cv3 = [_seq(b, f"{where}.cv3.{i}") for i, b in enumerate(_seq(_child(node, "cv3", where), where + ".cv3"))]
    if not cv2 or len(cv2) != len(cv3):
        raise CheckpointError(f"{where}: Detect has {len(cv2)} box and {len(cv3)} class branches")
    # YOLO26 / YOLOv10: a one-to-one copy of both branches (8.4 may set it to None after fuse())
    end2end = isinstance(node.children.get("one2one_cv2"), StandIn)
    if end2end and not isinstance(node.children.get("one2one_cv3"), StandIn):
        raise CheckpointError(f"{where}: end-to-end head has one2one_cv2 but no one2one_cv3")
    reg_max = _int(node.get("reg_max", 16), where, "reg_max")
    nc = _int(node.get("nc"), where, "nc")
    first = cv3[0][0]
    # YOLO11 (and later 8.3 yamls) wrap each class-branch stage in Sequential(DWConv, Conv); YOLOv8 uses Conv
    if first.foreign == "torch.nn.modules.container.Sequential":
        head = "v11"
        c3 = _conv(_seq(first, where + ".cv3.0.0")[1], where + ".cv3.0.0.1")["c2"]
    elif _short(first) == "Conv":
        head = "v8"
        c3 = _conv(first, where + ".cv3.0.0")["c2"]
    else:
        raise UnsupportedError(f"{where}.cv3.0.0: class branch starts with {first.foreign}; expected Conv "
                               f"(YOLOv8) or Sequential(DWConv, Conv) (YOLO11)")
    return {"type": "Detect", "nc": nc, "reg_max": reg_max, "head": head, "end2end": end2end,
            "ch": [_conv(b[0], f"{where}.cv2.{i}.0")["c1"] for i, b in enumerate(cv2)],
            "c2": _conv(cv2[0][0], where + ".cv2.0.0")["c2"], "c3": c3}


def _tree(node):
    """Every pickled module below ``node`` (depth first)."""
    for c in node.children.values():
        if isinstance(c, StandIn):
            yield c
            yield from _tree(c)


def arch_from_tree(model: StandIn, where: str) -> dict:
    """The explicit architecture (module doc) of a pickled DetectionModel."""
    layers = []
    seq = _seq(_child(model, "model", where), where + ": model")
    for i, node in enumerate(seq):
        lw = f"{where}: layer model.{i}"
        if not isinstance(node, StandIn):
            raise CheckpointError(f"{lw} is not a pickled module")
        spec = _layer(node, lw)
        f = node.get("f", -1)
        if not (isinstance(f, int) or (isinstance(f, list) and f and all(isinstance(x, int) for x in f))):
            raise CheckpointError(f"{lw}: 'f' (from) is {f!r}, expected an int or a list of ints")
        spec["from"] = f
        layers.append(spec)
    if not layers or layers[-1]["type"] not in ("Detect", "Classify"):
        raise CheckpointError(f"{where}: the model does not end with a Detect or Classify head")
    # a model saved after Ultralytics' fuse(): its Conv/DWConv blocks lost 'bn' (the conv gained a bias)
    fused = any(_short(n) in ("Conv", "DWConv") and (not isinstance(n.children.get("bn"), StandIn) or
                                                    n.children["bn"].foreign.endswith(".Identity"))
                for n in _tree(model))
    return {"layers": layers, "nc": layers[-1]["nc"], "fused": fused}


def parse_ultralytics_checkpoint(path: str | os.PathLike) -> UltralyticsCheckpoint:
    """Read an Ultralytics YOLOv8 / YOLO11 detection checkpoint safely; see the module doc."""
    path = Path(path)
    top, key = read_model_entry(path, "an Ultralytics")
    model = top[key]
    if not isinstance(model, StandIn) or not model.foreign.startswith(_TASKS):
        got = model.foreign if isinstance(model, StandIn) else type(model).__name__
        raise CheckpointError(f"{path}: entry {key!r} is {got}, expected a pickled "
                              f"ultralytics.nn.tasks.DetectionModel")
    short = _short(model)
    if short in _OTHER_MODELS:
        raise UnsupportedError(f"{path}: {model.foreign} ({_OTHER_MODELS[short]} task) is not supported; "
                               f"zooport reads Ultralytics detection (Detect, v10Detect) and classification models only")
    arch = arch_from_tree(model, str(path))
    sd: dict = {}
    modules: dict = {}
    _walk(model, "", path, sd, modules)
    nc = arch["nc"]
    names = model.get("names")
    if isinstance(names, dict) and all(isinstance(k, int) for k in names):
        names = [str(names[k]) for k in sorted(names)]
    if not isinstance(names, list) or len(names) != nc:
        names = [f"class{i}" for i in range(nc)]
    stride = model.get("stride")
    stride = [int(round(float(v))) for v in stride.flatten().tolist()] if isinstance(stride, torch.Tensor) else []
    args = model.get("args") if isinstance(model.get("args"), dict) else top.get("train_args")
    imgsz = (args or {}).get("imgsz", 640) if isinstance(args, dict) else 640
    imgsz = [imgsz, imgsz] if isinstance(imgsz, int) and not isinstance(imgsz, bool) else \
        list(imgsz) if isinstance(imgsz, (list, tuple)) and len(imgsz) == 2 else [640, 640]
    info = {k: _plain(top.get(k)) for k in ("epoch", "date", "version", "license") if k in top}
    info["model_class"] = model.foreign
    yaml = model.get("yaml")
    if isinstance(yaml, dict):
        info["yaml_file"] = _plain(yaml.get("yaml_file"))
    return UltralyticsCheckpoint(path=str(path), state_dict=sd, arch=arch, names=[str(n) for n in names],
                                 stride=stride, modules=modules, source_key=key, imgsz=[int(v) for v in imgsz],
                                 info=info)
