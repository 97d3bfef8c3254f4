"""MMDetection's FPN neck (``type='FPN'``).

Inputs: the backbone's feature maps (low to high level). Outputs ``num_outs``
maps of ``out_channels`` each, strides doubling. Extra levels beyond the
backbone come from max-pooling (``add_extra_convs=False``) or stride-2 3x3 convs
fed from the last used input (``on_input``), its lateral (``on_lateral``) or
the last FPN output (``on_output``); ``relu_before_extra_convs`` applies a ReLU
before every extra conv except the first, as MMDetection does. ``norm_cfg`` (e.g. GN in
RepPoints) normalises every conv, the laterals too unless ``no_norm_on_lateral``.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from .common import ConvModule


class FPN(nn.Module):
    def __init__(self, cfg: dict, where: str = "neck"):
        super().__init__()
        in_channels = list(cfg["in_channels"])
        out = int(cfg["out_channels"])
        self.num_outs = int(cfg["num_outs"])
        self.start_level = int(cfg.get("start_level", 0))
        end_level = int(cfg.get("end_level", -1))
        self.relu_before_extra_convs = bool(cfg.get("relu_before_extra_convs", False))
        self.upsample_cfg = dict(cfg.get("upsample_cfg") or {"mode": "nearest"})
        norm = cfg.get("norm_cfg")
        lat_norm = None if cfg.get("no_norm_on_lateral", False) else norm
        if end_level == -1 or end_level == len(in_channels) - 1:
            self.backbone_end_level = len(in_channels)
        else:
            self.backbone_end_level = end_level + 1
        extra = cfg.get("add_extra_convs", False)
        if extra is True:
            extra = "on_input"
        if extra not in (False, "on_input", "on_lateral", "on_output"):
            raise ConfigError(f"{where}: add_extra_convs must be False, True, on_input, on_lateral or on_output, got {extra!r}")
        self.add_extra_convs = extra
        act = cfg.get("act_cfg")
        cc = cfg.get("conv_cfg")
        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for i in range(self.start_level, self.backbone_end_level):
            self.lateral_convs.append(ConvModule(in_channels[i], out, 1, conv_cfg=cc, norm_cfg=lat_norm, act_cfg=act,
                                                 where=where))
            self.fpn_convs.append(ConvModule(out, out, 3, padding=1, conv_cfg=cc, norm_cfg=norm, act_cfg=act,
                                             where=where))
        used = self.backbone_end_level - self.start_level
        n_extra = self.num_outs - used
        if extra and n_extra >= 1:
            for i in range(n_extra):
                cin = in_channels[self.backbone_end_level - 1] if (i == 0 and extra == "on_input") else out
                self.fpn_convs.append(ConvModule(cin, out, 3, stride=2, padding=1, conv_cfg=cc, norm_cfg=norm,
                                                 act_cfg=act, where=where))

    def forward(self, inputs):
        laterals = [conv(inputs[i + self.start_level]) for i, conv in enumerate(self.lateral_convs)]
        used = len(laterals)
        for i in range(used - 1, 0, -1):
            if "scale_factor" in self.upsample_cfg:
                up = F.interpolate(laterals[i], **self.upsample_cfg)
            else:
                up = F.interpolate(laterals[i], size=laterals[i - 1].shape[2:], **self.upsample_cfg)
            laterals[i - 1] = laterals[i - 1] + up
        outs = [self.fpn_convs[i](laterals[i]) for i in range(used)]
        if self.num_outs > used:
            if not self.add_extra_convs:
                for _ in range(self.num_outs - used):
                    outs.append(F.max_pool2d(outs[-1], 1, stride=2))
            else:
                if self.add_extra_convs == "on_input":
                    src = inputs[self.backbone_end_level - 1]
                elif self.add_extra_convs == "on_lateral":
                    src = laterals[-1]
                else:
                    src = outs[-1]
                outs.append(self.fpn_convs[used](src))
                for i in range(used + 1, self.num_outs):
                    prev = F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
                    outs.append(self.fpn_convs[i](prev))
        return tuple(outs)
