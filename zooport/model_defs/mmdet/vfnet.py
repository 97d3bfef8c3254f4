"""VarifocalNet's head (``VFNetHead``, MMDetection 3.3) with its star-shaped deformable convolution.

Per level: cls / reg towers (ConvModules), an initial box ``bbox_init = exp(scale * reg) * reg_denom``
(l, t, r, b distances in pixels; ``reg_denom`` 64, 128, 256, 512, 1024 from the default regress
ranges, or the stride when ``bbox_norm_type='stride'``), star offsets that move the nine taps of a
3x3 deformable conv onto the box's corners, edge midpoints and centre, a refined box
``exp(scale_refine * refine) * bbox_init`` and an IoU-aware class score from the deformable
features. ``forward`` -> [cls (nc), refined box (4)] per level (MMDetection's eval ``_forward``);
``bbox_init`` (the golden's ``bbox_init_L``) via :meth:`init_boxes`. Decoding: points at
``stride * (x, y)`` (ATSS-style centre offset 0) minus/plus the distances, sigmoid scores, no factor.
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import ConfigError
from ..deform_conv import DeformConv2d
from .common import ConvModule, Scale, conv2d, reject_unsupported
from .heads import _Stacked

_DEFAULT_RANGES = ((-1, 64), (64, 128), (128, 256), (256, 512), (512, 1e8))


class VFNetHead(_Stacked):
    kind = "fcos"

    def __init__(self, cfg, where="bbox_head"):
        super().__init__(cfg, where, conv_bias=cfg.get("conv_bias", "auto"))
        reject_unsupported(cfg, {"dcn_on_last_conv": False}, where)
        self.strides = [int(s) for s in cfg.get("strides", (8, 16, 32, 64, 128))]
        ranges = cfg.get("regress_ranges", _DEFAULT_RANGES)
        denoms = [float(r[-1]) for r in ranges]
        denoms[-1] = denoms[-2] * 2
        self.norm_type = cfg.get("bbox_norm_type", "reg_denom")
        if self.norm_type not in ("reg_denom", "stride"):
            raise ConfigError(f"{where}: bbox_norm_type {self.norm_type!r} not supported (reg_denom, stride)")
        self.denoms = denoms if self.norm_type == "reg_denom" else [float(s) for s in self.strides]
        self.gradient_mul = float(cfg.get("gradient_mul", 0.1))
        gen = cfg.get("anchor_generator") or {}
        # points at stride * (x + offset): ATSS-style centre offset (0) when use_atss, FCOS's 0.5 otherwise
        self.point_offset = float(gen.get("center_offset", 0.0)) if cfg.get("use_atss", True) else 0.5
        coder = cfg.get("bbox_coder") or {"type": "DistancePointBBoxCoder"}
        self.clip_border = bool(coder.get("clip_border", True))
        norm, bias = cfg.get("norm_cfg"), cfg.get("conv_bias", "auto")
        self.vfnet_reg_conv = ConvModule(self.feat_channels, self.feat_channels, 3, 1, 1, bias=bias, norm_cfg=norm,
                                         where=where)
        self.vfnet_reg = conv2d(self.feat_channels, 4, 3, 1, 1)
        self.scales = nn.ModuleList([Scale(1.0) for _ in self.strides])
        self.vfnet_reg_refine_dconv = DeformConv2d(self.feat_channels, self.feat_channels, 3, 1, 1)
        self.vfnet_reg_refine = conv2d(self.feat_channels, 4, 3, 1, 1)
        self.scales_refine = nn.ModuleList([Scale(1.0) for _ in self.strides])
        self.vfnet_cls_dconv = DeformConv2d(self.feat_channels, self.feat_channels, 3, 1, 1)
        self.vfnet_cls = conv2d(self.feat_channels, self.cls_out_channels, 3, 1, 1)
        self.relu = nn.ReLU()
        # (dy, dx) of the 3x3 taps relative to the centre, row-major: subtracted from the star positions
        base = torch.arange(-1.0, 2.0)
        self.register_buffer("dcn_base_offset", torch.stack([base.repeat_interleave(3), base.repeat(3)], 1)
                             .reshape(1, -1, 1, 1), persistent=False)

    def _level(self, x, i):
        c, r = self._feats(x)
        init = self.scales[i](self.vfnet_reg(self.vfnet_reg_conv(r))).float().exp() * self.denoms[i]
        offset = self.star_offset(init, self.strides[i]).to(r.dtype)
        r = self.relu(self.vfnet_reg_refine_dconv(r, offset))
        refine = self.scales_refine[i](self.vfnet_reg_refine(r)).float().exp() * init
        cls = self.vfnet_cls(self.relu(self.vfnet_cls_dconv(c, offset)))
        return cls, refine, init

    def forward(self, feats):
        outs = [self._level(x, i) for i, x in enumerate(feats)]
        return [[o[0] for o in outs], [o[1] for o in outs]]

    def init_boxes(self, feats):
        """The initial (l, t, r, b) distances per level, (B, 4, H, W) (not part of ``_forward``)."""
        return [self._level(x, i)[2] for i, x in enumerate(feats)]

    def star_offset(self, box, stride):
        """(B, 4, H, W) l, t, r, b pixels -> (B, 18, H, W) offsets placing the taps on the box's
        top-left, top, top-right, left, centre, right, bottom-left, bottom, bottom-right points
        (in feature cells; MMDetection's gradient-scaled copy is numerically (1 - g) * b + g * b)."""
        g = self.gradient_mul
        b = ((1 - g) * box.detach() + g * box) / stride
        x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
        z = torch.zeros_like(x1)
        ys = [-y1, -y1, -y1, z, z, z, y2, y2, y2]
        xs = [-x1, z, x2, -x1, z, x2, -x1, z, x2]
        pos = torch.stack([t for pair in zip(ys, xs) for t in pair], 1)
        return pos - self.dcn_base_offset.to(pos.dtype)
