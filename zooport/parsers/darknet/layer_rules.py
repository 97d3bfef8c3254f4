"""Per-layer-type rules of the Darknet plan: defaults, shape arithmetic and stored parameters.

Every rule is ``rule(sec, ctx, prev) -> (inputs, in_shape, out_shape, params, attrs)`` where ``prev``
is the (C, H, W) output of the layer before (the network input for layer 0). The arithmetic follows
AlexeyAB/darknet's ``parse_*`` / ``make_*_layer`` functions (integer division as in C; all operands
are positive where it matters). Settings Darknet derives (e.g. conv ``padding = size/2`` when ``pad=1``)
are returned in ``attrs``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .cfg import Section

HEAD_TYPES = frozenset({"yolo", "region", "Gaussian_yolo", "detection"})


@dataclass
class Ctx:
    net_shape: tuple[int, int, int]
    shapes: list            # out_shape of every layer planned so far
    types: list             # canonical type of every layer planned so far
    accounting: bool = False  # size accounting only: accept layers zooport cannot run


def _prev_index(sec: Section) -> int:
    return sec.index - 1  # -1 means the network input


def _resolve(sec: Section, key: str, raw: int) -> int:
    """Absolute index of a layer reference (negative = relative to this layer), validated."""
    idx = raw if raw >= 0 else sec.index + raw
    if idx < 0:
        raise sec.error(key, f"{key}: {raw} points before the first layer (resolves to {idx}); "
                             f"expected a layer index in 0..{sec.index - 1}")
    if idx >= sec.index:
        raise sec.error(key, f"{key}: {raw} is a forward reference (layer {idx}, this is layer {sec.index}); "
                             f"a layer may only read earlier layers")
    return idx


def _need_image(sec: Section, prev) -> None:
    if min(prev) <= 0:
        raise sec.error(None, f"needs an image input, got {prev}")


def _positive(sec: Section, key: str, v: int) -> int:
    if v <= 0:
        raise sec.error(key, f"{key}={v}: expected a positive integer")
    return v


def _bn(n: int):
    return [("bn.bias", (n,)), ("bn.weight", (n,)), ("bn.running_mean", (n,)), ("bn.running_var", (n,))]


def conv_rule(sec, ctx, prev):
    _need_image(sec, prev)
    c, h, w = prev
    n = _positive(sec, "filters", sec.get_int("filters", 1))
    groups = _positive(sec, "groups", sec.get_int("groups", 1))
    size = _positive(sec, "size", sec.get_int("size", 1))
    stride_x = sec.get_int("stride_x", -1)
    stride_y = sec.get_int("stride_y", -1)
    if stride_x < 1 or stride_y < 1:
        stride = _positive(sec, "stride", sec.get_int("stride", 1))
        stride_x = stride if stride_x < 1 else stride_x
        stride_y = stride if stride_y < 1 else stride_y
    dilation = _positive(sec, "dilation", sec.get_int("dilation", 1))
    if size == 1:
        dilation = 1
    padding = sec.get_int("padding", 0)
    if sec.get_int("pad", 0):
        padding = size // 2
    if sec.get_int("antialiasing", 0):
        from ...errors import UnsupportedError
        raise UnsupportedError(f"{sec.path or '<cfg>'}:{sec.key_lines['antialiasing']}: [convolutional] antialiasing=1 "
                               f"is not supported")
    for key in ("sway", "rotate", "stretch", "stretch_sway", "coordconv"):
        if sec.get_int(key, 0):
            from ...errors import UnsupportedError
            raise UnsupportedError(f"{sec.path or '<cfg>'}:{sec.key_lines[key]}: [convolutional] {key}=1 is not supported")
    if c % groups:
        raise sec.error("groups", f"groups={groups} does not divide the {c} input channels")
    if n % groups:
        raise sec.error("groups", f"groups={groups} does not divide filters={n}")
    bn = bool(sec.get_int("batch_normalize", 0) or sec.get_int("cbn", 0))
    share = sec.get_int("share_index", -1000000000)
    share_idx = None
    if share != -1000000000:
        share_idx = _resolve(sec, "share_index", share)
        if ctx.types[share_idx] != "convolutional":
            raise sec.error("share_index", f"share_index={share} points to a [{ctx.types[share_idx]}] layer; "
                                           f"expected a [convolutional] layer")
    # Darknet: out = (h + 2*pad - size)/stride + 1; dilation enlarges the effective padding instead
    # (im2col is called with pad*dilation), so the output size does not depend on it.
    out_h = (h + 2 * padding - size) // stride_y + 1
    out_w = (w + 2 * padding - size) // stride_x + 1
    params = []
    if share_idx is None:
        params = (_bn(n) if bn else [("conv.bias", (n,))]) + [("conv.weight", (n, c // groups, size, size))]
    attrs = dict(filters=n, size=size, stride_x=stride_x, stride_y=stride_y, dilation=dilation,
                 padding=padding, groups=groups, batch_normalize=bn,
                 activation=sec.get_str("activation", "logistic"), share_index=share_idx,
                 xnor=bool(sec.get_int("xnor", 0)), binary=bool(sec.get_int("binary", 0)))
    return [_prev_index(sec)], prev, (n, out_h, out_w), params, attrs


def _pool_common(sec, prev, avg: bool):
    _need_image(sec, prev)
    c, h, w = prev
    stride = _positive(sec, "stride", sec.get_int("stride", 1))
    stride_x = _positive(sec, "stride_x", sec.get_int("stride_x", stride))
    stride_y = _positive(sec, "stride_y", sec.get_int("stride_y", stride))
    size = _positive(sec, "size", sec.get_int("size", stride))
    padding = sec.get_int("padding", size - 1)
    depth = 0 if avg else sec.get_int("maxpool_depth", 0)
    out_channels = 1 if avg else _positive(sec, "out_channels", sec.get_int("out_channels", 1))
    if not avg and sec.get_int("antialiasing", 0):
        from ...errors import UnsupportedError
        raise UnsupportedError(f"{sec.path or '<cfg>'}:{sec.key_lines['antialiasing']}: [maxpool] antialiasing=1 "
                               f"is not supported")
    attrs = dict(size=size, stride_x=stride_x, stride_y=stride_y, padding=padding, maxpool_depth=depth,
                 out_channels=out_channels)
    if depth:
        # maxpool over channels: each output channel takes the max over a strided channel group
        out = (out_channels, h, w)
    else:
        out = (c, (h + padding - size) // stride_y + 1, (w + padding - size) // stride_x + 1)
    return [_prev_index(sec)], prev, out, [], attrs


def maxpool_rule(sec, ctx, prev):
    return _pool_common(sec, prev, avg=False)


def local_avgpool_rule(sec, ctx, prev):
    return _pool_common(sec, prev, avg=True)


def avgpool_rule(sec, ctx, prev):
    _need_image(sec, prev)
    return [_prev_index(sec)], prev, (prev[0], 1, 1), [], {}


def same_rule(sec, ctx, prev):
    """Layers whose output has the input's shape and that store nothing."""
    attrs = {}
    if "activation" in sec.options or sec.kind == "activation":
        attrs["activation"] = sec.get_str("activation", "linear")
    return [_prev_index(sec)], prev, prev, [], attrs


def batchnorm_rule(sec, ctx, prev):
    return [_prev_index(sec)], prev, prev, _bn(prev[0]), {}


def route_rule(sec, ctx, prev):
    raw = sec.get_ints("layers")
    if not raw:
        raise sec.error("layers", "layers= is empty; expected one or more layer indices")
    idxs = [_resolve(sec, "layers", r) for r in raw]
    groups = _positive(sec, "groups", sec.get_int("groups", 1))
    group_id = sec.get_int("group_id", 0)
    if not 0 <= group_id < groups:
        raise sec.error("group_id", f"group_id={group_id}: expected 0..{groups - 1} for groups={groups}")
    shapes = [ctx.shapes[i] for i in idxs]
    c0, h0, w0 = shapes[0]
    for i, (c, h, w) in zip(idxs, shapes):
        if (h, w) != (h0, w0):
            raise sec.error("layers", f"layers: layer {i} is {h}x{w} but layer {idxs[0]} is {h0}x{w0}; "
                                      f"routed layers must have the same height and width")
        if c % groups:
            raise sec.error("groups", f"groups={groups} does not divide the {c} channels of layer {i}")
    out_c = sum(s[0] for s in shapes) // groups
    return idxs, shapes[0], (out_c, h0, w0), [], dict(groups=groups, group_id=group_id)


def shortcut_rule(sec, ctx, prev):
    froms = [_resolve(sec, "from", r) for r in sec.get_ints("from")]
    if not froms:
        raise sec.error("from", "from= is empty; expected one or more layer indices")
    wt = sec.get_str("weights_type", "none")
    if wt not in ("none", "per_feature", "per_layer", "per_channel"):
        raise sec.error("weights_type", f"weights_type={wt}: expected none, per_feature, per_layer or per_channel")
    wn = sec.get_str("weights_normalization", "none")
    if wn not in ("none", "relu", "avg_relu", "softmax"):
        raise sec.error("weights_normalization",
                        f"weights_normalization={wn}: expected none, relu, avg_relu or softmax")
    for i in froms:
        (_, fh, fw), (_, h, w) = ctx.shapes[i], prev
        # Darknet's shortcut_cpu adds a from-layer of another size by sampling it with an integer stride
        # (ResNet downsampling blocks); any other size ratio is a cfg error
        if not (_multiple(fh, h) and _multiple(fw, w)):
            raise sec.error("from", f"from: layer {i} is {fh}x{fw} but the input is {h}x{w}; shortcut needs "
                                    f"equal sizes or one an integer multiple of the other")
    n_in = len(froms) + 1
    params = []
    if wt in ("per_feature", "per_layer"):
        params = [("weights", (n_in,))]
    elif wt == "per_channel":
        params = [("weights", (n_in, prev[0]))]
    attrs = dict(activation=sec.get_str("activation", "linear"), weights_type="per_feature"
                 if wt == "per_layer" else wt, weights_normalization="relu" if wn == "avg_relu" else wn)
    return [_prev_index(sec)] + froms, prev, prev, params, attrs


def _multiple(a: int, b: int) -> bool:
    return a > 0 and b > 0 and (a % b == 0 or b % a == 0)


def _from_one(sec, ctx):
    raw = sec.get_ints("from")
    if len(raw) != 1:
        raise sec.error("from", f"from={sec.options['from']}: expected exactly one layer index")
    return _resolve(sec, "from", raw[0])


def scale_channels_rule(sec, ctx, prev):
    src = _from_one(sec, ctx)
    fc, fh, fw = ctx.shapes[src]
    scale_wh = sec.get_int("scale_wh", 0)
    if scale_wh:
        if prev[0] != 1 or prev[1:] != (fh, fw):
            raise sec.error("from", f"scale_wh=1 needs a 1x{fh}x{fw} input, got {prev}")
    elif prev[1:] != (1, 1) or prev[0] != fc:
        raise sec.error("from", f"needs a ({fc}, 1, 1) input to scale the {fc} channels of layer {src}, got {prev}")
    attrs = dict(scale_wh=bool(scale_wh), activation=sec.get_str("activation", "linear"))
    return [_prev_index(sec), src], prev, (fc, fh, fw), [], attrs


def sam_rule(sec, ctx, prev):
    src = _from_one(sec, ctx)
    if ctx.shapes[src] != prev:
        raise sec.error("from", f"layer {src} has shape {ctx.shapes[src]} but the input is {prev}; "
                                f"[sam] multiplies equal shapes")
    return [_prev_index(sec), src], prev, prev, [], dict(activation=sec.get_str("activation", "linear"))


def upsample_rule(sec, ctx, prev):
    _need_image(sec, prev)
    stride = sec.get_int("stride", 2)
    if stride == 0:
        raise sec.error("stride", "stride=0: expected a non-zero factor (negative = downsample)")
    c, h, w = prev
    out = (c, h * stride, w * stride) if stride > 0 else (c, h // -stride, w // -stride)
    return [_prev_index(sec)], prev, out, [], dict(stride=stride, scale=sec.get_float("scale", 1.0))


def reorg_rule(sec, ctx, prev):
    _need_image(sec, prev)
    stride = _positive(sec, "stride", sec.get_int("stride", 1))
    reverse = bool(sec.get_int("reverse", 0))
    c, h, w = prev
    if reverse:
        if c % (stride * stride):
            raise sec.error("stride", f"reverse reorg by {stride} needs channels divisible by {stride * stride}, got {c}")
        out = (c // (stride * stride), h * stride, w * stride)
    else:
        if h % stride or w % stride:
            raise sec.error("stride", f"reorg by {stride} needs height and width divisible by it, got {h}x{w}")
        out = (c * stride * stride, h // stride, w // stride)
    return [_prev_index(sec)], prev, out, [], dict(stride=stride, reverse=reverse)


def crop_rule(sec, ctx, prev):
    _need_image(sec, prev)
    ch = _positive(sec, "crop_height", sec.get_int("crop_height", 1))
    cw = _positive(sec, "crop_width", sec.get_int("crop_width", 1))
    return [_prev_index(sec)], prev, (prev[0], ch, cw), [], dict(crop_height=ch, crop_width=cw,
                                                                   noadjust=bool(sec.get_int("noadjust", 0)))


def connected_rule(sec, ctx, prev):
    out = _positive(sec, "output", sec.get_int("output", 1))
    n_in = prev[0] * prev[1] * prev[2]
    bn = bool(sec.get_int("batch_normalize", 0))
    params = [("fc.bias", (out,)), ("fc.weight", (out, n_in))]
    if bn:  # Darknet's connected BN has no separate bias (the fc bias plays that role)
        params += [("bn.weight", (out,)), ("bn.running_mean", (out,)), ("bn.running_var", (out,))]
    attrs = dict(output=out, batch_normalize=bn, activation=sec.get_str("activation", "logistic"))
    return [_prev_index(sec)], prev, (out, 1, 1), params, attrs


def softmax_rule(sec, ctx, prev):
    groups = _positive(sec, "groups", sec.get_int("groups", 1))
    n = prev[0] * prev[1] * prev[2]
    if n % groups:
        raise sec.error("groups", f"groups={groups} does not divide the {n} inputs")
    if "tree" in sec.options:
        from ...errors import UnsupportedError
        raise UnsupportedError(f"{sec.path or '<cfg>'}:{sec.key_lines['tree']}: hierarchical softmax (tree=) is not supported")
    attrs = dict(groups=groups, temperature=sec.get_float("temperature", 1.0), spatial=bool(sec.get_int("spatial", 0)))
    return [_prev_index(sec)], prev, prev, [], attrs


_COST_TYPES = ("sse", "masked", "smooth", "L1", "seg", "wgan")


def cost_rule(sec, ctx, prev):
    t = sec.get_str("type", "sse")
    if t not in _COST_TYPES:
        raise sec.error("type", f"type={t}: expected one of {', '.join(_COST_TYPES)}")
    return [_prev_index(sec)], prev, prev, [], dict(cost_type=t, scale=sec.get_float("scale", 1.0))


def normalization_rule(sec, ctx, prev):
    _need_image(sec, prev)
    attrs = dict(size=sec.get_int("size", 5), alpha=sec.get_float("alpha", 1e-4),
                 beta=sec.get_float("beta", 0.75), kappa=sec.get_float("kappa", 1.0))
    return [_prev_index(sec)], prev, prev, [], attrs


def dropout_rule(sec, ctx, prev):
    return [_prev_index(sec)], prev, prev, [], dict(probability=sec.get_float("probability", 0.2))
