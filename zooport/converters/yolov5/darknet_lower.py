"""Lowering of a native YOLOv5 model to a Darknet layer list (structure only, no tensor values).

:func:`lower` walks ``YOLOv5Model.model`` in YOLOv5's execution order and emits Darknet sections:

* ``Conv`` (conv + BN + act) -> ``[convolutional] batch_normalize=1``; a fused Conv (conv with bias, no
  BN) or a plain ``nn.Conv2d`` -> ``[convolutional]`` without BN (Darknet always stores biases: a
  bias-free plain conv gets zeros). Kernel ``size``/``stride``; ``pad=1`` when the padding is size/2 of
  an odd kernel, else ``padding=N`` (the v6.0+ 6x6/2 stem: ``padding=2``). A (1, k) / (k, 1) kernel
  (CrossConv of C3x) is embedded centred in a k x k kernel whose other rows/columns are zero, with
  ``stride_x``/``stride_y``; Darknet computes the same sums.
* ``Focus`` -> ``[reorg3d] stride=2`` + the conv with its input channels permuted (:func:`focus_perm`).
* Bottleneck / CrossConv -> convs + ``[shortcut] from=`` ; C3 / C3x / C3Ghost / BottleneckCSP / GhostConv /
  GhostBottleneck / SPP / SPPF -> convs, ``[route]``, ``[shortcut]``, ``[maxpool] stride=1``.
  BottleneckCSP's BN + activation on ``cat(cv3, cv2)`` is per channel, so it is carried exactly by cv3
  (BN channels [0, c_)) and cv2 (channels [c_, 2c_)) as two batch-normalised convs.
* ``nn.Upsample`` (nearest, integer factor) -> ``[upsample] stride=``; ``Concat`` -> ``[route] layers=``;
  ``nn.MaxPool2d`` -> ``[maxpool]`` (Darknet ``padding`` = 2 x PyTorch's); ``nn.Identity`` -> nothing.
* ``Detect`` -> per level a ``[route]`` to its input (when it is not the previous layer), a 1x1
  ``[convolutional]`` with bias and ``activation=logistic``, and ``[yolo]`` with ``new_coords=1
  scale_x_y=2.0``, so Darknet decodes ``xy = (2 sigma - 0.5 + grid) * stride``, ``wh = (2 sigma)^2 * anchor``.
  Heads come last, in Detect's level order, so Darknet's output rows are in YOLOv5's order.

Anything else (C3TR's transformer, Contract/Expand, ConvTranspose2d, MixConv2d, Hardswish, dilation ...)
raises :class:`~zooport.errors.UnsupportedError` naming the YOLOv5 layer.

Every ``[convolutional]`` gets a :class:`ConvBinding`: which YOLOv5 tensors fill it and how, used in both
directions by :mod:`zooport.converters.yolov5.to_darknet`.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ...errors import UnsupportedError
from ...model_defs.yolov5 import blocks as B

# activation module class name -> Darknet activation (only the exact equivalents)
_ACTS = {"SiLU": "swish", "Identity": "linear", "ReLU": "relu", "Sigmoid": "logistic", "Tanh": "tanh",
         "Mish": "mish"}


@dataclass
class ConvBinding:
    """The YOLOv5 tensors of one Darknet ``[convolutional]``.

    ``weight``: key of the (O, I/g, kh, kw) conv weight; ``bias``: key of the conv bias or None;
    ``bn``: key prefix of the BatchNorm2d or None, ``bn_slice`` the channels of it this conv carries and
    ``eps`` its eps; ``perm``: Darknet input channel d reads YOLOv5 input channel ``perm[d]`` (Focus), or
    None; ``kernel`` (kh, kw) is embedded centred in Darknet's ``size`` x ``size`` kernel.
    """

    weight: str
    bias: str | None
    bn: str | None
    bn_slice: tuple[int, int] | None
    eps: float
    perm: list[int] | None
    kernel: tuple[int, int]
    size: int
    filters: int


@dataclass
class HeadBinding:
    """One ``[yolo]`` layer: Detect's level ``level`` with YOLOv5 anchors key ``anchors`` (grid units)."""

    layer: int
    level: int
    anchors: str
    stride: float


def focus_perm(c: int) -> list[int]:
    """Input-channel permutation from Darknet's ``[reorg3d] stride=2`` to YOLOv5's Focus concatenation.

    Darknet's reorg_cpu (called by reorg3d with the output's w, h, c and forward=0) writes output channel
    ``k = (dy*2 + dx)*c + ch`` from input pixel ``(ch, 2y + dy, 2x + dx)``. Focus concatenates the slices
    ``(dy, dx) = (0,0), (1,0), (0,1), (1,1)``: block ``dx*2 + dy``. Darknet channel d therefore holds
    Focus channel ``perm[d]``; the conv after it takes ``weight[:, perm]``.
    """
    perm = []
    for blk in range(4):
        dy, dx = divmod(blk, 2)
        perm += [(dx * 2 + dy) * c + ch for ch in range(c)]
    return perm


def darknet_activation(act, where: str) -> str:
    """Darknet's name for a YOLOv5 activation module (None = linear); UnsupportedError otherwise."""
    if act is None:
        return "linear"
    name = type(act).__name__
    if name == "LeakyReLU":
        if float(act.negative_slope) == 0.1:
            return "leaky"
        raise UnsupportedError(f"{where}: LeakyReLU({act.negative_slope}) has no Darknet equivalent "
                               f"(Darknet's leaky slope is fixed at 0.1)")
    if name in _ACTS:
        return _ACTS[name]
    hint = " (YOLOv5 v3.1's activation; Darknet has no hard-swish)" if name == "Hardswish" else ""
    raise UnsupportedError(f"{where}: activation {name}{hint} cannot be expressed in Darknet; expected "
                           f"SiLU, LeakyReLU(0.1), Identity, ReLU, Sigmoid, Tanh or Mish")


class Lowering:
    """The Darknet network of a YOLOv5Model: ``sections`` [(type, {key: value})] after ``[net]``,
    ``convs`` {darknet layer: ConvBinding}, ``heads`` [HeadBinding] in Detect order."""

    def __init__(self, model):
        self.model = model
        self.sections: list[tuple[str, dict]] = []
        self.convs: dict[int, ConvBinding] = {}
        self.heads: list[HeadBinding] = []
        self.cur = -1   # the Darknet layer whose output the next section reads implicitly (-1: the image)
        self._path = {id(m): name for name, m in model.named_modules()}

    # -- emission ------------------------------------------------------------------------------------
    def emit(self, kind: str, opts: dict) -> int:
        self.sections.append((kind, opts))
        self.cur = len(self.sections) - 1
        return self.cur

    def _refs(self, idxs, absolute: bool) -> str:
        i = len(self.sections)
        return ", ".join(str(j if absolute and j != i - 1 else j - i) for j in idxs)

    def goto(self, src: int, where: str) -> None:
        """Make ``src`` the implicit input of the next section (a one-layer [route] when needed)."""
        if src == self.cur:
            return
        if src < 0:
            raise UnsupportedError(f"{where}: reads the network input after other layers ran; Darknet's "
                                   f"[route] cannot name the input")
        self.emit("route", {"layers": self._refs([src], absolute=True)})

    def route(self, srcs, absolute=False) -> int:
        if any(s < 0 for s in srcs):
            raise UnsupportedError("a concatenation reads the network input; Darknet's [route] cannot name it")
        return self.emit("route", {"layers": self._refs(srcs, absolute)})

    def shortcut(self, a: int, b: int) -> int:
        """a + b (then linear): Darknet adds its input (the previous layer) and ``from``."""
        if self.cur not in (a, b):
            self.goto(a, "shortcut")
        other = b if self.cur == a else a
        return self.emit("shortcut", {"from": self._refs([other], absolute=False), "activation": "linear"})

    def maxpool(self, src: int, pool, where: str) -> int:
        k, s, p = (_single(pool.kernel_size), _single(pool.stride), _single(pool.padding))
        if _single(pool.dilation) != 1 or pool.ceil_mode or None in (k, s, p):
            raise UnsupportedError(f"{where}: MaxPool2d{(pool.kernel_size, pool.stride, pool.padding)} with "
                                   f"dilation/ceil_mode/non-square windows cannot be expressed in Darknet")
        self.goto(src, where)
        # Darknet: window offset -padding/2, cells outside = -FLT_MAX, out = (w + padding - size)/stride + 1
        return self.emit("maxpool", {"size": k, "stride": s, "padding": 2 * p})

    def conv(self, src: int, conv: nn.Conv2d, bn, act, where: str, *, bn_slice=None, perm=None,
             activation: str | None = None) -> int:
        kh, kw = conv.kernel_size
        sh, sw = conv.stride
        if isinstance(conv.padding, str) or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
            raise UnsupportedError(f"{where}: Conv2d with padding={conv.padding!r}, dilation={conv.dilation}, "
                                   f"padding_mode={conv.padding_mode!r} cannot be expressed in Darknet")
        ph, pw = conv.padding
        size = max(kh, kw)
        pads = {ph + (size - kh) // 2, pw + (size - kw) // 2}
        if (size - kh) % 2 or (size - kw) % 2 or len(pads) != 1:
            raise UnsupportedError(f"{where}: Conv2d kernel {conv.kernel_size} padding {conv.padding} cannot be "
                                   f"written as one square Darknet kernel with one padding")
        pad = pads.pop()
        self.goto(src, where)
        opts: dict = {}
        if bn is not None:
            opts["batch_normalize"] = 1
        n = conv.out_channels
        opts.update(filters=n, size=size)
        if sh == sw:
            opts["stride"] = sh
        else:
            opts.update(stride_x=sw, stride_y=sh)
        if size % 2 and pad == size // 2:
            opts["pad"] = 1
        else:
            opts["padding"] = pad
        if conv.groups != 1:
            opts["groups"] = conv.groups
        opts["activation"] = activation or darknet_activation(act, where)
        i = self.emit("convolutional", opts)
        path = self._path[id(conv)]
        bnp = self._path[id(bn)] if bn is not None else None
        self.convs[i] = ConvBinding(
            weight=f"{path}.weight", bias=f"{path}.bias" if conv.bias is not None else None, bn=bnp,
            bn_slice=bn_slice or ((0, n) if bn is not None else None), eps=float(bn.eps) if bn is not None else 0.0,
            perm=perm, kernel=(kh, kw), size=size, filters=n)
        return i

    # -- blocks ----------------------------------------------------------------------------------------
    def where(self, m) -> str:
        return f"YOLOv5 layer {self._path.get(id(m), '?')} ({type(m).__name__})"

    def block(self, m, src: int) -> int:
        """Lower module ``m`` reading Darknet layer ``src``; returns the Darknet layer of its output."""
        if isinstance(m, nn.Sequential):
            for sub in m:
                src = self.block(sub, src)
            return src
        rule = _RULES.get(type(m))
        if rule is None:
            raise UnsupportedError(f"{self.where(m)}: no Darknet equivalent; exportable blocks are "
                                   f"{', '.join(sorted(c.__name__ for c in _RULES))} and Detect")
        return rule(self, m, src)

    def convblock(self, m: B.Conv, src: int, **kw) -> int:
        bn = None if isinstance(m.bn, nn.Identity) else m.bn
        return self.conv(src, m.conv, bn, m.act, self.where(m), **kw)


def _single(v):
    if isinstance(v, (tuple, list)):
        return v[0] if len(set(v)) == 1 else None
    return v


def _focus(lw: Lowering, m, src):
    lw.goto(src, lw.where(m))
    r = lw.emit("reorg3d", {"stride": 2})
    return lw.convblock(m.conv, r, perm=focus_perm(m.conv.conv.in_channels // 4))


def _bottleneck(lw: Lowering, m, src):  # Bottleneck and CrossConv
    y = lw.block(m.cv2, lw.block(m.cv1, src))
    return lw.shortcut(y, src) if m.add else y


def _c3(lw: Lowering, m, src):  # C3, C3x, C3Ghost, C3SPP
    a = lw.block(m.m, lw.block(m.cv1, src))
    b = lw.block(m.cv2, src)
    return lw.block(m.cv3, lw.route([a, b]))


def _bottleneck_csp(lw: Lowering, m, src):
    c_ = m.cv3.out_channels
    where = lw.where(m)
    a = lw.block(m.m, lw.block(m.cv1, src))
    # act(bn(cat(y1, y2))) is per channel: y1 = cv3(...) takes BN channels [0, c_), y2 = cv2(x) [c_, 2c_)
    y1 = lw.conv(a, m.cv3, m.bn, m.act, where + " cv3", bn_slice=(0, c_))
    y2 = lw.conv(src, m.cv2, m.bn, m.act, where + " cv2", bn_slice=(c_, 2 * c_))
    return lw.block(m.cv4, lw.route([y1, y2]))


def _ghostconv(lw: Lowering, m, src):
    a = lw.block(m.cv1, src)
    return lw.route([a, lw.block(m.cv2, a)])


def _ghost_bottleneck(lw: Lowering, m, src):
    a = lw.block(m.conv, src)
    b = src if isinstance(m.shortcut, nn.Identity) else lw.block(m.shortcut, src)
    return lw.shortcut(a, b)


def _spp(lw: Lowering, m, src):
    a = lw.block(m.cv1, src)
    pools = [lw.maxpool(a, p, lw.where(m)) for p in m.m]
    return lw.block(m.cv2, lw.route([a] + pools))


def _sppf(lw: Lowering, m, src):
    ys = [lw.block(m.cv1, src)]
    for _ in range(3):
        ys.append(lw.maxpool(ys[-1], m.m, lw.where(m)))
    return lw.block(m.cv2, lw.route(ys))


def _upsample(lw: Lowering, m, src):
    sf = m.scale_factor
    sf = _single(sf) if isinstance(sf, (tuple, list)) else sf
    if m.size is not None or m.mode != "nearest" or sf is None or float(sf) != int(sf) or int(sf) < 1:
        raise UnsupportedError(f"{lw.where(m)}: Upsample(size={m.size}, scale_factor={m.scale_factor}, "
                               f"mode={m.mode!r}): Darknet's [upsample] is nearest by an integer factor")
    lw.goto(src, lw.where(m))
    return lw.emit("upsample", {"stride": int(sf)})


def _maxpool(lw: Lowering, m, src):
    return lw.maxpool(src, m, lw.where(m))


def _plain_conv(lw: Lowering, m, src):
    return lw.conv(src, m, None, None, lw.where(m))


def _identity(lw: Lowering, m, src):
    return src


_RULES = {
    B.Conv: Lowering.convblock, B.Focus: _focus, B.Bottleneck: _bottleneck, B.CrossConv: _bottleneck,
    B.C3: _c3, B.BottleneckCSP: _bottleneck_csp, B.GhostConv: _ghostconv, B.GhostBottleneck: _ghost_bottleneck,
    B.SPP: _spp, B.SPPF: _sppf, nn.Upsample: _upsample, nn.MaxPool2d: _maxpool, nn.Conv2d: _plain_conv,
    nn.Identity: _identity,
}


def lower(model) -> Lowering:
    """The Darknet sections and bindings of a :class:`~zooport.model_defs.yolov5.model.YOLOv5Model`."""
    lw = Lowering(model)
    det_i = model.detect_index
    det = model.model[det_i]
    det_from = [j if j != -1 else det_i - 1 for j in model.froms[det_i]]
    # v1.0: the head convs are separate nn.Conv2d layers read only by Detect; they become the logistic
    # head convs, emitted with the heads
    head_convs = {}
    if det.m is None:
        for j in det_from:
            m = model.model[j]
            if not isinstance(m, nn.Conv2d):
                raise UnsupportedError(f"{lw.where(det)}: input layer {j} is a {type(m).__name__}, expected the "
                                       f"head nn.Conv2d of a Detect without convs")
            head_convs[j] = m
    out: list = []
    for i, (m, f) in enumerate(zip(model.model, model.froms)):
        if i == det_i:
            break
        if i in head_convs:
            out.append(None)
            continue
        srcs = [f] if isinstance(f, int) else list(f)
        srcs = [(i - 1 if j == -1 else j) for j in srcs]
        for j in srcs:
            if j >= 0 and out[j] is None:
                raise UnsupportedError(f"{lw.where(m)}: reads head conv layer {j}, which Darknet fuses into "
                                       f"the head")
        dsrc = [out[j] if j >= 0 else -1 for j in srcs]
        if isinstance(m, B.Concat):
            if m.d != 1:
                raise UnsupportedError(f"{lw.where(m)}: Concat along dimension {m.d}; Darknet's [route] "
                                       f"concatenates channels (dimension 1)")
            out.append(lw.route(dsrc, absolute=True))
        elif len(dsrc) != 1:
            raise UnsupportedError(f"{lw.where(m)}: takes {len(dsrc)} inputs; only Concat and Detect may")
        else:
            out.append(lw.block(m, dsrc[0]))
    det_where = lw.where(det)
    anchors_key = f"{lw._path[id(det)]}.anchors"
    mask_all = det.nl * det.na
    pix = det.anchors.detach().float().cpu() if not det.anchors.is_meta else None
    anchor_txt = ", ".join(_num(float(v) * det.stride[lv // det.na]) for lv, pair in
                           enumerate(pix.reshape(-1, 2).tolist()) for v in pair) if pix is not None else None
    for level, j in enumerate(det_from):
        if det.m is not None:
            lw.conv(out[j], det.m[level], None, None, f"{det_where} level {level}", activation="logistic")
        else:
            src = [s for s in ([model.froms[j]] if isinstance(model.froms[j], int) else model.froms[j])]
            src = [(j - 1 if s == -1 else s) for s in src]
            lw.conv(out[src[0]], head_convs[j], None, None, f"{lw.where(head_convs[j])}", activation="logistic")
        mask = ", ".join(str(level * det.na + a) for a in range(det.na))
        y = lw.emit("yolo", {"mask": mask, "anchors": anchor_txt, "classes": det.nc, "num": mask_all,
                             "new_coords": 1, "scale_x_y": "2.0"})
        lw.heads.append(HeadBinding(layer=y, level=level, anchors=anchors_key, stride=float(det.stride[level])))
    return lw


def _num(v: float) -> str:
    """Shortest text that parses back to exactly ``v`` (integers without a decimal point)."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def render_cfg(lw: Lowering, width: int, height: int, comment: str = "") -> str:
    """The cfg text: ``[net]`` (input size, channels=3, letter_box=1) then every section."""
    lines = [f"# {ln}" for ln in comment.splitlines()] if comment else []
    lines += ["[net]", "batch=1", "subdivisions=1", f"width={width}", f"height={height}", "channels=3",
              "letter_box=1", ""]
    for i, (kind, opts) in enumerate(lw.sections):
        lines.append(f"# layer {i}")
        lines.append(f"[{kind}]")
        lines += [f"{k}={v}" for k, v in opts.items()]
        lines.append("")
    return "\n".join(lines)
