"""Darknet's spatial re-sampling layers: [maxpool], [avgpool], [local_avgpool], [upsample],
[reorg], [reorg3d], [crop] (AlexeyAB/darknet semantics, inference only).

Each module's ``forward(xs)`` takes the list of its input tensors (B, C, H, W) and returns the
layer output. Sizes are computed from the input tensor's shape with Darknet's own rules, so the
modules also run at other input sizes than the cfg's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_FLT_MAX = float(torch.finfo(torch.float32).max)


def _pool_geometry(plan):
    """(size, stride_y, stride_x, padding) as the plan read them (layer_rules._pool_common)."""
    a = plan.attrs
    return a["size"], a["stride_y"], a["stride_x"], a["padding"]


def _darknet_pool_pad(x, size, sy, sx, padding, value):
    """Pad ``x`` so that a plain (size, size)/(sy, sx) pool gives Darknet's windows: the window of output
    cell j starts at input ``j*stride - padding//2`` and there are ``(n + padding - size)//stride + 1`` cells."""
    h, w = x.shape[2], x.shape[3]
    left = padding // 2
    oh = (h + padding - size) // sy + 1
    ow = (w + padding - size) // sx + 1
    right_w = (ow - 1) * sx + size - w - left
    right_h = (oh - 1) * sy + size - h - left
    x = F.pad(x, (left, max(0, right_w), left, max(0, right_h)), value=value)
    return x, oh, ow


class MaxPool(nn.Module):
    """[maxpool]: Darknet's padding (default size-1, window offset -padding/2, outside cells = -FLT_MAX,
    so negative inputs are handled right). ``maxpool_depth=1``: max over channels g, g+out_channels, ...
    per pixel instead (output ``out_channels`` channels, same H, W)."""

    def __init__(self, plan):
        super().__init__()
        self.size, self.sy, self.sx, self.padding = _pool_geometry(plan)  # (antialiasing= refused by the plan)
        self.depth = bool(plan.attrs["maxpool_depth"])
        self.out_channels = plan.attrs["out_channels"]

    def forward(self, xs):
        x = xs[0]
        if self.depth:
            b, c, h, w = x.shape
            k = -(-c // self.out_channels)
            if k * self.out_channels != c:
                x = F.pad(x, (0, 0, 0, 0, 0, k * self.out_channels - c), value=-_FLT_MAX)
            return x.reshape(b, k, self.out_channels, h, w).amax(1)
        if self.size == 1 and self.sy == 1 and self.sx == 1:
            return x
        k, s, left = self.size, (self.sy, self.sx), self.padding // 2
        h, w = x.shape[2], x.shape[3]
        oh = (h + self.padding - k) // self.sy + 1
        ow = (w + self.padding - k) // self.sx + 1
        right_h = (oh - 1) * self.sy + k - h - left
        right_w = (ow - 1) * self.sx + k - w - left
        if right_h == left and right_w == left and 2 * left <= k:
            # symmetric (SPP's size 5/9/13 stride 1, even inputs of 2x2/2): max_pool2d's own padding
            # never forms an all-padding window here, so it equals Darknet's -FLT_MAX cells, without a copy
            return F.max_pool2d(x, (k, k), s, left)
        xp, oh, ow = _darknet_pool_pad(x, k, self.sy, self.sx, self.padding, -_FLT_MAX)
        y = F.max_pool2d(xp, (k, k), s)
        return y[:, :, :oh, :ow]


class LocalAvgPool(nn.Module):
    """[local_avgpool]: like [maxpool]'s windows, averaging only the cells inside the input."""

    def __init__(self, plan):
        super().__init__()
        self.size, self.sy, self.sx, self.padding = _pool_geometry(plan)

    def forward(self, xs):
        x = xs[0]
        xp, oh, ow = _darknet_pool_pad(x, self.size, self.sy, self.sx, self.padding, 0.0)
        ones, _, _ = _darknet_pool_pad(torch.ones_like(x[:1, :1]), self.size, self.sy, self.sx, self.padding, 0.0)
        k, s = (self.size, self.size), (self.sy, self.sx)
        total = F.avg_pool2d(xp, k, s)
        count = F.avg_pool2d(ones, k, s)  # same normaliser, so the ratio is sum/valid-count
        return (total / count)[:, :, :oh, :ow]


class AvgPool(nn.Module):
    """[avgpool]: global average over H, W -> (B, C, 1, 1)."""

    def __init__(self, plan=None):
        super().__init__()

    def forward(self, xs):
        return xs[0].mean(dim=(2, 3), keepdim=True)


class Upsample(nn.Module):
    """[upsample]: nearest neighbour by ``stride`` (default 2), times ``scale`` (default 1).
    A negative stride downsamples: each output cell is ``scale`` x the SUM of its stride x stride block
    (Darknet's upsample_cpu run backwards)."""

    def __init__(self, plan):
        super().__init__()
        stride = plan.attrs["stride"]
        self.reverse = stride < 0
        self.stride = abs(stride)
        self.scale = plan.attrs["scale"]

    def forward(self, xs):
        x = xs[0]
        s = self.stride
        if self.reverse:
            b, c, h, w = x.shape
            y = x[:, :, : h // s * s, : w // s * s].reshape(b, c, h // s, s, w // s, s).sum(dim=(3, 5))
        else:
            y = F.interpolate(x, scale_factor=float(s), mode="nearest") if s != 1 else x
        return y * self.scale if self.scale != 1.0 else y


def _reorg_cpu(x, w: int, h: int, c: int, s: int, forward: bool):
    """Darknet's ``reorg_cpu(x, w, h, c, batch, stride, forward, out)`` on the flat per-image buffers.

    With ``oc = c / s^2`` and flat index ``in = (k, j, i)`` over (c, h, w) and ``out = (k % oc,
    j*s + (k // oc) // s, i*s + (k // oc) % s)`` over (oc, h*s, w*s): forward=0 sets
    ``result[in] = x[out]``; forward=1 sets ``result[out] = x[in]``. Returns (B, c*h*w)."""
    b = x.shape[0]
    oc = c // (s * s)
    if not forward:
        big = x.reshape(b, oc, h, s, w, s)              # (c2, j, dy, i, dx)
        return big.permute(0, 3, 5, 1, 2, 4).reshape(b, c * h * w)   # (dy, dx, c2, j, i) = (k, j, i)
    small = x.reshape(b, s, s, oc, h, w)                 # (dy, dx, c2, j, i)
    return small.permute(0, 3, 4, 1, 5, 2).reshape(b, c * h * w)     # (c2, j, dy, i, dx)


def _check_reorg(plan, c, s):
    if c % (s * s):
        from ...errors import UnsupportedError

        raise UnsupportedError(f"[{plan.type}] (layer {plan.index}): {c} channels are not divisible by "
                               f"stride^2 = {s * s}")


class Reorg(nn.Module):
    """[reorg] (Darknet's reorg_old_layer, YOLOv2): ``reorg_cpu`` called with the INPUT's (w, h, c) and
    forward=0 (1 with ``reverse=1``). Not ``pixel_unshuffle``: the input buffer is read as if it were
    (c/s^2, h*s, w*s). Output (c*s^2, h/s, w/s) (reverse: (c/s^2, h*s, w*s))."""

    def __init__(self, plan):
        super().__init__()
        self.stride = plan.attrs["stride"]
        self.reverse = bool(plan.attrs["reverse"])
        if not self.reverse:
            _check_reorg(plan, plan.in_shape[0], self.stride)

    def forward(self, xs):
        x = xs[0]
        b, c, h, w = x.shape
        s = self.stride
        y = _reorg_cpu(x, w, h, c, s, forward=self.reverse)
        if self.reverse:
            return y.reshape(b, c // (s * s), h * s, w * s)
        return y.reshape(b, c * s * s, h // s, w // s)


class Reorg3d(nn.Module):
    """[reorg3d] (Darknet's reorg_layer): ``reorg_cpu`` called with the OUTPUT's (w, h, c), forward=0:
    a true space-to-depth, output channel ``(dy*s + dx)*C + c`` = input[c, y*s + dy, x*s + dx]."""

    def __init__(self, plan):
        super().__init__()
        self.stride = plan.attrs["stride"]
        self.reverse = bool(plan.attrs["reverse"])

    def forward(self, xs):
        x = xs[0]
        b, c, h, w = x.shape
        s = self.stride
        if self.reverse:
            oc, oh, ow = c // (s * s), h * s, w * s
            return _reorg_cpu(x, ow, oh, oc, s, forward=True).reshape(b, oc, oh, ow)
        oc, oh, ow = c * s * s, h // s, w // s
        return _reorg_cpu(x[:, :, : oh * s, : ow * s], ow, oh, oc, s, forward=False).reshape(b, oc, oh, ow)


class Crop(nn.Module):
    """[crop] at inference: the centred crop_height x crop_width window, scaled x*2 - 1
    (x unchanged with ``noadjust=1``)."""

    def __init__(self, plan):
        super().__init__()
        self.out_h = plan.out_shape[1]
        self.out_w = plan.out_shape[2]
        self.noadjust = bool(plan.attrs["noadjust"])

    def forward(self, xs):
        x = xs[0]
        dh = (x.shape[2] - self.out_h) // 2
        dw = (x.shape[3] - self.out_w) // 2
        y = x[:, :, dh: dh + self.out_h, dw: dw + self.out_w]
        return y if self.noadjust else y * 2.0 - 1.0
