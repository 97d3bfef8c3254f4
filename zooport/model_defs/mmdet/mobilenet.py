"""MMDetection's ``MobileNetV2`` backbone (keys ``conv1``, ``layerN.i.{expand,depthwise,linear}_conv``, ``conv2``).

Input (B, 3, H, W) -> the outputs of the ``out_indices`` stages (0..6: the seven inverted-residual
stages, 7: the final 1x1 ``conv2``); for widen 1.0 stage 4 has 96 channels at stride 16 and conv2
1280 at stride 32 (SSDLite's two inputs).
"""
from __future__ import annotations

from torch import nn

from ...errors import ConfigError
from .common import ConvModule, reject_unsupported, run_stages

# expand ratio, channels, blocks, stride (MobileNetV2 paper / mmdet arch_settings)
ARCH = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]


def make_divisible(value: float, divisor: int, min_ratio: float = 0.9) -> int:
    """mmdet's ``make_divisible``: nearest multiple of ``divisor``, not below ``min_ratio * value``."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < min_ratio * value else new


class InvertedResidual(nn.Module):
    """[1x1 expand] -> 3x3 depthwise (stride) -> 1x1 linear (no activation); identity shortcut when
    stride 1 and channels equal."""

    def __init__(self, cin, cout, mid, stride, expand, norm, act, where):
        super().__init__()
        self.with_res_shortcut = stride == 1 and cin == cout
        self.with_expand_conv = expand
        if self.with_expand_conv:
            self.expand_conv = ConvModule(cin, mid, 1, norm_cfg=norm, act_cfg=act, where=where)
        self.depthwise_conv = ConvModule(mid, mid, 3, stride, 1, groups=mid, norm_cfg=norm, act_cfg=act, where=where)
        self.linear_conv = ConvModule(mid, cout, 1, norm_cfg=norm, act_cfg=None, where=where)

    def forward(self, x):
        out = self.expand_conv(x) if self.with_expand_conv else x
        out = self.linear_conv(self.depthwise_conv(out))
        return x + out if self.with_res_shortcut else out


class MobileNetV2(nn.Module):
    def __init__(self, cfg: dict, where: str = "backbone"):
        super().__init__()
        reject_unsupported(cfg, {"conv_cfg": None, "with_cp": False}, where)
        widen = float(cfg.get("widen_factor", 1.0))
        self.out_indices = [int(i) for i in cfg.get("out_indices", (1, 2, 4, 7))]
        if any(not 0 <= i <= 7 for i in self.out_indices):
            raise ConfigError(f"{where}: MobileNetV2 out_indices must be in 0..7, got {self.out_indices}")
        norm = cfg.get("norm_cfg", {"type": "BN"})
        act = cfg.get("act_cfg", {"type": "ReLU6"})
        cin = make_divisible(32 * widen, 8)
        self.conv1 = ConvModule(3, cin, 3, 2, 1, norm_cfg=norm, act_cfg=act, where=where)
        self.layers = []
        for i, (t, c, n, s) in enumerate(ARCH):
            cout = make_divisible(c * widen, 8)
            blocks = []
            for j in range(n):
                # mid channels rounded as mmdet does; the 1x1 expansion exists only when the ratio is not 1
                blocks.append(InvertedResidual(cin, cout, int(round(cin * t)), s if j == 0 else 1, t != 1,
                                               norm, act, where))
                cin = cout
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.layers.append(f"layer{i + 1}")
        out = int(1280 * widen) if widen > 1.0 else 1280
        self.conv2 = ConvModule(cin, out, 1, norm_cfg=norm, act_cfg=act, where=where)
        self.layers.append("conv2")

    def forward(self, x):
        x = self.conv1(x)
        return run_stages(self, self.layers, x, self.out_indices)
