"""Theoretical receptive field and stride of every head, for any model family, from one traced forward.

A :class:`torch.overrides.TorchFunctionMode` records every torch call of ``model.raw(x)`` that reads a
tensor derived from the input (modules and functional code alike) as a graph node with its geometry.
The receptive field of a head is then found *backwards*, exactly: the centre cell ``(H // 2, W // 2)``
of the head tensor is an interval of cells per axis, mapped through each node to the cells it reads:

* ``conv2d`` / ``max_pool2d`` / ``avg_pool2d`` (kernel k, stride s, padding p, dilation d):
  ``[lo * s - p, hi * s - p + (k - 1) * d]``;
* ``conv_transpose2d``: the input cells whose output window covers the interval;
* ``pad``: shifted by the left/top padding;
* a resampling by an integer factor (nearest upsampling, reorg/space-to-depth): cell ``o`` reads
  ``floor(o * in / out)`` (upsampling) or the block ``[o * f, o * f + f - 1]`` (downsampling);
* anything else (add, cat, activations, norms, reshapes that keep H and W): the same interval.

Where paths meet (concat, shortcut, FPN), intervals are merged into their hull; nothing is clipped to the
image, so the result is the full theoretical field (padding included), ``hi - lo + 1`` input pixels. For a
network with positive weights and monotone activations this is exactly where the input gradient of the
centre cell is non-zero, which the tests check independently.
"""
from __future__ import annotations

import math
import weakref

from ..families import lookup


def _pair(v):
    if isinstance(v, str):
        return None  # 'same' / 'valid': resolved from the shapes
    if isinstance(v, (list, tuple)):
        return (int(v[0]), int(v[-1])) if v else (1, 1)
    return int(v), int(v)


def _tensors(obj, out):
    import torch

    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _tensors(v, out)
    elif isinstance(obj, dict):
        for v in obj.values():
            _tensors(v, out)
    return out


def _arg(args, kwargs, i, name, default):
    if name in kwargs:
        return kwargs[name]
    return args[i] if len(args) > i else default


class Node:
    """One recorded call: ``kind`` ('window', 'tconv', 'pad', 'resample', 'same'), per-axis geometry,
    the nodes it read, its output spatial size."""

    __slots__ = ("kind", "geo", "inputs", "hw", "__weakref__")

    def __init__(self, kind, geo, inputs, hw):
        self.kind, self.geo, self.inputs, self.hw = kind, geo, inputs, hw


def _hw(t):
    return tuple(int(v) for v in t.shape[-2:]) if t.dim() >= 2 else None


def _geometry(name, args, kwargs, x, out):
    """(kind, per-axis geometry) of a call reading tracked tensor ``x`` and producing ``out``."""
    if name == "conv2d" or name in ("max_pool2d", "avg_pool2d", "max_pool2d_with_indices"):
        if name == "conv2d":
            k = tuple(int(v) for v in _arg(args, kwargs, 1, "weight", None).shape[-2:])
            s, p = _pair(_arg(args, kwargs, 3, "stride", 1)), _pair(_arg(args, kwargs, 4, "padding", 0))
            d = _pair(_arg(args, kwargs, 5, "dilation", 1))
        else:
            k = _pair(_arg(args, kwargs, 1, "kernel_size", 1))
            s = _arg(args, kwargs, 2, "stride", None)
            s = k if s is None or s in ([], ()) else _pair(s)
            p = _pair(_arg(args, kwargs, 3, "padding", 0))
            d = _pair(_arg(args, kwargs, 4, "dilation", 1)) if "max" in name else (1, 1)
        if p is None:  # padding='same' (stride 1): total (k - 1) * d, left half rounded down
            p = tuple((k[a] - 1) * d[a] // 2 for a in range(2))
        return "window", [(k[a], s[a], p[a], d[a]) for a in range(2)]
    if name == "conv_transpose2d":
        k = tuple(int(v) for v in _arg(args, kwargs, 1, "weight", None).shape[-2:])
        s, p = _pair(_arg(args, kwargs, 3, "stride", 1)), _pair(_arg(args, kwargs, 4, "padding", 0))
        d = _pair(_arg(args, kwargs, 7, "dilation", 1))
        return "tconv", [(k[a], s[a], p[a], d[a]) for a in range(2)]
    hin, hout = _hw(x), (_hw(out) if hasattr(out, "dim") else None)
    if name == "pad":
        pads = list(_arg(args, kwargs, 1, "pad", ())) + [0, 0, 0, 0]
        return "pad", [pads[2], pads[0]]  # (top, left): F.pad lists the last axis first
    if hin and hout and x.dim() == 4 and out.dim() == 4 and hin != hout and \
            all(a % b == 0 or b % a == 0 for a, b in zip(hin, hout) if min(a, b) > 0):
        return "resample", [(hin[a], hout[a]) for a in range(2)]
    return "same", None


def _make_mode():
    from torch.overrides import TorchFunctionMode

    class GraphMode(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.of = {}  # id(tensor) -> (weakref to the tensor, node)
            self.nodes = []

        def node(self, t):
            v = self.of.get(id(t))
            return v[1] if v is not None and v[0]() is t else None

        def put(self, t, node):
            self.of[id(t)] = (weakref.ref(t), node)

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            ins = [(t, n) for t in _tensors((args, kwargs), []) for n in [self.node(t)] if n is not None]
            if not ins:
                return out
            outs = _tensors(out, [])
            kind, geo = _geometry(getattr(func, "__name__", ""), args, kwargs, ins[0][0], outs[0] if outs else None)
            nd = Node(kind, geo, [n for _t, n in ins] if kind == "same" else [ins[0][1]],
                      _hw(outs[0]) if outs else None)
            self.nodes.append(nd)
            for o in outs:
                self.put(o, nd)
            return out

    return GraphMode()


def _back(node, iv):
    """Input-cell intervals per axis read by ``node``'s output cells ``iv`` = [(lo, hi), (lo, hi)]."""
    if node.kind == "window":
        return [(lo * s - p, hi * s - p + (k - 1) * d) for (lo, hi), (k, s, p, d) in zip(iv, node.geo)]
    if node.kind == "tconv":  # output o = i * s - p + j * d for j in 0..k-1
        return [(math.ceil((lo + p - (k - 1) * d) / s), (hi + p) // s) for (lo, hi), (k, s, p, d) in zip(iv, node.geo)]
    if node.kind == "pad":
        return [(lo - off, hi - off) for (lo, hi), off in zip(iv, node.geo)]
    if node.kind == "resample":
        out = []
        for (lo, hi), (n_in, n_out) in zip(iv, node.geo):
            if n_out >= n_in:  # upsampling by f: cell o reads floor(o / f)
                f = n_out // n_in
                out.append((lo // f, hi // f))
            else:  # downsampling by f: cell o gathers the block [o f, o f + f - 1]
                f = n_in // n_out
                out.append((lo * f, hi * f + f - 1))
        return out
    return iv


def _field(mode, root, head_node, hw):
    """Hull of input pixels read by the centre cell of ``head_node`` (no clipping)."""
    iv = {id(head_node): [(hw[0] // 2, hw[0] // 2), (hw[1] // 2, hw[1] // 2)]}
    for nd in reversed(mode.nodes):
        cur = iv.get(id(nd))
        if cur is None:
            continue
        src = _back(nd, cur)
        for inp in nd.inputs:
            old = iv.get(id(inp))
            iv[id(inp)] = src if old is None else [(min(a[0], b[0]), max(a[1], b[1])) for a, b in zip(old, src)]
    r = iv.get(id(root))
    return None if r is None else [hi - lo + 1 for lo, hi in r]


def _num(v):
    v = float(v)
    return int(v) if v.is_integer() else v


def receptive_fields(model, imgsz=None) -> list:
    """Per head tensor of ``model.raw``: ``{"layer", "stride", "receptive_field", "shape"}`` (pixels; one
    number when both axes agree, else [h, w]). MMDetection models: one row per pyramid level (the widest
    field over the level's output groups). ``imgsz``: trace size (default the model's input size)."""
    import torch

    size = imgsz or getattr(model, "input_size", None) or [640, 640]
    h, w = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[-1]))
    p = next(model.parameters())
    x = torch.zeros(1, 3, h, w, dtype=p.dtype, device=p.device)
    mode = _make_mode()
    root = Node("input", None, [], (h, w))
    was = model.training
    model.eval()
    with torch.no_grad(), mode:
        mode.put(x, root)
        raw = model.raw(x)
    model.train(was)
    heads = _tensors(raw, [])
    rows = []
    for lab, t in zip(_head_labels(model, len(heads)), heads):
        nd = mode.node(t)
        if nd is None or t.dim() < 3:
            continue
        rf = _field(mode, root, nd, _hw(t))
        st = [h / t.shape[-2], w / t.shape[-1]]
        rows.append({"layer": lab, "stride": _num(st[0]) if st[0] == st[1] else [_num(v) for v in st],
                     "receptive_field": rf[0] if rf[0] == rf[1] else rf, "shape": list(t.shape[1:])})
    fam = lookup(model)
    if fam is not None and fam.raw_layout == "groups":  # one row per level: the widest field of its groups
        by = {}
        for r in rows:
            key = str(r["stride"])
            wide = lambda v: max(v) if isinstance(v, list) else v  # noqa: E731
            if key not in by:
                by[key] = dict(r, layer=f"level{len(by)}")
            elif wide(r["receptive_field"]) > wide(by[key]["receptive_field"]):
                by[key] = dict(r, layer=by[key]["layer"])
        rows = list(by.values())
    return rows


def _head_labels(model, n):
    if getattr(model, "head_indices", None) and len(model.head_indices) == n:
        return [int(i) for i in model.head_indices]  # Darknet: the head layer each tensor feeds
    if hasattr(model, "detect_index"):
        return [f"{model.detect_index}.{k}" for k in range(n)]  # YOLOv5: Detect layer, level k
    return [f"out{k}" for k in range(n)]
