"""SSD as MMDetection defines it: ``SSDVGG`` backbone, ``SSDNeck`` and ``SSDHead``.

State-dict keys equal MMDetection's (``backbone.features.N``, ``neck.l2_norm.weight``,
``neck.extra_layers.i.j...``, ``bbox_head.cls_convs.i.j...``). SSDLite is the same
neck and head with ``use_depthwise=True`` on the ``MobileNetV2`` backbone
(:mod:`.mobilenet`).

Shapes (SSD300, 300x300 input): backbone -> (B, 512, 38, 38), (B, 1024, 19, 19);
neck -> six maps 38, 19, 10, 5, 3, 1; head ``forward`` -> [cls, reg] where level
``i`` is (B, A_i * (nc + 1), H_i, W_i) softmax logits with the background class
last and (B, A_i * 4, H_i, W_i) deltas (A = 4, 6, 6, 6, 4, 4).
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import ConfigError
from .anchors import build_prior_generator
from .common import ConvModule, conv2d, reject_unsupported

# mmcv VGG: blocks per stage for each depth
VGG_ARCH = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


class SSDVGG(nn.Module):
    """mmcv's VGG (no BN) as one ``features`` Sequential, plus SSD's pool5 / fc6 (dilated) / fc7.

    ``features`` indices are mmcv's: conv, ReLU per block and a 2x2 max pool per stage
    (``ceil_mode``), the last stage's pool dropped unless ``with_last_pool``; then
    MaxPool(3, 1, 1), Conv(512, 1024, 3, padding 6, dilation 6), ReLU, Conv(1024, 1024, 1), ReLU.
    ``forward`` returns the outputs of the ``out_feature_indices`` modules.
    """

    def __init__(self, cfg: dict, where: str = "backbone"):
        super().__init__()
        depth = int(cfg.get("depth", 16))
        if depth not in VGG_ARCH:
            raise ConfigError(f"{where}: SSDVGG depth {depth} not supported (known: {sorted(VGG_ARCH)})")
        reject_unsupported(cfg, {"with_bn": False, "input_size": None}, where)
        ceil = bool(cfg.get("ceil_mode", True))
        layers: list[nn.Module] = []
        cin = 3
        for i, blocks in enumerate(VGG_ARCH[depth]):
            planes = 64 * 2 ** i if i < 4 else 512
            for _ in range(blocks):
                layers += [conv2d(cin, planes, 3, 1, 1), nn.ReLU()]
                cin = planes
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil))
        if not cfg.get("with_last_pool", False):
            layers.pop()
        layers += [nn.MaxPool2d(3, 1, 1), conv2d(512, 1024, 3, 1, 6, dilation=6), nn.ReLU(),
                   conv2d(1024, 1024, 1), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.out_feature_indices = [int(i) for i in cfg.get("out_feature_indices", (22, 34))]
        if max(self.out_feature_indices) >= len(layers):
            raise ConfigError(f"{where}: out_feature_indices {self.out_feature_indices} beyond the "
                              f"{len(layers)} feature modules")

    def forward(self, x):
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.out_feature_indices:
                outs.append(x)
        return tuple(outs)


class L2Norm(nn.Module):
    """SSD's channel L2 normalisation with a learned per-channel scale (MMDetection eps 1e-10)."""

    def __init__(self, channels: int, eps: float = 1e-10):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels))
        self.eps = eps

    def forward(self, x):
        norm = x.float().pow(2).sum(1, keepdim=True).sqrt() + self.eps
        return (self.weight[None, :, None, None] * x.float() / norm).type_as(x)


class DepthwiseSeparableConvModule(nn.Module):
    """mmcv's depthwise (groups = channels) ConvModule then a 1x1 pointwise ConvModule."""

    def __init__(self, cin, cout, k, stride=1, padding=0, *, norm_cfg=None, act_cfg=None, where=""):
        # act_cfg None means no activation, as in mmcv (callers pass mmcv's defaults explicitly)
        super().__init__()
        self.depthwise_conv = ConvModule(cin, cin, k, stride, padding, groups=cin, norm_cfg=norm_cfg,
                                         act_cfg=act_cfg, where=where)
        self.pointwise_conv = ConvModule(cin, cout, 1, norm_cfg=norm_cfg, act_cfg=act_cfg, where=where)

    def forward(self, x):
        return self.pointwise_conv(self.depthwise_conv(x))


class SSDNeck(nn.Module):
    """Backbone maps (L2-normalised first one) plus extra levels of 1x1 -> 3x3 (stride/padding per level)."""

    def __init__(self, cfg: dict, where: str = "neck"):
        super().__init__()
        cin = [int(c) for c in cfg["in_channels"]]
        cout = [int(c) for c in cfg["out_channels"]]
        strides = [int(s) for s in cfg["level_strides"]]
        pads = [int(p) for p in cfg["level_paddings"]]
        if len(cout) - len(cin) != len(strides) or len(strides) != len(pads):
            raise ConfigError(f"{where}: SSDNeck needs len(out_channels) - len(in_channels) == len(level_strides) "
                              f"== len(level_paddings), got {len(cout)}, {len(cin)}, {len(strides)}, {len(pads)}")
        if cin != cout[:len(cin)]:
            raise ConfigError(f"{where}: out_channels must start with in_channels {cin}")
        reject_unsupported(cfg, {"conv_cfg": None}, where)
        norm, act = cfg.get("norm_cfg"), cfg.get("act_cfg", {"type": "ReLU"})
        scale = cfg.get("l2_norm_scale", 20.0)
        self.l2_norm = L2Norm(cin[0]) if scale else None
        last_k = int(cfg.get("last_kernel_size", 3))
        depthwise = bool(cfg.get("use_depthwise", False))
        self.extra_layers = nn.ModuleList()
        extra = cout[len(cin):]
        for i, (c, s, p) in enumerate(zip(extra, strides, pads)):
            k = last_k if i == len(extra) - 1 else 3
            first = ConvModule(cout[len(cin) - 1 + i], c // 2, 1, norm_cfg=norm, act_cfg=act, where=where)
            if depthwise:
                second = DepthwiseSeparableConvModule(c // 2, c, k, s, p, norm_cfg=norm, act_cfg=act, where=where)
            else:
                second = ConvModule(c // 2, c, k, s, p, norm_cfg=norm, act_cfg=act, where=where)
            self.extra_layers.append(nn.Sequential(first, second))

    def forward(self, inputs):
        outs = list(inputs)
        if self.l2_norm is not None:
            outs[0] = self.l2_norm(outs[0])
        feat = outs[-1]
        for layer in self.extra_layers:
            feat = layer(feat)
            outs.append(feat)
        return tuple(outs)


class SSDHead(nn.Module):
    """Per level a cls and a reg branch (3x3 conv; SSDLite: depthwise 3x3 ConvModule then 1x1 conv).

    Classification is a softmax over ``num_classes + 1`` with the background last
    (MMDetection's SSDHead never uses sigmoid); boxes are DeltaXYWH deltas of SSD anchors.
    """

    kind = "anchor"

    def __init__(self, cfg: dict, where: str = "bbox_head"):
        super().__init__()
        from .heads import _delta_coder

        reject_unsupported(cfg, {"conv_cfg": None, "reg_decoded_bbox": False}, where)
        self.num_classes = int(cfg.get("num_classes", 80))
        self.use_sigmoid = False
        self.cls_out_channels = self.num_classes + 1
        self.in_channels = [int(c) for c in cfg.get("in_channels", (512, 1024, 512, 256, 256, 256))]
        self.test_cfg = dict(cfg.get("test_cfg") or {})
        self.prior_generator = build_prior_generator(cfg["anchor_generator"], where + ".anchor_generator")
        self.strides = [int(s[0]) for s in self.prior_generator.strides]
        self.bbox_coder = _delta_coder(cfg, where)
        nums = self.prior_generator.num_base_priors_per_level
        if len(nums) != len(self.in_channels):
            raise ConfigError(f"{where}: {len(self.in_channels)} in_channels but {len(nums)} anchor levels")
        depthwise = bool(cfg.get("use_depthwise", False))
        stacked = int(cfg.get("stacked_convs", 0))
        feat = int(cfg.get("feat_channels", 256))
        norm, act = cfg.get("norm_cfg"), cfg.get("act_cfg")
        self.cls_convs = nn.ModuleList()
        self.reg_convs = nn.ModuleList()
        for ch, a in zip(self.in_channels, nums):
            cls_layers: list[nn.Module] = []
            reg_layers: list[nn.Module] = []
            cin = ch
            for _ in range(stacked):
                for lst in (cls_layers, reg_layers):
                    if depthwise:
                        lst.append(DepthwiseSeparableConvModule(cin, feat, 3, 1, 1, norm_cfg=norm, act_cfg=act,
                                                                where=where))
                    else:
                        lst.append(ConvModule(cin, feat, 3, 1, 1, norm_cfg=norm, act_cfg=act, where=where))
                cin = feat
            if depthwise:
                for lst in (cls_layers, reg_layers):
                    lst.append(ConvModule(cin, cin, 3, 1, 1, groups=cin, norm_cfg=norm, act_cfg=act, where=where))
            k, p = (1, 0) if depthwise else (3, 1)
            cls_layers.append(conv2d(cin, a * self.cls_out_channels, k, 1, p))
            reg_layers.append(conv2d(cin, a * 4, k, 1, p))
            self.cls_convs.append(nn.Sequential(*cls_layers))
            self.reg_convs.append(nn.Sequential(*reg_layers))

    def forward(self, feats):
        cls = [conv(x) for x, conv in zip(feats, self.cls_convs)]
        reg = [conv(x) for x, conv in zip(feats, self.reg_convs)]
        return [cls, reg]
