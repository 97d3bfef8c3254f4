"""The architecture dict of a pickled YOLOv5 ``ClassificationModel``, read from its module tree.

YOLOv5 v7.0 makes a classifier by cutting a ``DetectionModel`` (``ClassificationModel(model=...,
cutoff=10)``) and pickles it without a ``yaml``. Every top-level layer still carries the
``type`` (``'models.common.C3'``) and ``f`` (from) attributes ``parse_model`` set, and its
sizes live in the pickled ``Conv2d``/``Linear`` records. This module rebuilds, as plain data,
an architecture dict in YOLOv5's yaml schema with ``depth_multiple`` = ``width_multiple`` =
1.0 (channel counts and repeats as built) whose last row is ``[f, 1, Classify, [nc, k, s, p, g]]``.
Nothing is executed; an unsupported layer type is a :class:`CheckpointError` naming it.
"""
from __future__ import annotations

from ...errors import CheckpointError
from ..pickled.allowlist import StandIn


def _child(node: StandIn, *names: str) -> StandIn:
    for n in names:
        kids = node.children if isinstance(node, StandIn) else {}
        if n not in kids or not isinstance(kids[n], StandIn):
            raise KeyError(n)
        node = kids[n]
    return node


def _one(v):
    """A kernel/stride/padding attribute: (k, k) -> k, (a, b) -> [a, b]."""
    if isinstance(v, (tuple, list)):
        return int(v[0]) if len(set(v)) == 1 else [int(x) for x in v]
    return int(v)


def _conv_args(conv: StandIn) -> list:
    """[c2, k, s, p, g, d] of a pickled ``Conv2d``."""
    return [int(conv.get("out_channels")), _one(conv.get("kernel_size")), _one(conv.get("stride")),
            _one(conv.get("padding")), int(conv.get("groups", 1)), _one(conv.get("dilation", 1))]


def _csp_args(layer: StandIn, kind: str) -> tuple[int, list]:
    """(n, [c2, shortcut, g, e]) of a pickled C3 / C3x / C3Ghost / C3TR / BottleneckCSP."""
    last = "cv4" if kind == "BottleneckCSP" else "cv3"
    c2 = int(_child(layer, last, "conv").get("out_channels"))
    c_ = int(_child(layer, "cv1", "conv").get("out_channels"))
    m = _child(layer, "m")
    if kind == "C3TR":
        return len(_child(m, "tr").children), [c2, True, 1, c_ / c2]
    blocks = list(m.children.values())
    if not blocks:
        raise KeyError("m.0")
    first = blocks[0]
    if kind == "C3Ghost":
        return len(blocks), [c2, True, 1, c_ / c2]
    shortcut = bool(first.get("add", False))
    g = int(_child(first, "cv2", "conv").get("groups", 1))
    return len(blocks), [c2, shortcut, g, c_ / c2]


def _row(layer: StandIn) -> tuple[int, str, list]:
    kind = str(layer.get("type", layer.foreign)).rsplit(".", 1)[-1]
    if kind in ("Conv", "DWConv"):  # DWConv = Conv with groups gcd(c1, c2): same tensors, same forward
        return 1, "Conv", _conv_args(_child(layer, "conv"))
    if kind == "Focus":
        return 1, "Focus", _conv_args(_child(layer, "conv", "conv"))[:5]
    if kind == "GhostConv":
        c2, k, s, _p, g, _d = _conv_args(_child(layer, "cv1", "conv"))
        return 1, "GhostConv", [2 * c2, k, s, g]
    if kind in ("C3", "C3x", "C3Ghost", "C3TR", "BottleneckCSP"):
        n, args = _csp_args(layer, kind)
        return n, kind, args
    if kind == "SPPF":
        return 1, "SPPF", [int(_child(layer, "cv2", "conv").get("out_channels")),
                           _one(_child(layer, "m").get("kernel_size"))]
    if kind == "SPP":
        ks = [_one(p.get("kernel_size")) for p in _child(layer, "m").children.values()]
        return 1, "SPP", [int(_child(layer, "cv2", "conv").get("out_channels")), ks]
    if kind == "Concat":
        return 1, "Concat", [int(layer.get("d", 1))]
    if kind == "Upsample":
        return 1, "nn.Upsample", [layer.get("size"), layer.get("scale_factor"), layer.get("mode", "nearest")]
    raise CheckpointError(f"layer type {kind!r} is not read in a classification checkpoint's backbone")


def classification_yaml(model: StandIn, path) -> dict:
    """The architecture dict of the pickled ``ClassificationModel`` ``model`` (see the module doc)."""
    try:
        layers = list(_child(model, "model").children.values())
    except KeyError:
        raise CheckpointError(f"{path}: the pickled ClassificationModel has no 'model' layer list") from None
    if len(layers) < 2:
        raise CheckpointError(f"{path}: the pickled ClassificationModel has {len(layers)} layers; expected a "
                              f"backbone and a Classify head")
    rows = []
    for i, layer in enumerate(layers[:-1]):
        f = layer.get("f", -1)
        if not (isinstance(f, int) or (isinstance(f, list) and all(isinstance(v, int) for v in f))):
            raise CheckpointError(f"{path}: layer {i} has a malformed 'f' (from) attribute {f!r}")
        try:
            n, name, args = _row(layer)
        except KeyError as e:
            raise CheckpointError(f"{path}: layer {i} ({layer.foreign}) lacks the submodule {e.args[0]!r}") from None
        except CheckpointError as e:
            raise CheckpointError(f"{path}: layer {i}: {e}") from None
        rows.append([f, n, name, args])
    head = layers[-1]
    if not str(head.get("type", head.foreign)).endswith("Classify"):
        raise CheckpointError(f"{path}: the last layer is {head.foreign}, expected a Classify head")
    try:
        _c2, k, s, p, g, _d = _conv_args(_child(head, "conv", "conv"))
        nc = int(_child(head, "linear").get("out_features"))
    except (KeyError, TypeError):
        raise CheckpointError(f"{path}: the Classify head lacks its conv or linear layer") from None
    try:
        first = _child(layers[0], "conv") if "conv" in layers[0].children else layers[0]
        ch = int(_child(first, "conv").get("in_channels") if "conv" in first.children else first.get("in_channels"))
        ch = ch // 4 if rows[0][2] == "Focus" else ch
    except (KeyError, TypeError):
        ch = 3
    return {"nc": nc, "depth_multiple": 1.0, "width_multiple": 1.0, "ch": ch, "backbone": rows,
            "head": [[head.get("f", -1), 1, "Classify", [nc, k, s, p, g]]]}
