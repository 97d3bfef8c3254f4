"""Native definitions of the blocks Ultralytics' YOLOv8 / YOLO11 detection yamls build.

Submodule names equal Ultralytics' (``cv1``, ``m``, ``qkv``, ``cv2``/``cv3``/``dfl``
of ``Detect`` ...), so a native state dict has exactly Ultralytics' keys and
shapes. Blocks YOLOv5 already has with the same layout and forward (``Conv``,
``DWConv``, ``SPPF``, ``Concat``, ``C3`` as the body of ``C3k``) are reused from
:mod:`zooport.model_defs.yolov5.blocks`; settings (default activation, BN eps)
come from its :class:`~zooport.model_defs.yolov5.blocks.BuildOptions`.

Every constructor takes explicit sizes (hidden widths, kernels, residual flags)
rather than Ultralytics' ratios, so a model can be rebuilt exactly from what a
pickled module tree shows (see :mod:`zooport.converters.ultralytics.load`).
Tensors are (B, C, H, W).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..yolov5.blocks import C3, Conv, DWConv


class Bottleneck(nn.Module):
    """``cv2(cv1(x))`` (kernels ``k``, hidden width ``c_``), plus ``x`` when ``add``."""

    def __init__(self, c1, c2, c_, k=(3, 3), add=True, g=1, *, opt):
        super().__init__()
        self.cv1 = Conv(c1, c_, k[0], 1, opt=opt)
        self.cv2 = Conv(c_, c2, k[1], 1, g=g, opt=opt)
        self.add = bool(add) and c1 == c2

    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))


def C3k(c1, c2, c_, blocks, *, opt):
    """Ultralytics' ``C3k``: a YOLOv5 ``C3`` (hidden ``c_``) whose ``m`` is a Sequential of ``blocks``
    (each a Bottleneck spec dict, see :func:`make_inner`)."""
    # C3 derives its hidden width as int(c2 * e): the half-unit keeps that exact for any c_
    return C3(c1, c2, 1, e=(c_ + 0.5) / c2, opt=opt,
              inner=lambda _c: nn.Sequential(*(make_inner(b, opt) for b in blocks)))


def make_inner(spec: dict, opt) -> nn.Module:
    """An inner block of C2f / C3k2 / C3k / C2fCIB from its spec:
    ``{"type": "Bottleneck", "c1", "c2", "c_", "k": [k1, k2], "g", "add"}``,
    ``{"type": "C3k", "c1", "c2", "c_", "blocks": [...]}``,
    ``{"type": "BottleneckPSA", "bottleneck": {...}, "psa": {PSABlock spec + "c"}}`` (8.4's ``C3k2(attn=True)``:
    ``Sequential(Bottleneck, PSABlock)``) or ``{"type": "CIB", ...}`` (YOLOv10)."""
    t = spec["type"]
    if t == "C3k":
        return C3k(spec["c1"], spec["c2"], spec["c_"], spec["blocks"], opt=opt)
    if t == "BottleneckPSA":
        b = spec["psa"]
        return nn.Sequential(make_inner(spec["bottleneck"], opt),
                             PSABlock(b["c"], b["num_heads"], b["key_dim"], b["head_dim"], b["hidden"], b["add"],
                                      opt=opt))
    if t == "CIB":
        return CIB(spec["c1"], spec["c2"], spec["c_"], spec["lk"], spec["add"], opt=opt)
    return Bottleneck(spec["c1"], spec["c2"], spec["c_"], tuple(spec["k"]), spec["add"], spec.get("g", 1), opt=opt)


class SPPF(nn.Module):
    """Ultralytics' SPPF: ``cv1`` (1x1 to c1/2; no activation in 8.4 yamls, ``cv1_act``), ``n`` chained
    k x k max pools, ``cv2(cat(...))``, plus ``x`` when ``add`` (YOLO26's ``SPPF(..., shortcut=True)``)."""

    def __init__(self, c1, c2, k=5, n=3, add=False, cv1_act=True, *, opt):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1, act=cv1_act, opt=opt)
        self.cv2 = Conv(c_ * (n + 1), c2, 1, 1, opt=opt)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)
        self.n, self.add = int(n), bool(add) and c1 == c2

    def forward(self, x):
        y = [self.cv1(x)]
        for _ in range(self.n):
            y.append(self.m(y[-1]))
        y = self.cv2(torch.cat(y, 1))
        return y + x if self.add else y


class C2f(nn.Module):
    """CSP with 2 convs (C2f, and C3k2 whose blocks may be C3k).

    ``y = cv1(x).chunk(2)``; each block appends ``m_i(y[-1])``; out ``cv2(cat(y))``.
    ``c`` is the hidden width (cv1 outputs 2c).
    """

    def __init__(self, c1, c2, c, blocks, *, opt):
        super().__init__()
        self.c = c
        self.cv1 = Conv(c1, 2 * c, 1, 1, opt=opt)
        self.cv2 = Conv((2 + len(blocks)) * c, c2, 1, opt=opt)
        self.m = nn.ModuleList(make_inner(b, opt) for b in blocks)

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions of a (B, dim, H, W) map (YOLO11's PSA).

    ``qkv`` 1x1 conv to heads*(2*key_dim + head_dim) channels, laid out per head as
    q (key_dim), k (key_dim), v (head_dim); ``attn = softmax(q^T k * key_dim^-0.5)``;
    out ``proj(v attn^T + pe(v))`` with ``pe`` a depthwise 3x3 positional conv.
    """

    def __init__(self, dim, num_heads, key_dim, head_dim, *, opt):
        super().__init__()
        self.num_heads, self.key_dim, self.head_dim = num_heads, key_dim, head_dim
        self.scale = key_dim ** -0.5
        self.qkv = Conv(dim, num_heads * (2 * key_dim + head_dim), 1, act=False, opt=opt)
        self.proj = Conv(dim, dim, 1, act=False, opt=opt)
        self.pe = Conv(dim, dim, 3, 1, g=dim, act=False, opt=opt)

    def forward(self, x):
        b, c, h, w = x.shape
        n = h * w
        q, k, v = self.qkv(x).view(b, self.num_heads, 2 * self.key_dim + self.head_dim, n).split(
            [self.key_dim, self.key_dim, self.head_dim], dim=2)
        attn = ((q * self.scale).transpose(-2, -1) @ k).softmax(dim=-1)  # 8.4's order of the scaling
        x = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(x)


class PSABlock(nn.Module):
    """``x + attn(x)`` then ``x + ffn(x)`` (residuals when ``add``); ffn = Conv(c, hidden, 1), Conv(hidden, c, 1, act=False)."""

    def __init__(self, c, num_heads, key_dim, head_dim, hidden, add=True, *, opt):
        super().__init__()
        self.attn = Attention(c, num_heads, key_dim, head_dim, opt=opt)
        self.ffn = nn.Sequential(Conv(c, hidden, 1, opt=opt), Conv(hidden, c, 1, act=False, opt=opt))
        self.add = bool(add)

    def forward(self, x):
        x = x + self.attn(x) if self.add else self.attn(x)
        return x + self.ffn(x) if self.add else self.ffn(x)


class C2PSA(nn.Module):
    """``a, b = cv1(x).split(c)``; ``b = m(b)`` (PSABlocks); out ``cv2(cat(a, b))``."""

    def __init__(self, c1, c2, c, blocks, *, opt):
        super().__init__()
        self.c = c
        self.cv1 = Conv(c1, 2 * c, 1, 1, opt=opt)
        self.cv2 = Conv(2 * c, c2, 1, opt=opt)
        self.m = nn.Sequential(*(PSABlock(c, b["num_heads"], b["key_dim"], b["head_dim"], b["hidden"], b["add"],
                                          opt=opt) for b in blocks))

    def forward(self, x):
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), 1))


class DFL(nn.Module):
    """Distribution focal loss integral: (B, 4*reg_max, N) logits -> (B, 4, N) expected distance per side.

    A frozen 1x1 conv with weights 0..reg_max-1 (a parameter, as in Ultralytics, so
    the state dict and parameter counts match).
    """

    def __init__(self, reg_max=16):
        super().__init__()
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        with torch.no_grad():
            if not self.conv.weight.is_meta:
                self.conv.weight.copy_(torch.arange(reg_max, dtype=torch.float32).view(1, reg_max, 1, 1))
        self.reg_max = reg_max

    def forward(self, x):
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.reg_max, a).transpose(2, 1).softmax(1)).view(b, 4, a)


class Detect(nn.Module):
    """Ultralytics' anchor-free decoupled head.

    Per level ``cv2[i]`` (box: Conv 3x3, Conv 3x3, Conv2d 1x1 to 4*reg_max) and
    ``cv3[i]`` (classes, to nc). ``head`` selects the class branch generation:
    ``"v8"`` Conv 3x3, Conv 3x3, Conv2d 1x1; ``"v11"`` (DWConv 3x3, Conv 1x1) twice,
    then Conv2d 1x1 (also YOLOv10's ``v10Detect``, whose depthwise ``Conv(x, x, 3, g=x)`` is the same
    layer). ``c2``/``c3`` are the box/class branch widths. ``reg_max`` 1 (YOLO26): no DFL, the 4 box
    channels are the distances themselves. ``end2end`` (YOLO26, YOLOv10): a second, one-to-one copy of
    both branches, ``one2one_cv2`` / ``one2one_cv3``, read by :meth:`heads` with ``branch="one2one"``.
    """

    def __init__(self, nc, ch, c2, c3, reg_max=16, head="v11", end2end=False, *, stride, opt):
        super().__init__()
        self.nc, self.nl, self.reg_max, self.head = nc, len(ch), reg_max, head
        self.no = nc + 4 * reg_max
        self.stride = [float(s) for s in stride]  # traced as constants
        self.cv2 = nn.ModuleList(nn.Sequential(Conv(x, c2, 3, opt=opt), Conv(c2, c2, 3, opt=opt),
                                               nn.Conv2d(c2, 4 * reg_max, 1)) for x in ch)
        if head == "v8":
            self.cv3 = nn.ModuleList(nn.Sequential(Conv(x, c3, 3, opt=opt), Conv(c3, c3, 3, opt=opt),
                                                   nn.Conv2d(c3, nc, 1)) for x in ch)
        elif head == "v11":
            self.cv3 = nn.ModuleList(nn.Sequential(
                nn.Sequential(DWConv(x, x, 3, opt=opt), Conv(x, c3, 1, opt=opt)),
                nn.Sequential(DWConv(c3, c3, 3, opt=opt), Conv(c3, c3, 1, opt=opt)),
                nn.Conv2d(c3, nc, 1)) for x in ch)
        else:
            raise ValueError(f"unknown Detect head generation {head!r}")
        self.dfl = DFL(reg_max) if reg_max > 1 else nn.Identity()
        self.end2end = bool(end2end)
        if end2end:
            self.one2one_cv2 = copy.deepcopy(self.cv2)
            self.one2one_cv3 = copy.deepcopy(self.cv3)

    def heads(self, xs: list, branch: str = "one2many") -> list:
        """Per level (B, 4*reg_max + nc, H, W): box distribution logits then class logits, of the
        one-to-many (``cv2``/``cv3``) or, for end-to-end heads, the one-to-one branch."""
        if branch == "one2one":
            if not self.end2end:
                raise ValueError("this Detect head has no one-to-one branch")
            cv2, cv3 = self.one2one_cv2, self.one2one_cv3
        else:
            cv2, cv3 = self.cv2, self.cv3
        return [torch.cat((cv2[i](x), cv3[i](x)), 1) for i, x in enumerate(xs)]

    def anchors_strides(self, outs: list):
        """Cell centres (2, N) in grid units (offset 0.5) and per-anchor strides (1, N), from the shapes."""
        pts, strs = [], []
        for i, p in enumerate(outs):
            h, w = p.shape[2:]
            sy = torch.arange(h, dtype=p.dtype, device=p.device) + 0.5
            sx = torch.arange(w, dtype=p.dtype, device=p.device) + 0.5
            yy, xx = torch.meshgrid(sy, sx, indexing="ij")
            pts.append(torch.stack((xx, yy), 0).view(2, -1))
            strs.append(torch.full((1, h * w), self.stride[i], dtype=p.dtype, device=p.device))
        return torch.cat(pts, 1), torch.cat(strs, 1)

    def decode(self, outs: list, xywh: bool = True) -> torch.Tensor:
        """Ultralytics' decoded (B, 4 + nc, N): cx, cy, w, h (``xywh``; else x1, y1, x2, y2, as the
        one-to-one branch decodes) in input pixels, then sigmoid class scores."""
        b = outs[0].shape[0]
        x = torch.cat([p.view(b, self.no, -1) for p in outs], 2)
        box, cls = x.split((4 * self.reg_max, self.nc), 1)
        anchors, strides = self.anchors_strides(outs)
        return torch.cat((dist2bbox(self.dfl(box), anchors.unsqueeze(0), xywh=xywh) * strides, cls.sigmoid()), 1)


def dist2bbox(distance: torch.Tensor, anchor_points: torch.Tensor, dim: int = 1, xywh: bool = True) -> torch.Tensor:
    """(left, top, right, bottom) distances from anchor points -> (cx, cy, w, h) or (x1, y1, x2, y2), along ``dim``."""
    lt, rb = distance.chunk(2, dim)
    x1y1 = anchor_points - lt
    x2y2 = anchor_points + rb
    if not xywh:
        return torch.cat((x1y1, x2y2), dim)
    return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), dim)


class RepVGGDW(nn.Module):
    """``SiLU(conv(x) + conv1(x))``: depthwise 7x7 and 3x3 convs (each conv + BN, no activation), unfused form."""

    def __init__(self, ed, *, opt):
        super().__init__()
        self.conv = Conv(ed, ed, 7, 1, 3, g=ed, act=False, opt=opt)
        self.conv1 = Conv(ed, ed, 3, 1, 1, g=ed, act=False, opt=opt)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.conv(x) + self.conv1(x))


class CIB(nn.Module):
    """Compact inverted block: ``cv1`` = Sequential(dw 3x3 c1, 1x1 to 2c_, RepVGGDW(2c_) when ``lk`` else
    dw 3x3, 1x1 to c2, dw 3x3 c2); plus ``x`` when ``add``."""

    def __init__(self, c1, c2, c_, lk=False, add=True, *, opt):
        super().__init__()
        self.cv1 = nn.Sequential(
            Conv(c1, c1, 3, g=c1, opt=opt), Conv(c1, 2 * c_, 1, opt=opt),
            RepVGGDW(2 * c_, opt=opt) if lk else Conv(2 * c_, 2 * c_, 3, g=2 * c_, opt=opt),
            Conv(2 * c_, c2, 1, opt=opt), Conv(c2, c2, 3, g=c2, opt=opt))
        self.add = bool(add) and c1 == c2

    def forward(self, x):
        return x + self.cv1(x) if self.add else self.cv1(x)
