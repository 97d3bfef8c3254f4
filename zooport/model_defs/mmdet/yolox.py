"""YOLOX in MMDetection's layout: CSPDarknet backbone, YOLOXPAFPN neck, YOLOXHead.

Backbone input (B, 3, H, W) (H, W even) -> the stages in ``out_indices``
(0 = Focus stem, 1..4 = stages). Neck: in_channels maps (low to high level)
-> same number of maps with ``out_channels``. Head raw output:
[cls (nc), reg (4), objectness (1)] per level.
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import ConfigError
from .common import ConvModule, conv2d, reject_unsupported, run_stages

P5 = [[64, 128, 3, True, False], [128, 256, 9, True, False], [256, 512, 9, True, False], [512, 1024, 3, False, True]]


def _conv_kw(cfg):
    return {"norm_cfg": cfg.get("norm_cfg") or {"type": "BN", "momentum": 0.03, "eps": 0.001},
            "act_cfg": cfg.get("act_cfg", {"type": "Swish"})}


class DarknetBottleneck(nn.Module):
    def __init__(self, cin, cout, expansion, add_identity, kw, where):
        super().__init__()
        hidden = int(cout * expansion)
        self.conv1 = ConvModule(cin, hidden, 1, **kw, where=where)
        self.conv2 = ConvModule(hidden, cout, 3, 1, 1, **kw, where=where)
        self.add_identity = add_identity and cin == cout

    def forward(self, x):
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class CSPLayer(nn.Module):
    def __init__(self, cin, cout, num_blocks, add_identity, kw, where, expand_ratio=0.5):
        super().__init__()
        mid = int(cout * expand_ratio)
        self.main_conv = ConvModule(cin, mid, 1, **kw, where=where)
        self.short_conv = ConvModule(cin, mid, 1, **kw, where=where)
        self.final_conv = ConvModule(2 * mid, cout, 1, **kw, where=where)
        self.blocks = nn.Sequential(*[DarknetBottleneck(mid, mid, 1.0, add_identity, kw, where)
                                      for _ in range(num_blocks)])

    def forward(self, x):
        short = self.short_conv(x)
        main = self.blocks(self.main_conv(x))
        return self.final_conv(torch.cat((main, short), dim=1))


class SPPBottleneck(nn.Module):
    def __init__(self, cin, cout, kernel_sizes, kw, where):
        super().__init__()
        mid = cin // 2
        self.conv1 = ConvModule(cin, mid, 1, **kw, where=where)
        self.poolings = nn.ModuleList([nn.MaxPool2d(k, 1, k // 2) for k in kernel_sizes])
        self.conv2 = ConvModule(mid * (len(kernel_sizes) + 1), cout, 1, **kw, where=where)

    def forward(self, x):
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [p(x) for p in self.poolings], dim=1))


class Focus(nn.Module):
    """Space-to-depth (top-left, bottom-left, top-right, bottom-right) then a conv."""

    def __init__(self, cin, cout, k, kw, where):
        super().__init__()
        self.conv = ConvModule(cin * 4, cout, k, 1, (k - 1) // 2, **kw, where=where)

    def forward(self, x):
        tl, tr = x[..., ::2, ::2], x[..., ::2, 1::2]
        bl, br = x[..., 1::2, ::2], x[..., 1::2, 1::2]
        return self.conv(torch.cat((tl, bl, tr, br), dim=1))


class CSPDarknet(nn.Module):
    def __init__(self, cfg: dict, where: str = "backbone"):
        super().__init__()
        reject_unsupported(cfg, {"arch": "P5", "use_depthwise": False, "arch_ovewrite": None}, where)
        deepen = float(cfg.get("deepen_factor", 1.0))
        widen = float(cfg.get("widen_factor", 1.0))
        self.out_indices = tuple(cfg.get("out_indices", (2, 3, 4)))
        spp_k = tuple(cfg.get("spp_kernal_sizes", (5, 9, 13)))
        kw = _conv_kw(cfg)
        self.stem = Focus(3, int(P5[0][0] * widen), 3, kw, where)
        self.layers = ["stem"]
        self.out_channels = []
        for i, (cin, cout, nb, add_id, use_spp) in enumerate(P5):
            cin, cout = int(cin * widen), int(cout * widen)
            nb = max(round(nb * deepen), 1)
            stage = [ConvModule(cin, cout, 3, 2, 1, **kw, where=where)]
            if use_spp:
                stage.append(SPPBottleneck(cout, cout, spp_k, kw, where))
            stage.append(CSPLayer(cout, cout, nb, add_id, kw, where))
            self.add_module(f"stage{i + 1}", nn.Sequential(*stage))
            self.layers.append(f"stage{i + 1}")
            self.out_channels.append(cout)

    def forward(self, x):
        return run_stages(self, self.layers, x, self.out_indices)


class YOLOXPAFPN(nn.Module):
    def __init__(self, cfg: dict, where: str = "neck"):
        super().__init__()
        reject_unsupported(cfg, {"use_depthwise": False}, where)
        inc = list(cfg["in_channels"])
        out = int(cfg["out_channels"])
        nb = int(cfg.get("num_csp_blocks", 3))
        kw = _conv_kw(cfg)
        up = dict(cfg.get("upsample_cfg") or {"scale_factor": 2, "mode": "nearest"})
        self.upsample = nn.Upsample(**up)
        self.n = len(inc)
        self.reduce_layers = nn.ModuleList()
        self.top_down_blocks = nn.ModuleList()
        for idx in range(len(inc) - 1, 0, -1):
            self.reduce_layers.append(ConvModule(inc[idx], inc[idx - 1], 1, **kw, where=where))
            self.top_down_blocks.append(CSPLayer(inc[idx - 1] * 2, inc[idx - 1], nb, False, kw, where))
        self.downsamples = nn.ModuleList()
        self.bottom_up_blocks = nn.ModuleList()
        for idx in range(len(inc) - 1):
            self.downsamples.append(ConvModule(inc[idx], inc[idx], 3, 2, 1, **kw, where=where))
            self.bottom_up_blocks.append(CSPLayer(inc[idx] * 2, inc[idx + 1], nb, False, kw, where))
        self.out_convs = nn.ModuleList([ConvModule(c, out, 1, **kw, where=where) for c in inc])

    def forward(self, inputs):
        inner = [inputs[-1]]
        for idx in range(self.n - 1, 0, -1):
            j = self.n - 1 - idx
            high = self.reduce_layers[j](inner[0])
            inner[0] = high
            inner.insert(0, self.top_down_blocks[j](torch.cat([self.upsample(high), inputs[idx - 1]], 1)))
        outs = [inner[0]]
        for idx in range(self.n - 1):
            d = self.downsamples[idx](outs[-1])
            outs.append(self.bottom_up_blocks[idx](torch.cat([d, inner[idx + 1]], 1)))
        return tuple(conv(o) for conv, o in zip(self.out_convs, outs))


class YOLOXHead(nn.Module):
    kind = "yolox"

    def __init__(self, cfg: dict, where: str = "bbox_head"):
        super().__init__()
        reject_unsupported(cfg, {"use_depthwise": False, "dcn_on_last_conv": False}, where)
        self.num_classes = int(cfg["num_classes"])
        self.cls_out_channels = self.num_classes
        self.use_sigmoid = True
        inc = int(cfg["in_channels"])
        feat = int(cfg.get("feat_channels", 256))
        self.strides = [int(s) for s in cfg.get("strides", (8, 16, 32))]
        self.test_cfg = dict(cfg.get("test_cfg") or {})
        kw = _conv_kw(cfg)
        bias = cfg.get("conv_bias", "auto")
        n = int(cfg.get("stacked_convs", 2))

        def branch():
            return nn.Sequential(*[ConvModule(inc if i == 0 else feat, feat, 3, 1, 1, bias=bias, **kw, where=where)
                                   for i in range(n)])
        self.multi_level_cls_convs = nn.ModuleList([branch() for _ in self.strides])
        self.multi_level_reg_convs = nn.ModuleList([branch() for _ in self.strides])
        self.multi_level_conv_cls = nn.ModuleList([conv2d(feat, self.num_classes, 1) for _ in self.strides])
        self.multi_level_conv_reg = nn.ModuleList([conv2d(feat, 4, 1) for _ in self.strides])
        self.multi_level_conv_obj = nn.ModuleList([conv2d(feat, 1, 1) for _ in self.strides])
        if len(self.strides) == 0:
            raise ConfigError(f"{where}: YOLOXHead needs strides")

    def forward(self, feats):
        cls, reg, obj = [], [], []
        for i, x in enumerate(feats):
            c = self.multi_level_cls_convs[i](x)
            r = self.multi_level_reg_convs[i](x)
            cls.append(self.multi_level_conv_cls[i](c))
            reg.append(self.multi_level_conv_reg[i](r))
            obj.append(self.multi_level_conv_obj[i](r))
        return [cls, reg, obj]
