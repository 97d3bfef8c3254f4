"""mmdetection-mini's YOLOv5 (RRYoloV5Backbone + RRYolov5Head) <-> native YOLOv5 v3.0 model.

mini re-implements YOLOv5 **v3.0** (Focus, BottleneckCSP, SPP; Conv = conv + BN(eps 1e-3) + Hardswish,
BottleneckCSP's own activation LeakyReLU(0.1)) and reads YOLOv5's own v3.0 weights through
``tools/darknet/convert_yolov5_weights_step2.py``, which renames the ``model.model`` state-dict keys
(``N.rest``, 25 rows of the v3.0 yaml) and drops Detect's ``anchors`` / ``anchor_grid``:

* rows 0-9 (backbone):  ``N.rest``      <-> ``backbone.backbone.N.rest``
* rows 10-23 (neck):    ``N.rest``      <-> ``bbox_head.det.{N-10}.rest``
* row 24 (Detect):      ``24.m.I.rest`` <-> ``bbox_head.head.I.rest``

The native model (:class:`~zooport.model_defs.yolov5.model.YOLOv5Model`, keys ``model.N.rest``) is
built from the v3.0 yaml below with the config's ``depth_multiple`` / ``width_multiple`` (mini rounds
widths and depths as YOLOv5 does) and its anchors (pixels; mini lists the stride-32 level first,
YOLOv5 the stride-8 one); Detect's ``anchors`` buffer (grid units) is filled from them.
"""
from __future__ import annotations

import copy
import os
import re
from collections import OrderedDict

from ...errors import CheckpointError

# YOLOv5 v3.0 models/yolov5s.yaml rows (the depth/width multiples and anchors are filled per model)
V3_BACKBONE = [[-1, 1, "Focus", [64, 3]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "BottleneckCSP", [128]],
               [-1, 1, "Conv", [256, 3, 2]], [-1, 9, "BottleneckCSP", [256]], [-1, 1, "Conv", [512, 3, 2]],
               [-1, 9, "BottleneckCSP", [512]], [-1, 1, "Conv", [1024, 3, 2]], [-1, 1, "SPP", [1024, [5, 9, 13]]],
               [-1, 3, "BottleneckCSP", [1024, False]]]
V3_HEAD = [[-1, 1, "Conv", [512, 1, 1]], [-1, 1, "nn.Upsample", [None, 2, "nearest"]], [[-1, 6], 1, "Concat", [1]],
           [-1, 3, "BottleneckCSP", [512, False]], [-1, 1, "Conv", [256, 1, 1]],
           [-1, 1, "nn.Upsample", [None, 2, "nearest"]], [[-1, 4], 1, "Concat", [1]],
           [-1, 3, "BottleneckCSP", [256, False]], [-1, 1, "Conv", [256, 3, 2]], [[-1, 14], 1, "Concat", [1]],
           [-1, 3, "BottleneckCSP", [512, False]], [-1, 1, "Conv", [512, 3, 2]], [[-1, 10], 1, "Concat", [1]],
           [-1, 3, "BottleneckCSP", [1024, False]], [[17, 20, 23], 1, "Detect", ["nc", "anchors"]]]
DETECT = 24
_MINI = re.compile(r"^(backbone\.backbone|bbox_head\.det|bbox_head\.head)\.(\d+)\.(.+)$")
_NATIVE = re.compile(r"^model\.(\d+)\.(.+)$")


def mini_key_to_yolov5(key: str) -> str:
    """``backbone.backbone.3.conv.weight`` -> ``model.3.conv.weight`` (see module docstring)."""
    m = _MINI.match(key)
    if not m:
        raise CheckpointError(f"mini YOLOv5 key {key!r} is not backbone.backbone.N.*, bbox_head.det.N.* or "
                              "bbox_head.head.N.*")
    part, n, rest = m.group(1), int(m.group(2)), m.group(3)
    if part == "backbone.backbone":
        return f"model.{n}.{rest}"
    if part == "bbox_head.det":
        return f"model.{n + 10}.{rest}"
    return f"model.{DETECT}.m.{n}.{rest}"


def yolov5_key_to_mini(key: str) -> str | None:
    """Inverse of :func:`mini_key_to_yolov5`; None for what mini's converter drops (anchors, anchor_grid)."""
    m = _NATIVE.match(key)
    if not m:
        raise CheckpointError(f"YOLOv5 key {key!r} is not model.N.*")
    n, rest = int(m.group(1)), m.group(2)
    if n < 10:
        return f"backbone.backbone.{n}.{rest}"
    if n < DETECT:
        return f"bbox_head.det.{n - 10}.{rest}"
    if rest in ("anchors", "anchor_grid"):
        return None
    if not rest.startswith("m."):
        raise CheckpointError(f"YOLOv5 key {key!r}: Detect holds only m.I.*, anchors and anchor_grid")
    return f"bbox_head.head.{rest[2:]}"


def v3_yaml(arch) -> dict:
    """The YOLOv5 v3.0 architecture dict of a mini yolov5 :class:`MiniArch`."""
    anchors = [[v for wh in lvl for v in wh] for lvl in reversed(arch.anchors)]
    return {"nc": arch.num_classes, "depth_multiple": arch.depth_multiple, "width_multiple": arch.width_multiple,
            "anchors": anchors, "backbone": copy.deepcopy(V3_BACKBONE), "head": copy.deepcopy(V3_HEAD)}


def native_arch(arch) -> dict:
    """The native YOLOv5 arch dict (yaml, activations, BN eps/momentum as mini's ``brick.Conv``, stride)."""
    return {"yaml": v3_yaml(arch), "act": {"type": "Hardswish"},
            "csp_act": {"type": "LeakyReLU", "negative_slope": 0.1}, "bn_eps": 1e-3, "bn_momentum": 0.01,
            "stride": sorted(arch.strides)}


def build_model(arch, mini_sd: dict, where: str, names=None):
    """The native YOLOv5Model of ``arch`` holding ``mini_sd``'s tensors (strict)."""
    import torch

    from ...model_defs.yolov5.create import build_uninitialised
    from ..native import load_state_dict_strict

    meta = {"names": names, "source": {"format": "mmdet-mini", "file": os.path.basename(where), "kind": "yolov5"}}
    model = build_uninitialised(native_arch(arch), meta)
    sd = {}
    for k, v in mini_sd.items():
        sd[mini_key_to_yolov5(k)] = v
    strides = sorted(arch.strides)
    sd[f"model.{DETECT}.anchors"] = torch.tensor(
        [[[w / s, h / s] for w, h in lvl] for lvl, s in zip(reversed(arch.anchors), strides)], dtype=torch.float32)
    own = model.state_dict()
    for k, v in sd.items():
        if k in own and tuple(own[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{where}: {k} has shape {tuple(v.shape)}, the {arch.kind} of the config "
                                  f"(depth {arch.depth_multiple}, width {arch.width_multiple}) needs "
                                  f"{tuple(own[k].shape)}")
    load_state_dict_strict(model, sd, where, assign=True)
    model.refresh_meta()
    return model.eval()


def yolov5_to_mini_state_dict(yolov5_sd: dict) -> "OrderedDict":
    """What ``convert_yolov5_weights_step2.py`` writes for a YOLOv5 v3.0 ``model.model`` state dict
    (``model.N.*`` or bare ``N.*`` keys): same tensors (dtype kept), renamed, anchors dropped."""
    out = OrderedDict()
    for k, v in yolov5_sd.items():
        nk = yolov5_key_to_mini(k if k.startswith("model.") else f"model.{k}")
        if nk is not None:
            out[nk] = v
    return out


def _module_rows(rows) -> list:
    return [(str(r[2]), int(r[1]) > 1) for r in rows]


def check_v3_layout(yaml: dict, where: str) -> None:
    """mini's RRYoloV5 is YOLOv5 v3.0's yolov5s/m/l/x: the same 25 rows (modules, repeats > 1, froms);
    any multiples; 3 levels of 3 anchors; 80 classes (its head hard-codes 255 channels)."""
    from ...errors import UnsupportedError

    try:
        ok = (_module_rows(yaml["backbone"]) == _module_rows(V3_BACKBONE) and
              _module_rows(yaml["head"]) == _module_rows(V3_HEAD) and
              [r[0] for r in yaml["head"]] == [r[0] for r in V3_HEAD] and int(yaml["nc"]) == 80 and
              len(yaml["anchors"]) == 3 and all(len(a) == 6 for a in yaml["anchors"]))
    except (KeyError, TypeError, ValueError, IndexError):
        ok = False
    if not ok:
        raise UnsupportedError(f"{where}: not YOLOv5 v3.0's yolov5s/m/l/x layout with 80 classes and 3x3 anchors "
                               "(Focus, BottleneckCSP, SPP; Detect at row 24): mmdetection-mini's RRYolov5 cannot "
                               "hold it")


def yolov5_checkpoint_to_mini(path) -> tuple[dict, dict]:
    """(``{"state_dict": ...}`` exactly as ``convert_yolov5_weights_step1.py`` + ``step2.py`` write it for a
    YOLOv5 v3.0 ``.pt``: the pickled model's tensors in ``state_dict()`` order and stored dtype (fp16 in the
    releases), renamed, anchors dropped; the yaml)."""
    from ...parsers.yolov5.ckpt import parse_yolov5_checkpoint

    ck = parse_yolov5_checkpoint(path, float_dtype=None)
    check_v3_layout(ck.yaml, os.fspath(path))
    return {"state_dict": yolov5_to_mini_state_dict(ck.state_dict)}, ck.yaml


def save_mini_from_yolov5(path, out) -> int:
    """``zooport convert yolov5 CKPT --to mmdet-mini -o OUT.pth``; returns the number of keys."""
    from ..._io import save_torch

    ckpt, _ = yolov5_checkpoint_to_mini(path)
    save_torch(ckpt, out)
    return len(ckpt["state_dict"])


def mini_to_yolov5_state_dict(mini_sd: dict, arch) -> "OrderedDict":
    """The YOLOv5 v3.0 ``model.state_dict()`` a mini yolov5 ``.pth`` came from: keys ``model.N.*`` in
    mini's order, dtypes kept, and Detect's two buffers mini's converter dropped, rebuilt from the config's
    anchors as v3.0's Detect holds them: ``anchors`` (nl, na, 2) in grid units (pixels / stride) and
    ``anchor_grid`` (nl, 1, na, 1, 1, 2) in pixels, in the weights' float dtype."""
    import torch

    out = OrderedDict()
    dtype = next((v.dtype for v in mini_sd.values() if v.is_floating_point()), torch.float32)
    px = [[[float(w), float(h)] for w, h in lvl] for lvl in reversed(arch.anchors)]  # stride 8 first
    strides = sorted(arch.strides)
    anchors = torch.tensor(px, dtype=torch.float32) / torch.tensor(strides, dtype=torch.float32).view(-1, 1, 1)
    grid = torch.tensor(px, dtype=torch.float32).view(len(px), 1, -1, 1, 1, 2)
    for k, v in mini_sd.items():
        nk = mini_key_to_yolov5(k)
        if nk.startswith(f"model.{DETECT}.m.") and f"model.{DETECT}.anchors" not in out:
            out[f"model.{DETECT}.anchors"] = anchors.to(dtype)
            out[f"model.{DETECT}.anchor_grid"] = grid.to(dtype)
        out[nk] = v
    return out
