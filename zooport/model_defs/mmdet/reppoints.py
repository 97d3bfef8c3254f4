"""RepPoints (``RepPointsHead``, MMDetection 3.3) at inference.

Per level: cls / point towers; initial points (9 (y, x) pairs, feature cells, relative to the
location) from a 3x3 + 1x1 conv; the same points (less the regular 3x3 grid) are the offsets of two
deformable convs, one for classification and one for the point refinement; refined points =
initial + predicted residual. ``forward`` -> [cls (nc), box (4)] per level, the box being
``points2bbox`` of the refined points (``moment``: mean -/+ std * exp(moment_transfer);
``minmax``; ``partial_minmax``: min/max of the first four points) in feature cells relative to
the location. Decoding: box * stride + (x, y) * stride, clipped to the image.
``point_sets(feats)`` gives the initial and refined points (the golden's ``pts_init_L`` /
``pts_refine_L``).
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import ConfigError
from ..deform_conv import DeformConv2d
from .common import conv2d, reject_unsupported
from .heads import _Stacked

TRANSFORMS = ("moment", "minmax", "partial_minmax")


class RepPointsHead(_Stacked):
    kind = "reppoints"

    def __init__(self, cfg, where="bbox_head"):
        super().__init__(cfg, where)
        reject_unsupported(cfg, {"use_grid_points": False, "center_init": True}, where)
        n = int(cfg.get("num_points", 9))
        k = int(round(n ** 0.5))
        if k * k != n or k % 2 == 0:
            raise ConfigError(f"{where}: num_points must be an odd square (9, 25, ...), got {n}")
        self.transform = cfg.get("transform_method", "moment")
        if self.transform not in TRANSFORMS:
            raise ConfigError(f"{where}: transform_method {self.transform!r} not supported (known: {TRANSFORMS})")
        self.strides = [int(s) for s in cfg.get("point_strides", (8, 16, 32, 64, 128))]
        self.gradient_mul = float(cfg.get("gradient_mul", 0.1))
        self.moment_mul = float(cfg.get("moment_mul", 0.01))
        pc = int(cfg.get("point_feat_channels", 256))
        self.reppoints_cls_conv = DeformConv2d(self.feat_channels, pc, k, 1, k // 2)
        self.reppoints_cls_out = conv2d(pc, self.cls_out_channels, 1)
        self.reppoints_pts_init_conv = conv2d(self.feat_channels, pc, 3, 1, 1)
        self.reppoints_pts_init_out = conv2d(pc, 2 * n, 1)
        self.reppoints_pts_refine_conv = DeformConv2d(self.feat_channels, pc, k, 1, k // 2)
        self.reppoints_pts_refine_out = conv2d(pc, 2 * n, 1)
        if self.transform == "moment":
            self.moment_transfer = nn.Parameter(torch.zeros(2))
        self.relu = nn.ReLU()
        base = torch.arange(-(k // 2), k // 2 + 1, dtype=torch.float32)
        self.register_buffer("dcn_base_offset", torch.stack([base.repeat_interleave(k), base.repeat(k)], 1)
                             .reshape(1, -1, 1, 1), persistent=False)

    def _level(self, x):
        c, p = self._feats(x)
        init = self.reppoints_pts_init_out(self.relu(self.reppoints_pts_init_conv(p)))
        g = self.gradient_mul
        offset = ((1 - g) * init.detach() + g * init) - self.dcn_base_offset.to(x.dtype)
        cls = self.reppoints_cls_out(self.relu(self.reppoints_cls_conv(c, offset)))
        refine = self.reppoints_pts_refine_out(self.relu(self.reppoints_pts_refine_conv(p, offset))) + init.detach()
        return cls, init, refine

    def forward(self, feats):
        outs = [self._level(x) for x in feats]
        return [[o[0] for o in outs], [self.points2bbox(o[2]) for o in outs]]

    def point_sets(self, feats):
        """[(initial, refined) per level], each (B, 2 * num_points, H, W) (y, x) pairs."""
        return [self._level(x)[1:] for x in feats]

    def points2bbox(self, pts):
        """(B, 2N, H, W) (y, x) points -> (B, 4, H, W) x1, y1, x2, y2 (feature cells)."""
        p = pts.reshape(pts.shape[0], -1, 2, *pts.shape[2:])
        ys, xs = p[:, :, 0], p[:, :, 1]
        if self.transform == "partial_minmax":
            ys, xs = ys[:, :4], xs[:, :4]
        if self.transform in ("minmax", "partial_minmax"):
            return torch.cat([xs.min(1, keepdim=True)[0], ys.min(1, keepdim=True)[0],
                              xs.max(1, keepdim=True)[0], ys.max(1, keepdim=True)[0]], 1)
        ym, xm = ys.mean(1, keepdim=True), xs.mean(1, keepdim=True)
        ystd = torch.std(ys - ym, dim=1, keepdim=True)  # unbiased, as MMDetection
        xstd = torch.std(xs - xm, dim=1, keepdim=True)
        mt = self.moment_transfer * self.moment_mul + self.moment_transfer.detach() * (1 - self.moment_mul)
        hw, hh = xstd * torch.exp(mt[0]), ystd * torch.exp(mt[1])
        return torch.cat([xm - hw, ym - hh, xm + hw, ym + hh], 1)
