"""The less common modules YOLOv5 v7.0's ``parse_model`` builds: transposed convolutions, ``MixConv2d``, ``Sum``.

Same contract as :mod:`.yolov5_blocks`: constructor arguments as YOLOv5's
(after ``parse_model`` prepends the input channels), state-dict names and
shapes exactly YOLOv5's, tensors (B, C, H, W).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class DWConvTranspose2d(nn.ConvTranspose2d):
    """Depth-wise transposed conv (``models.common.DWConvTranspose2d``): groups = gcd(c1, c2), with bias.

    Arguments (c1, c2, k, s, p1 = padding, p2 = output padding); keys ``weight`` (c1, c2/g, k, k), ``bias``.
    """

    def __init__(self, c1, c2, k=1, s=1, p1=0, p2=0):
        super().__init__(c1, c2, k, s, p1, p2, groups=math.gcd(c1, c2))


def mixconv_split(c2: int, k, equal_ch: bool = True) -> list[int]:
    """Output channels of each kernel of ``MixConv2d`` (YOLOv5's two strategies).

    ``equal_ch``: channel j goes to group floor(j * (n - 1e-6) / (c2 - 1)) as YOLOv5 computes it with
    ``torch.linspace`` in float32 (the same rounding here); otherwise equal weight counts per group
    (least squares, rounded), as YOLOv5 solves it with numpy.
    """
    n = len(k)
    if equal_ch:
        i = torch.linspace(0, n - 1e-6, c2, device="cpu").floor()  # explicit CPU: may run under a meta build
        return [int((i == g).sum()) for g in range(n)]
    b = [c2] + [0] * n
    a = np.eye(n + 1, n, k=-1)
    a -= np.roll(a, 1, axis=1)
    a *= np.array(k) ** 2
    a[0] = 1
    return [int(v) for v in np.linalg.lstsq(a, b, rcond=None)[0].round()]


class MixConv2d(nn.Module):
    """Mixed depth-wise conv (``models.experimental.MixConv2d``): per kernel size a grouped conv, outputs
    concatenated, then BatchNorm and SiLU (always SiLU: YOLOv5 builds ``nn.SiLU()`` here, not the Conv default).

    Keys ``m.{i}.weight`` (c_i, c1/g_i, k_i, k_i) with g_i = gcd(c1, c_i), ``bn.*``.
    """

    def __init__(self, c1, c2, k=(1, 3), s=1, equal_ch=True, *, opt):
        super().__init__()
        k = [k] if isinstance(k, int) else list(k)
        split = mixconv_split(c2, k, equal_ch)
        self.m = nn.ModuleList(nn.Conv2d(c1, c_, kk, s, kk // 2, groups=math.gcd(c1, c_), bias=False)
                               for kk, c_ in zip(k, split))
        self.bn = opt.bn(c2)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(torch.cat([m(x) for m in self.m], 1)))


class Sum(nn.Module):
    """Sum of n inputs (``models.experimental.Sum``), optionally weighted by 2*sigmoid(w) (key ``w``, (n-1,))."""

    def __init__(self, n, weight=False):
        super().__init__()
        self.weight = bool(weight)
        self.n = int(n)
        if self.weight:
            self.w = nn.Parameter(-torch.arange(1.0, n) / 2, requires_grad=True)

    def forward(self, x):
        y = x[0]
        if self.weight:
            w = torch.sigmoid(self.w) * 2
            for i in range(self.n - 1):
                y = y + x[i + 1] * w[i]
        else:
            for i in range(self.n - 1):
                y = y + x[i + 1]
        return y
