"""Darknet layer plan: Darknet's own shape inference and ``.weights`` accounting (torch-free).

For every layer of a parsed cfg, :func:`build_plan` works out what Darknet's ``parse_network_cfg``
would: the layers it reads, its input/output shape (C, H, W) and the parameter tensors it stores in a
``.weights`` file, in file order. The native DarknetModel's state dict has exactly these tensors
(key ``f"layers.{index}.{name}"``), so converting is a walk over one flat float32 buffer.

``.weights`` layout (Darknet ``save_weights``): a 20-byte header (int32 major, minor, revision; uint64
seen -- uint32 when major*10+minor < 2), then per layer in cfg order:
- convolutional: biases[n]; if batch_normalize: scales[n], rolling_mean[n], rolling_variance[n];
  weights[n, c/groups, size, size]. A conv sharing another's weights (share_index) stores nothing.
- connected: biases[out], weights[out, in]; if batch_normalize: scales, rolling_mean, rolling_variance.
- batchnorm: biases, scales, rolling_mean, rolling_variance [c each].
- shortcut with weights_type: (len(from)+1) floats (per_feature) or (len(from)+1)*c (per_channel).
- everything else stores nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

from ...errors import ParseError, UnsupportedError
from .cfg import DarknetCfg, Section
from . import head_rules as H
from . import layer_rules as L
from .layer_rules import HEAD_TYPES, Ctx

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class LayerPlan:
    """One layer: what it reads, its shapes and its stored parameters (see module docstring)."""

    index: int                          # 0-based layer index
    type: str                           # canonical type: "convolutional", "maxpool", "route", "yolo", ...
    section: Section
    inputs: tuple[int, ...]             # absolute indices of the layers it reads (-1 = network input)
    in_shape: Shape                     # (C, H, W) of the first input
    out_shape: Shape                    # (C, H, W) of the output (heads: same as the input)
    params: tuple[tuple[str, tuple[int, ...]], ...]   # .weights file order; names relative to the layer
    # resolved settings Darknet derives from the section (stride_x, padding, groups, activation, ...),
    # so model code need not repeat Darknet's defaulting rules
    attrs: Mapping[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_head(self) -> bool:
        return self.type in HEAD_TYPES

    @property
    def float_count(self) -> int:
        return sum(math.prod(shape) for _, shape in self.params)


# canonical layer type -> plan rule (see darknet_layers / darknet_head_rules)
LAYER_RULES: dict[str, Callable] = {
    "convolutional": L.conv_rule,
    "maxpool": L.maxpool_rule,
    "local_avgpool": L.local_avgpool_rule,
    "avgpool": L.avgpool_rule,
    "route": L.route_rule,
    "shortcut": L.shortcut_rule,
    "scale_channels": L.scale_channels_rule,
    "sam": L.sam_rule,
    "upsample": L.upsample_rule,
    "reorg": L.reorg_rule,
    "reorg3d": L.reorg_rule,
    "dropout": L.dropout_rule,
    "crop": L.crop_rule,
    "connected": L.connected_rule,
    "softmax": L.softmax_rule,
    "cost": L.cost_rule,
    "yolo": H.yolo_rule,
    "Gaussian_yolo": H.yolo_rule,
    "region": H.region_rule,
    "detection": H.detection_rule,
    "batchnorm": L.batchnorm_rule,
    "normalization": L.normalization_rule,
    "activation": L.same_rule,
    "empty": L.same_rule,
    "contrastive": H.contrastive_rule,
    "crnn": H.crnn_rule,
}


# layer types zooport parses but cannot run; build_plan refuses them
UNSUPPORTED = {
    "rnn": "recurrent [rnn] layers are not supported",
    "lstm": "recurrent [lstm] layers are not supported",
    "gru": "recurrent [gru] layers are not supported",
    "crnn": "recurrent [crnn] layers are not supported",
    "conv_lstm": "recurrent [conv_lstm] layers are not supported",
    "history": "[history] (recurrent input) layers are not supported",
    "contrastive": "[contrastive] is a training-only loss layer and is not supported",
    "local": "locally connected [local] layers are not supported",
    "implicit": "[implicit] layers are not supported",
}
# of those, the ones whose .weights accounting is still exact (they store nothing)
_ACCOUNTABLE = {"contrastive", "crnn"}


def _net_shape(cfg: DarknetCfg) -> Shape:
    net = cfg.net
    h = net.get_int("height", 0)
    w = net.get_int("width", 0)
    c = net.get_int("channels", 0)
    inputs = net.get_int("inputs", h * w * c)
    for key, v in (("height", h), ("width", w), ("channels", c), ("inputs", inputs)):
        if v < 0:
            raise net.error(key, f"{key}={v}: expected a positive integer")
    if h and w and c:
        return (c, h, w)
    if inputs > 0:
        return (inputs, 1, 1)  # a flat input (text/recurrent cfgs): Darknet's params.inputs
    raise net.error(None, "has no input size: expected height=, width= and channels= (or inputs=)")


def _plan(cfg: DarknetCfg, *, accounting: bool) -> list[LayerPlan]:
    if not cfg.layers:
        raise ParseError("cfg has a [net] section but no layers", cfg.path, cfg.net.line)
    ctx = Ctx(net_shape=_net_shape(cfg), shapes=[], types=[], accounting=accounting)
    plan: list[LayerPlan] = []
    for sec in cfg.layers:
        kind = sec.kind
        for key in ("dontload", "dontloadscales"):
            if sec.get_int(key, 0):
                raise UnsupportedError(f"{cfg.path or '<cfg>'}:{sec.key_lines[key]}: [{sec.type}] (layer {sec.index}) "
                                       f"{key}=1 (a fine-tuning switch that makes Darknet skip stored weights) "
                                       f"is not supported; remove it")
        if kind in UNSUPPORTED and not (accounting and kind in _ACCOUNTABLE):
            raise UnsupportedError(f"{cfg.path or '<cfg>'}:{sec.line}: layer {sec.index}: {UNSUPPORTED[kind]}")
        rule: Callable = LAYER_RULES[kind]
        prev = ctx.shapes[-1] if ctx.shapes else ctx.net_shape
        inputs, in_shape, out_shape, params, attrs = rule(sec, ctx, prev)
        if min(out_shape) <= 0:
            raise sec.error(None, f"has an empty output {out_shape} for input {in_shape}: "
                                  f"check size/stride/padding against the input size")
        plan.append(LayerPlan(index=sec.index, type=kind, section=sec, inputs=tuple(inputs),
                              in_shape=tuple(in_shape), out_shape=tuple(out_shape),
                              params=tuple((n, tuple(s)) for n, s in params), attrs=attrs))
        ctx.shapes.append(tuple(out_shape))
        ctx.types.append(kind)
    return plan


def build_plan(cfg: DarknetCfg) -> list[LayerPlan]:
    """The layer plan of ``cfg``; raises ParseError (bad cfg, with file:line) or UnsupportedError."""
    return _plan(cfg, accounting=False)


def accounting_plan(cfg: DarknetCfg) -> list[LayerPlan]:
    """Like :func:`build_plan`, but also accepts layers zooport cannot run whose ``.weights`` accounting
    is still exact (``[contrastive]`` stores nothing, ``[crnn]`` three convolutions) and skips the
    checks of detection heads (they store nothing) -- for ``zooport info`` sizes."""
    return _plan(cfg, accounting=True)


def weights_float_count(plan) -> int:
    """Number of float32 values after the header of the ``.weights`` file of ``plan``."""
    return sum(lp.float_count for lp in plan)


def weights_bytes(plan, header_bytes: int = 20) -> int:
    """Size in bytes of the ``.weights`` file Darknet writes for ``plan`` (20-byte header by default)."""
    return header_bytes + 4 * weights_float_count(plan)
