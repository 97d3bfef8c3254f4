"""Native definitions of every block a YOLOv5 model yaml (v1.0 ... v7.0) may name.

Submodule names equal YOLOv5's (``conv``, ``bn``, ``act``, ``cv1``, ``m`` ...), so a
native state dict has exactly YOLOv5's keys and shapes. Tensors are (B, C, H, W).
Settings that YOLOv5 keeps outside the constructor arguments (the default
activation, BatchNorm eps/momentum set by ``initialize_weights``) come from a
:class:`BuildOptions` passed down explicitly, never from class attributes.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch
from torch import nn

from ...errors import ConfigError

_ACTS = {
    "SiLU": lambda p: nn.SiLU(),
    "LeakyReLU": lambda p: nn.LeakyReLU(float(p.get("negative_slope", 0.01))),
    "Hardswish": lambda p: nn.Hardswish(),
    "ReLU": lambda p: nn.ReLU(),
    "Sigmoid": lambda p: nn.Sigmoid(),
    "Mish": lambda p: nn.Mish(),
    "Tanh": lambda p: nn.Tanh(),
    "GELU": lambda p: nn.GELU(),
    "Identity": lambda p: nn.Identity(),
}


def make_act(spec: dict) -> nn.Module:
    """An activation module from a spec such as ``{"type": "LeakyReLU", "negative_slope": 0.1}``."""
    try:
        return _ACTS[spec["type"]](spec)
    except KeyError:
        raise ConfigError(f"unsupported activation {spec!r}; expected one of {sorted(_ACTS)}") from None


def act_spec(module: nn.Module) -> dict:
    """Inverse of :func:`make_act` for our own modules."""
    name = type(module).__name__
    if name == "LeakyReLU":
        return {"type": name, "negative_slope": float(module.negative_slope)}
    return {"type": name}


_ACT_EXPR = re.compile(r"^\s*(?:nn\.|torch\.nn\.)?(\w+)\(\s*(?:negative_slope\s*=\s*)?([0-9.eE+-]*)\s*(?:,\s*inplace\s*=\s*\w+\s*)?\)\s*$")


def parse_act_expr(expr: str) -> dict:
    """The yaml ``activation`` key (e.g. ``"nn.LeakyReLU(0.1)"``) as a spec, parsed, never evaluated."""
    m = _ACT_EXPR.match(str(expr))
    if not m or m.group(1) not in _ACTS:
        raise ConfigError(f"yaml key 'activation': unsupported expression {expr!r}; expected e.g. "
                          f"'nn.SiLU()', 'nn.LeakyReLU(0.1)', 'nn.Hardswish()'")
    spec = {"type": m.group(1)}
    if m.group(1) == "LeakyReLU":
        spec["negative_slope"] = float(m.group(2)) if m.group(2) else 0.01
    return spec


@dataclass
class BuildOptions:
    """Settings shared by every block of one model."""

    act: dict = field(default_factory=lambda: {"type": "SiLU"})  # default activation of Conv (act=True)
    csp_act: dict = field(default_factory=lambda: {"type": "SiLU"})  # BottleneckCSP's own activation
    bn_eps: float = 1e-3
    bn_momentum: float = 0.03

    def bn(self, c: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(c, eps=self.bn_eps, momentum=self.bn_momentum)


def autopad(k, p=None, d=1):
    """'Same' padding for odd kernels (YOLOv5's rule), int or per-dimension list."""
    if d > 1:
        k = d * (k - 1) + 1 if isinstance(k, int) else [d * (x - 1) + 1 for x in k]
    if p is None:
        p = k // 2 if isinstance(k, int) else [x // 2 for x in k]
    return p


class Conv(nn.Module):
    """Conv2d(bias=False) -> BatchNorm2d -> activation; ``act`` True = the model default."""

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, d=1, act=True, *, opt: BuildOptions):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p, d), groups=g, dilation=d, bias=False)
        self.bn = opt.bn(c2)
        self.act = make_act(opt.act) if act is True else (act if isinstance(act, nn.Module) else nn.Identity())

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))

    def fuse_(self) -> None:
        """Fold BN into the conv (y = s*(Wx - mean) + b, s = gamma / sqrt(var + eps)); bn -> Identity."""
        if isinstance(self.bn, nn.Identity):
            return
        conv, bn = self.conv, self.bn
        with torch.no_grad():
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            w = conv.weight * scale.view(-1, 1, 1, 1)
            b = bn.bias - bn.running_mean * scale
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                          conv.dilation, conv.groups, bias=True, device=w.device)
        fused.weight = nn.Parameter(w, requires_grad=False)
        fused.bias = nn.Parameter(b, requires_grad=False)
        self.conv, self.bn = fused, nn.Identity()

    def fused_structure_(self) -> None:
        """Give this block the fused layout (conv with bias, no BN) with uninitialised values."""
        c = self.conv
        self.conv = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, c.dilation,
                              c.groups, bias=True, device=c.weight.device)
        self.bn = nn.Identity()


def DWConv(c1, c2, k=1, s=1, d=1, act=True, *, opt):
    """Depth-wise conv: a Conv with groups = gcd(c1, c2)."""
    return Conv(c1, c2, k, s, g=math.gcd(c1, c2), d=d, act=act, opt=opt)


class Focus(nn.Module):
    """Space-to-depth (2x2 pixel slices concatenated: (B,C,H,W) -> (B,4C,H/2,W/2)) then Conv."""

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, act=True, *, opt):
        super().__init__()
        self.conv = Conv(c1 * 4, c2, k, s, p, g, act=act, opt=opt)

    def forward(self, x):
        return self.conv(torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1))


class Bottleneck(nn.Module):
    def __init__(self, c1, c2, shortcut=True, g=1, e=0.5, *, opt):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1, opt=opt)
        self.cv2 = Conv(c_, c2, 3, 1, g=g, opt=opt)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))


class CrossConv(nn.Module):
    """(1,k) then (k,1) convs, optional residual (C3x's inner block)."""

    def __init__(self, c1, c2, k=3, s=1, g=1, e=1.0, shortcut=False, *, opt):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, (1, k), (1, s), opt=opt)
        self.cv2 = Conv(c_, c2, (k, 1), (s, 1), g=g, opt=opt)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))


class BottleneckCSP(nn.Module):
    """CSP bottleneck of v1.0-v3.x: cv2/cv3 are plain convs; BN + activation on the concatenation."""

    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5, *, opt):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1, opt=opt)
        self.cv2 = nn.Conv2d(c1, c_, 1, 1, bias=False)
        self.cv3 = nn.Conv2d(c_, c_, 1, 1, bias=False)
        self.cv4 = Conv(2 * c_, c2, 1, 1, opt=opt)
        self.bn = opt.bn(2 * c_)
        self.act = make_act(opt.csp_act)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, e=1.0, opt=opt) for _ in range(n)))

    def forward(self, x):
        y1 = self.cv3(self.m(self.cv1(x)))
        y2 = self.cv2(x)
        return self.cv4(self.act(self.bn(torch.cat((y1, y2), 1))))


class C3(nn.Module):
    """CSP bottleneck with 3 Convs (v4.0+)."""

    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5, *, opt, inner=None):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1, opt=opt)
        self.cv2 = Conv(c1, c_, 1, 1, opt=opt)
        self.cv3 = Conv(2 * c_, c2, 1, opt=opt)
        self.m = inner(c_) if inner is not None else \
            nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, e=1.0, opt=opt) for _ in range(n)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


def C3x(c1, c2, n=1, shortcut=True, g=1, e=0.5, *, opt):
    return C3(c1, c2, n, shortcut, g, e, opt=opt, inner=lambda c_: nn.Sequential(
        *(CrossConv(c_, c_, 3, 1, g, 1.0, shortcut, opt=opt) for _ in range(n))))


def C3TR(c1, c2, n=1, shortcut=True, g=1, e=0.5, *, opt):
    return C3(c1, c2, n, shortcut, g, e, opt=opt, inner=lambda c_: TransformerBlock(c_, c_, 4, n, opt=opt))


def C3SPP(c1, c2, k=(5, 9, 13), n=1, shortcut=True, g=1, e=0.5, *, opt):
    return C3(c1, c2, n, shortcut, g, e, opt=opt, inner=lambda c_: SPP(c_, c_, k, opt=opt))


def C3Ghost(c1, c2, n=1, shortcut=True, g=1, e=0.5, *, opt):
    return C3(c1, c2, n, shortcut, g, e, opt=opt, inner=lambda c_: nn.Sequential(
        *(GhostBottleneck(c_, c_, opt=opt) for _ in range(n))))


class TransformerLayer(nn.Module):
    """x (L, B, C): self-attention + residual, then two bias-free linears + residual."""

    def __init__(self, c, num_heads):
        super().__init__()
        self.q = nn.Linear(c, c, bias=False)
        self.k = nn.Linear(c, c, bias=False)
        self.v = nn.Linear(c, c, bias=False)
        self.ma = nn.MultiheadAttention(embed_dim=c, num_heads=num_heads)
        self.fc1 = nn.Linear(c, c, bias=False)
        self.fc2 = nn.Linear(c, c, bias=False)

    def forward(self, x):
        x = self.ma(self.q(x), self.k(x), self.v(x))[0] + x
        return self.fc2(self.fc1(x)) + x


class TransformerBlock(nn.Module):
    """Optional Conv, learned position embedding (a Linear), transformer layers over H*W tokens."""

    def __init__(self, c1, c2, num_heads, num_layers, *, opt):
        super().__init__()
        self.conv = Conv(c1, c2, opt=opt) if c1 != c2 else None
        self.linear = nn.Linear(c2, c2)
        self.tr = nn.Sequential(*(TransformerLayer(c2, num_heads) for _ in range(num_layers)))
        self.c2 = c2

    def forward(self, x):
        if self.conv is not None:
            x = self.conv(x)
        b, _, h, w = x.shape
        p = x.flatten(2).permute(2, 0, 1)
        return self.tr(p + self.linear(p)).permute(1, 2, 0).reshape(b, self.c2, h, w)


class GhostConv(nn.Module):
    def __init__(self, c1, c2, k=1, s=1, g=1, act=True, *, opt):
        super().__init__()
        c_ = c2 // 2
        self.cv1 = Conv(c1, c_, k, s, None, g, act=act, opt=opt)
        self.cv2 = Conv(c_, c_, 5, 1, None, c_, act=act, opt=opt)

    def forward(self, x):
        y = self.cv1(x)
        return torch.cat((y, self.cv2(y)), 1)


class GhostBottleneck(nn.Module):
    def __init__(self, c1, c2, k=3, s=1, *, opt):
        super().__init__()
        c_ = c2 // 2
        self.conv = nn.Sequential(
            GhostConv(c1, c_, 1, 1, opt=opt),
            DWConv(c_, c_, k, s, act=False, opt=opt) if s == 2 else nn.Identity(),
            GhostConv(c_, c2, 1, 1, act=False, opt=opt))
        self.shortcut = nn.Sequential(DWConv(c1, c1, k, s, act=False, opt=opt),
                                      Conv(c1, c2, 1, 1, act=False, opt=opt)) if s == 2 else nn.Identity()

    def forward(self, x):
        return self.conv(x) + self.shortcut(x)


class SPP(nn.Module):
    """Spatial pyramid pooling: cat(x, maxpool_k(x) for k) between two Convs (v1.0-v5.0)."""

    def __init__(self, c1, c2, k=(5, 9, 13), *, opt):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1, opt=opt)
        self.cv2 = Conv(c_ * (len(k) + 1), c2, 1, 1, opt=opt)
        self.m = nn.ModuleList([nn.MaxPool2d(kernel_size=x, stride=1, padding=x // 2) for x in k])

    def forward(self, x):
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [m(x) for m in self.m], 1))


class SPPF(nn.Module):
    """SPP-Fast (v6.0+): three chained k x k max pools, equal to SPP(k, 2k-1, 3k-2)."""

    def __init__(self, c1, c2, k=5, *, opt):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1, opt=opt)
        self.cv2 = Conv(c_ * 4, c2, 1, 1, opt=opt)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Concat(nn.Module):
    def __init__(self, dimension=1):
        super().__init__()
        self.d = dimension

    def forward(self, x):
        return torch.cat(x, self.d)


class Contract(nn.Module):
    """(B, C, H, W) -> (B, C*g*g, H/g, W/g), YOLOv5's channel order."""

    def __init__(self, gain=2):
        super().__init__()
        self.gain = gain

    def forward(self, x):
        b, c, h, w = x.shape
        s = self.gain
        x = x.view(b, c, h // s, s, w // s, s).permute(0, 3, 5, 1, 2, 4).contiguous()
        return x.view(b, c * s * s, h // s, w // s)


class Expand(nn.Module):
    """(B, C, H, W) -> (B, C/g/g, H*g, W*g), inverse of :class:`Contract`."""

    def __init__(self, gain=2):
        super().__init__()
        self.gain = gain

    def forward(self, x):
        b, c, h, w = x.shape
        s = self.gain
        x = x.view(b, s, s, c // s ** 2, h, w).permute(0, 3, 4, 1, 5, 2).contiguous()
        return x.view(b, c // s ** 2, h * s, w * s)


class Detect(nn.Module):
    """YOLOv5's head: per level a 1x1 conv to na*(5+nc) channels (absent in v1.0, whose head convs are
    separate layers) and the decode. ``anchors`` buffer (nl, na, 2) is in grid units, as YOLOv5 stores it.
    """

    def __init__(self, nc, anchors, ch=(), *, stride=None, with_convs=True):
        super().__init__()
        self.nc = nc
        self.no = nc + 5
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        st = [float(s) for s in stride] if stride else [1.0] * self.nl
        # divided in Python: no tensor arithmetic here, so a build on the meta device stays cheap
        grid_units = [[float(v) / st[i] for v in lv] for i, lv in enumerate(anchors)]
        self.register_buffer("anchors", torch.tensor(grid_units, dtype=torch.float32).view(self.nl, -1, 2))
        self.stride = st  # constants (pixels per grid cell per level), traced as constants
        self.m = nn.ModuleList(nn.Conv2d(x, self.no * self.na, 1) for x in ch) if with_convs else None

    def heads(self, xs: list) -> list:
        """Per level (B, na*no, H, W) raw outputs before sigmoid."""
        return [self.m[i](x) for i, x in enumerate(xs)] if self.m is not None else list(xs)

    def grids(self, i: int, p: torch.Tensor):
        """Level ``i``'s cell offsets (1, 1, H, W, 2) (x, y index - 0.5) and pixel anchors (1, na, 1, 1, 2)."""
        _, _, ny, nx = p.shape
        yv, xv = torch.meshgrid(torch.arange(ny, dtype=p.dtype, device=p.device),
                                torch.arange(nx, dtype=p.dtype, device=p.device), indexing="ij")
        grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2) - 0.5
        return grid, (self.anchors[i] * self.stride[i]).view(1, self.na, 1, 1, 2)

    def decode(self, outs: list) -> torch.Tensor:
        """(B, N, no): xy = (2*sigmoid - 0.5 + grid) * stride, wh = (2*sigmoid)^2 * anchor (pixels).

        Grids come from each tensor's shape, so a traced graph keeps H and W dynamic.
        """
        z = []
        for i, p in enumerate(outs):
            bs, _, ny, nx = p.shape
            y = p.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
            grid, anchor_grid = self.grids(i, p)
            xy, wh, conf = y.split((2, 2, self.no - 4), 4)
            xy = (xy * 2 + grid) * self.stride[i]
            wh = (wh * 2) ** 2 * anchor_grid
            z.append(torch.cat((xy, wh, conf), 4).reshape(bs, -1, self.no))
        return torch.cat(z, 1)
