"""Plan rules of Darknet's detection heads ([yolo], [Gaussian_yolo], [region], [detection]) and of the
layers only accounted for (``[crnn]`` stores three convolutions; ``[contrastive]`` stores nothing).

Same rule signature as :mod:`zooport.parsers.darknet.layer_rules`. Heads output their input unchanged (Darknet
transforms in place), store no weights and validate that the conv before them has the right number of
filters for their classes and anchors.
"""
from __future__ import annotations

from .layer_rules import _bn, _need_image, _positive, _prev_index


def _anchors(sec, need_pairs):
    anchors = sec.get_floats("anchors", [])
    if len(anchors) % 2:
        raise sec.error("anchors", f"has an odd number ({len(anchors)}) of anchor values; expected w,h pairs "
                                   f"(a missing comma? Darknet removes spaces, so '45 61' reads as 4561)")
    if anchors and len(anchors) < 2 * need_pairs:
        raise sec.error("anchors", f"has {len(anchors) // 2} anchor pairs; expected at least {need_pairs}")
    return [(anchors[2 * i], anchors[2 * i + 1]) for i in range(len(anchors) // 2)]


def yolo_rule(sec, ctx, prev):
    if ctx.accounting:  # heads store no weights; a sloppy head must not break the size accounting
        return [_prev_index(sec)], prev, prev, [], {}
    classes = _positive(sec, "classes", sec.get_int("classes", 20))
    total = _positive(sec, "num", sec.get_int("num", 1))
    mask = sec.get_ints("mask", list(range(total)))
    anchors = _anchors(sec, total)
    # mask picks anchor pairs; AlexeyAB's cspx-p7-mish.cfg lists 20 pairs with num=16 and uses
    # mask 16..19, so the pairs actually written are the bound, not num
    limit = max(total, len(anchors)) if anchors else total
    for m in mask:
        if not 0 <= m < limit:
            raise sec.error("mask", f"mask value {m} is beyond the anchors: {limit} anchor pairs, "
                                    f"expected 0..{limit - 1}")
    per = classes + (9 if sec.kind == "Gaussian_yolo" else 5)
    if prev[0] != len(mask) * per:
        raise sec.error(None, f"expects {len(mask)} masks x ({classes} classes + {per - classes}) = "
                              f"{len(mask) * per} input channels, but the layer before has {prev[0]} "
                              f"(filters= of the conv before must be (classes+{per - classes})*len(mask))")
    attrs = dict(classes=classes, num=total, mask=mask, anchors=anchors,
                 scale_x_y=sec.get_float("scale_x_y", 1.0), new_coords=bool(sec.get_int("new_coords", 0)),
                 yolo_point=sec.get_str("yolo_point", "center"))
    return [_prev_index(sec)], prev, prev, [], attrs


def region_rule(sec, ctx, prev):
    if ctx.accounting:
        return [_prev_index(sec)], prev, prev, [], {}
    classes = _positive(sec, "classes", sec.get_int("classes", 20))
    coords = _positive(sec, "coords", sec.get_int("coords", 4))
    num = _positive(sec, "num", sec.get_int("num", 1))
    anchors = _anchors(sec, num)
    if prev[0] != num * (classes + coords + 1):
        raise sec.error(None, f"expects num={num} x ({classes} classes + {coords} coords + 1) = "
                              f"{num * (classes + coords + 1)} input channels, but the layer before has {prev[0]}")
    if "tree" in sec.options or "map" in sec.options:
        from ...errors import UnsupportedError
        raise UnsupportedError(f"{sec.path or '<cfg>'}:{sec.line}: [region] with tree=/map= (YOLO9000 hierarchy) "
                               f"is not supported")
    attrs = dict(classes=classes, coords=coords, num=num, anchors=anchors,
                 softmax=bool(sec.get_int("softmax", 0)))
    return [_prev_index(sec)], prev, prev, [], attrs


def detection_rule(sec, ctx, prev):
    if ctx.accounting:
        return [_prev_index(sec)], prev, prev, [], {}
    classes = _positive(sec, "classes", sec.get_int("classes", 1))
    coords = _positive(sec, "coords", sec.get_int("coords", 1))
    num = _positive(sec, "num", sec.get_int("num", 1))
    side = _positive(sec, "side", sec.get_int("side", 7))
    n_in = prev[0] * prev[1] * prev[2]
    need = side * side * ((1 + coords) * num + classes)
    if n_in != need:
        raise sec.error(None, f"expects side^2*((1+coords)*num+classes) = {need} inputs, the layer before "
                              f"gives {n_in}")
    attrs = dict(classes=classes, coords=coords, num=num, side=side, sqrt=bool(sec.get_int("sqrt", 0)),
                 softmax=bool(sec.get_int("softmax", 0)))
    return [_prev_index(sec)], prev, prev, [], attrs


def crnn_rule(sec, ctx, prev):
    """Accounting only (build_plan refuses [crnn]): three convs input->hidden, hidden->hidden, hidden->output."""
    _need_image(sec, prev)
    c, h, w = prev
    size = _positive(sec, "size", sec.get_int("size", 3))
    stride = _positive(sec, "stride", sec.get_int("stride", 1))
    padding = sec.get_int("padding", 0)
    if sec.get_int("pad", 0):
        padding = size // 2
    hidden = _positive(sec, "hidden", sec.get_int("hidden", 1))
    output = _positive(sec, "output", sec.get_int("output", 1))
    groups = _positive(sec, "groups", sec.get_int("groups", 1))
    bn = bool(sec.get_int("batch_normalize", 0))
    params = []
    for name, cin, cout in (("input_layer", c, hidden), ("self_layer", hidden, hidden),
                            ("output_layer", hidden, output)):
        params += [(f"{name}.{k}", s) for k, s in (_bn(cout) if bn else [("conv.bias", (cout,))])]
        params.append((f"{name}.conv.weight", (cout, cin // groups, size, size)))
    out = (output, (h + 2 * padding - size) // stride + 1, (w + 2 * padding - size) // stride + 1)
    return [_prev_index(sec)], prev, out, params, {}


def contrastive_rule(sec, ctx, prev):
    return [_prev_index(sec)], prev, prev, [], {}
