"""Libra R-CNN's balanced feature pyramid neck (``type='BFP'``, applied after FPN).

Inputs and outputs: ``num_levels`` maps (B, C, H_l, W_l). The levels are
brought to the size of ``refine_level`` (adaptive max pooling from finer
levels, nearest upsampling from coarser ones), averaged, refined (a 3x3
``ConvModule`` for ``refine_type='conv'``, an embedded-Gaussian
``NonLocal2d`` for ``'non_local'``, nothing for None) and added back to every
level after the inverse resize.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from .common import ConvModule


class NonLocal2d(nn.Module):
    """mmcv ``NonLocal2d`` (embedded Gaussian): x + conv_out(softmax(theta(x)^T phi(x) [/ sqrt(C')]) g(x))."""

    def __init__(self, channels: int, reduction: int, use_scale: bool, conv_cfg, norm_cfg, where: str):
        super().__init__()
        self.inter = max(channels // reduction, 1)
        self.use_scale = use_scale
        self.g = ConvModule(channels, self.inter, 1, conv_cfg=conv_cfg, act_cfg=None, where=where)
        self.conv_out = ConvModule(self.inter, channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=None,
                                   where=where)
        self.theta = ConvModule(channels, self.inter, 1, conv_cfg=conv_cfg, act_cfg=None, where=where)
        self.phi = ConvModule(channels, self.inter, 1, conv_cfg=conv_cfg, act_cfg=None, where=where)

    def forward(self, x):
        n = x.shape[0]
        g = self.g(x).reshape(n, self.inter, -1).permute(0, 2, 1)
        theta = self.theta(x).reshape(n, self.inter, -1).permute(0, 2, 1)
        phi = self.phi(x).reshape(n, self.inter, -1)
        w = torch.matmul(theta, phi)
        if self.use_scale:
            w = w / theta.shape[-1] ** 0.5
        y = torch.matmul(w.softmax(dim=-1), g)
        y = y.permute(0, 2, 1).reshape(n, self.inter, *x.shape[2:])
        return x + self.conv_out(y)


def _pool_to(x, hw):
    """``adaptive_max_pool2d(x, hw)``; a plain max pool when the sizes divide (the same windows), which
    also exports to ONNX without known input sizes."""
    h, w = int(x.shape[2]), int(x.shape[3])
    if h % hw[0] == 0 and w % hw[1] == 0:
        k = (h // hw[0], w // hw[1])
        return F.max_pool2d(x, k, k)
    return F.adaptive_max_pool2d(x, hw)


class BFP(nn.Module):
    def __init__(self, cfg: dict, where: str = "neck"):
        super().__init__()
        c = int(cfg["in_channels"])
        self.num_levels = int(cfg["num_levels"])
        self.refine_level = int(cfg.get("refine_level", 2))
        self.refine_type = cfg.get("refine_type")
        if not 0 <= self.refine_level < self.num_levels:
            raise ConfigError(f"{where}: refine_level {self.refine_level} outside 0..{self.num_levels - 1}")
        cc, norm = cfg.get("conv_cfg"), cfg.get("norm_cfg")
        if self.refine_type == "conv":
            self.refine = ConvModule(c, c, 3, padding=1, conv_cfg=cc, norm_cfg=norm, where=where)
        elif self.refine_type == "non_local":
            self.refine = NonLocal2d(c, 1, False, cc, norm, where)
        elif self.refine_type is not None:
            raise ConfigError(f"{where}: BFP refine_type {self.refine_type!r} (expected None, 'conv' or 'non_local')")

    def forward(self, inputs):
        if len(inputs) != self.num_levels:
            raise ValueError(f"BFP expects {self.num_levels} levels, got {len(inputs)}")
        # plain ints: the ONNX exporter needs constant adaptive-pooling sizes (static-shape export)
        size = tuple(int(v) for v in inputs[self.refine_level].shape[2:])
        feats = [_pool_to(x, size) if i < self.refine_level else F.interpolate(x, size=size, mode="nearest")
                 for i, x in enumerate(inputs)]
        bsf = sum(feats) / len(feats)
        if self.refine_type is not None:
            bsf = self.refine(bsf)
        outs = []
        for i, x in enumerate(inputs):
            hw = tuple(int(v) for v in x.shape[2:])
            if i < self.refine_level:
                res = F.interpolate(bsf, size=hw, mode="nearest")
            else:
                res = _pool_to(bsf, hw)
            outs.append(res + x)
        return tuple(outs)
