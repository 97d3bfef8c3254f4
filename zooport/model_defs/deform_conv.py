"""Deformable convolution (DCNv1 and modulated DCNv2) in plain PyTorch, as mmcv's ops compute it.

No compiled extension: every sampling location is gathered with ``torch.gather`` (ONNX
``GatherElements``; no ``GridSample``), so it runs wherever torch runs and exports to ONNX graphs
that onnxruntime executes.

Offsets follow mmcv's layout: ``offset`` (B, 2 * dg * kh * kw, Ho, Wo) holds, for deformable group
g and kernel tap k = i * kw + j, the pair (dy, dx) at channels ``g * 2K + 2k`` and ``g * 2K + 2k + 1``.
Tap (i, j) of output (ho, wo) samples the input at
``y = ho * stride - pad + i * dilation + dy``, ``x = wo * stride - pad + j * dilation + dx``
bilinearly, with zeros outside the image (mmcv's ``deformable_im2col_bilinear``: each of the four
neighbours contributes only when it lies inside). ``mask`` (B, dg * kh * kw, Ho, Wo), for DCNv2,
multiplies each sampled value (pass it already through the sigmoid, as mmcv's modules do).
"""
from __future__ import annotations

import torch
from torch import nn


def _pair(v):
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def deform_conv2d(x, offset, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, deform_groups=1,
                  mask=None):
    """x (B, C, H, W), weight (Cout, C / groups, kh, kw) -> (B, Cout, Ho, Wo)."""
    b, c, h, w = x.shape
    cout, cg, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    ho = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    wo = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    k = kh * kw
    dg = int(deform_groups)
    off = offset.reshape(b, dg, k, 2, ho, wo)
    dev, dt = x.device, x.dtype
    base_y = (torch.arange(ho, device=dev, dtype=dt) * sh - ph).view(1, 1, 1, ho, 1)
    base_x = (torch.arange(wo, device=dev, dtype=dt) * sw - pw).view(1, 1, 1, 1, wo)
    tap_y = (torch.arange(kh, device=dev, dtype=dt) * dh).repeat_interleave(kw).view(1, 1, k, 1, 1)
    tap_x = (torch.arange(kw, device=dev, dtype=dt) * dw).repeat(kh).view(1, 1, k, 1, 1)
    py = (base_y + tap_y) + off[:, :, :, 0]  # (B, dg, K, Ho, Wo)
    px = (base_x + tap_x) + off[:, :, :, 1]
    y0, x0 = torch.floor(py), torch.floor(px)
    ly, lx = py - y0, px - x0
    hy, hx = 1 - ly, 1 - lx
    src = x.reshape(b, dg, c // dg, h * w)
    n = k * ho * wo
    cols = None
    for yy, xx, wt in ((y0, x0, hy * hx), (y0, x0 + 1, hy * lx), (y0 + 1, x0, ly * hx), (y0 + 1, x0 + 1, ly * lx)):
        inside = (yy >= 0) & (yy <= h - 1) & (xx >= 0) & (xx <= w - 1)
        idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).to(torch.int64).reshape(b, dg, 1, n)
        vals = src.gather(3, idx.expand(b, dg, c // dg, n))
        term = vals * (wt * inside.to(dt)).reshape(b, dg, 1, n)
        cols = term if cols is None else cols + term
    if mask is not None:
        cols = cols * mask.reshape(b, dg, 1, n)
    # (B, C, K, L) with C split into conv groups -> matmul with (groups, Cout/groups, C/groups * K)
    cols = cols.reshape(b, groups, (c // groups) * k, ho * wo)
    wmat = weight.reshape(groups, cout // groups, cg * k)
    out = torch.matmul(wmat.unsqueeze(0), cols).reshape(b, cout, ho, wo)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


class DeformConv2d(nn.Module):
    """mmcv ``DeformConv2d`` (keys ``weight``, optional ``bias``); ``forward(x, offset)``."""

    def __init__(self, cin, cout, kernel_size, stride=1, padding=0, dilation=1, groups=1, deform_groups=1,
                 bias=False):
        super().__init__()
        kh, kw = _pair(kernel_size)
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        self.groups, self.deform_groups = int(groups), int(deform_groups)
        self.weight = nn.Parameter(torch.empty(cout, cin // self.groups, kh, kw))
        self.bias = nn.Parameter(torch.empty(cout)) if bias else None

    def forward(self, x, offset, mask=None):
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation,
                             self.groups, self.deform_groups, mask)
