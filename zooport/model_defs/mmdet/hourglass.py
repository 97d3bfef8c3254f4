"""MMDetection's ``HourglassNet`` backbone (CornerNet, CentripetalNet), keys as in mmdet checkpoints.

Input (B, 3, H, W) -> ``num_stacks`` maps of ``feat_channel`` channels at stride 4 (one per stack).
Stem: 7x7/2 ConvModule to ``stage_channels[0] // 2``, then a stride-2 residual layer. Each stack is a
recursive hourglass of ``downsample_times`` levels: ``up1`` (residual blocks at this resolution) +
nearest-upsampled ``low3(low2(low1(x)))`` where ``low1`` halves the resolution. Between stacks:
``inters[i](relu(conv1x1s[i](inter) + remap_convs[i](out_i)))``.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from .common import ConvModule, conv2d, reject_unsupported
from .resnet import BasicBlock, _bn


def res_layer(cin, cout, blocks, stride, norm, where, downsample_first=True):
    """mmdet ``ResLayer`` of BasicBlocks (``downsample_first=False``: the channel change comes last)."""
    ds = None
    if stride != 1 or cin != cout:
        ds = nn.Sequential(conv2d(cin, cout, 1, stride, bias=False), _bn(norm, cout, where))
    mk = lambda i, o, s, d: BasicBlock(i, o, s, d, norm, "pytorch", 1, where)  # noqa: E731
    if downsample_first:
        layers = [mk(cin, cout, stride, ds)] + [mk(cout, cout, 1, None) for _ in range(1, blocks)]
    else:
        layers = [mk(cin, cin, 1, None) for _ in range(blocks - 1)] + [mk(cin, cout, stride, ds)]
    return nn.Sequential(*layers)


class HourglassModule(nn.Module):
    def __init__(self, depth, channels, blocks, norm, where):
        super().__init__()
        cur, nxt = channels[0], channels[1]
        self.up1 = res_layer(cur, cur, blocks[0], 1, norm, where)
        self.low1 = res_layer(cur, nxt, blocks[0], 2, norm, where)
        if depth > 1:
            self.low2 = HourglassModule(depth - 1, channels[1:], blocks[1:], norm, where)
        else:
            self.low2 = res_layer(nxt, nxt, blocks[1], 1, norm, where)
        self.low3 = res_layer(nxt, cur, blocks[0], 1, norm, where, downsample_first=False)

    def forward(self, x):
        up1 = self.up1(x)
        low3 = self.low3(self.low2(self.low1(x)))
        return up1 + F.interpolate(low3, size=up1.shape[2:], mode="nearest")


class HourglassNet(nn.Module):
    def __init__(self, cfg: dict, where: str = "backbone"):
        super().__init__()
        reject_unsupported(cfg, {"upsample_cfg": {"mode": "nearest"}}, where)
        times = int(cfg.get("downsample_times", 5))
        self.num_stacks = int(cfg.get("num_stacks", 2))
        ch = [int(c) for c in cfg.get("stage_channels", (256, 256, 384, 384, 384, 512))]
        blocks = [int(b) for b in cfg.get("stage_blocks", (2, 2, 2, 2, 2, 4))]
        if len(ch) != len(blocks) or len(ch) <= times:
            raise ConfigError(f"{where}: stage_channels and stage_blocks need equal length > downsample_times")
        feat = int(cfg.get("feat_channel", 256))
        norm = cfg.get("norm_cfg", {"type": "BN"})
        cur = ch[0]
        self.stem = nn.Sequential(ConvModule(3, cur // 2, 7, 2, 3, norm_cfg=norm, where=where),
                                  res_layer(cur // 2, cur, 1, 2, norm, where))
        self.hourglass_modules = nn.ModuleList([HourglassModule(times, ch, blocks, norm, where)
                                                for _ in range(self.num_stacks)])
        self.inters = res_layer(cur, cur, self.num_stacks - 1, 1, norm, where)
        self.conv1x1s = nn.ModuleList([ConvModule(cur, cur, 1, norm_cfg=norm, act_cfg=None, where=where)
                                       for _ in range(self.num_stacks - 1)])
        self.out_convs = nn.ModuleList([ConvModule(cur, feat, 3, 1, 1, norm_cfg=norm, where=where)
                                        for _ in range(self.num_stacks)])
        self.remap_convs = nn.ModuleList([ConvModule(feat, cur, 1, norm_cfg=norm, act_cfg=None, where=where)
                                          for _ in range(self.num_stacks - 1)])
        self.relu = nn.ReLU()

    def forward(self, x):
        inter = self.stem(x)
        outs = []
        for i in range(self.num_stacks):
            out = self.out_convs[i](self.hourglass_modules[i](inter))
            outs.append(out)
            if i < self.num_stacks - 1:
                inter = self.inters[i](self.relu(self.conv1x1s[i](inter) + self.remap_convs[i](out)))
        return outs
