"""YOLOv3 in MMDetection's layout: Darknet-53 backbone (``type='Darknet'``), YOLOV3Neck, YOLOV3Head.

Backbone: ``conv1`` then ``conv_res_block1..5`` (each: a stride-2 ``conv`` and
``res{k}`` blocks of 1x1 -> 3x3 with a residual add); outputs the blocks in
``out_indices`` (0 = conv1). Neck: ``detect1..N`` (five alternating 1x1/3x3
convs) with ``conv{i}`` 1x1 + nearest x2 upsample + concat [upsampled, lateral]
in between. Head raw output: one group, per level the (B, A*(5+nc), H, W) map
in ``featmap_strides`` order (32, 16, 8).
"""
from __future__ import annotations

from torch import nn
import torch
import torch.nn.functional as F

from ...errors import ConfigError
from .anchors import build_prior_generator
from .common import ConvModule, conv2d, run_stages

DEPTHS = {53: ((1, 2, 8, 8, 4), ((32, 64), (64, 128), (128, 256), (256, 512), (512, 1024)))}


def _kw(cfg):
    return {"norm_cfg": cfg.get("norm_cfg") or {"type": "BN"},
            "act_cfg": cfg.get("act_cfg", {"type": "LeakyReLU", "negative_slope": 0.1})}


class ResBlock(nn.Module):
    def __init__(self, c, kw, where):
        super().__init__()
        self.conv1 = ConvModule(c, c // 2, 1, **kw, where=where)
        self.conv2 = ConvModule(c // 2, c, 3, 1, 1, **kw, where=where)

    def forward(self, x):
        return x + self.conv2(self.conv1(x))


class Darknet(nn.Module):
    def __init__(self, cfg: dict, where: str = "backbone"):
        super().__init__()
        depth = cfg.get("depth", 53)
        if depth not in DEPTHS:
            raise ConfigError(f"{where}: Darknet depth {depth!r} not supported (only 53)")
        layers, channels = DEPTHS[depth]
        self.out_indices = tuple(cfg.get("out_indices", (3, 4, 5)))
        kw = _kw(cfg)
        self.conv1 = ConvModule(3, 32, 3, 1, 1, **kw, where=where)
        self.cr_blocks = ["conv1"]
        for i, n in enumerate(layers):
            cin, cout = channels[i]
            block = nn.Sequential()
            block.add_module("conv", ConvModule(cin, cout, 3, 2, 1, **kw, where=where))
            for k in range(n):
                block.add_module(f"res{k}", ResBlock(cout, kw, where))
            self.add_module(f"conv_res_block{i + 1}", block)
            self.cr_blocks.append(f"conv_res_block{i + 1}")

    def forward(self, x):
        return run_stages(self, self.cr_blocks, x, self.out_indices)


class DetectionBlock(nn.Module):
    def __init__(self, cin, cout, kw, where):
        super().__init__()
        d = cout * 2
        self.conv1 = ConvModule(cin, cout, 1, **kw, where=where)
        self.conv2 = ConvModule(cout, d, 3, 1, 1, **kw, where=where)
        self.conv3 = ConvModule(d, cout, 1, **kw, where=where)
        self.conv4 = ConvModule(cout, d, 3, 1, 1, **kw, where=where)
        self.conv5 = ConvModule(d, cout, 1, **kw, where=where)

    def forward(self, x):
        return self.conv5(self.conv4(self.conv3(self.conv2(self.conv1(x)))))


class YOLOV3Neck(nn.Module):
    def __init__(self, cfg: dict, where: str = "neck"):
        super().__init__()
        self.num_scales = int(cfg["num_scales"])
        inc, outc = list(cfg["in_channels"]), list(cfg["out_channels"])
        if not (len(inc) == len(outc) == self.num_scales):
            raise ConfigError(f"{where}: in_channels/out_channels must have num_scales entries")
        kw = _kw(cfg)
        self.detect1 = DetectionBlock(inc[0], outc[0], kw, where)
        for i in range(1, self.num_scales):
            self.add_module(f"conv{i}", ConvModule(outc[i - 1], outc[i], 1, **kw, where=where))
            self.add_module(f"detect{i + 1}", DetectionBlock(inc[i] + outc[i], outc[i], kw, where))

    def forward(self, feats):
        out = self.detect1(feats[-1])
        outs = [out]
        for i, x in enumerate(reversed(feats[:-1])):
            tmp = F.interpolate(getattr(self, f"conv{i + 1}")(out), scale_factor=2.0)
            out = getattr(self, f"detect{i + 2}")(torch.cat((tmp, x), 1))
            outs.append(out)
        return tuple(outs)


class YOLOV3Head(nn.Module):
    kind = "yolov3"

    def __init__(self, cfg: dict, where: str = "bbox_head"):
        super().__init__()
        self.num_classes = int(cfg["num_classes"])
        self.cls_out_channels = self.num_classes
        self.use_sigmoid = True
        inc, outc = list(cfg["in_channels"]), list(cfg["out_channels"])
        self.prior_generator = build_prior_generator(cfg["anchor_generator"], where + ".anchor_generator")
        self.strides = [int(s) for s in cfg.get("featmap_strides", (32, 16, 8))]
        coder = (cfg.get("bbox_coder") or {"type": "YOLOBBoxCoder"}).get("type")
        if coder != "YOLOBBoxCoder":
            raise ConfigError(f"{where}: YOLOV3Head bbox_coder {coder!r} not supported")
        self.test_cfg = dict(cfg.get("test_cfg") or {})
        self.num_attrib = 5 + self.num_classes
        a = self.prior_generator.num_base_priors
        kw = _kw(cfg)
        self.convs_bridge = nn.ModuleList([ConvModule(i, o, 3, 1, 1, **kw, where=where) for i, o in zip(inc, outc)])
        self.convs_pred = nn.ModuleList([conv2d(o, a * self.num_attrib, 1) for o in outc])

    def forward(self, feats):
        return [[pred(bridge(x)) for x, bridge, pred in zip(feats, self.convs_bridge, self.convs_pred)]]
