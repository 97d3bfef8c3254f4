"""MMDetection's ``RPNHead`` and its proposal selection (``RPNHead.predict`` at test time).

``forward(feats)`` -> ``[cls, reg]``: per level (B, A, H, W) objectness logits
(A * 2 with a softmax loss) and (B, A * 4, H, W) deltas, A anchors per position.

``proposals(cls, reg, img_hw, cfg)`` -> per image (n, 5) ``x1 y1 x2 y2 score``
in input pixels, as MMDetection 3.3 computes them from ``test_cfg.rpn``: per
level the ``nms_pre`` best scores (sorted, descending), boxes decoded from the
level's anchors and clipped to ``img_hw``, boxes with ``w`` or ``h`` not above
``min_bbox_size`` dropped, NMS per level (mmcv's ``batched_nms`` with the
level as the class), the best ``max_per_img`` kept.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from .anchors import build_prior_generator
from .coders import decode_with, delta_coder
from .common import ConvModule, conv2d
from .predict import batched_nms


class RPNHead(nn.Module):
    def __init__(self, cfg: dict, where: str = "rpn_head"):
        super().__init__()
        self.in_channels = int(cfg["in_channels"])
        self.feat_channels = int(cfg.get("feat_channels", 256))
        self.num_convs = int(cfg.get("num_convs", 1))
        self.prior_generator = build_prior_generator(cfg["anchor_generator"], where + ".anchor_generator")
        self.strides = [int(s[0]) for s in self.prior_generator.strides]
        self.bbox_coder = delta_coder(cfg.get("bbox_coder"), where + ".bbox_coder")
        self.use_sigmoid = bool((cfg.get("loss_cls") or {}).get("use_sigmoid", True))
        a = self.prior_generator.num_base_priors
        if self.num_convs > 1:
            self.rpn_conv = nn.Sequential(*[
                ConvModule(self.in_channels if i == 0 else self.feat_channels, self.feat_channels, 3, padding=1,
                           where=where) for i in range(self.num_convs)])
        elif self.num_convs == 1:
            self.rpn_conv = conv2d(self.in_channels, self.feat_channels, 3, 1, 1)
        else:
            raise ConfigError(f"{where}: num_convs must be >= 1, got {self.num_convs}")
        self.rpn_cls = conv2d(self.feat_channels, a * (1 if self.use_sigmoid else 2), 1)
        self.rpn_reg = conv2d(self.feat_channels, a * 4, 1)

    def forward(self, feats):
        cls, reg = [], []
        for x in feats:
            x = F.relu(self.rpn_conv(x))
            cls.append(self.rpn_cls(x))
            reg.append(self.rpn_reg(x))
        return [cls, reg]

    def _level_scores(self, c):
        """(A*k, H, W) of one image -> (H*W*A,) objectness probabilities."""
        if self.use_sigmoid:
            return c.permute(1, 2, 0).reshape(-1).sigmoid()
        return c.permute(1, 2, 0).reshape(-1, 2).softmax(-1)[:, 0]

    def level_candidates(self, cls, reg, b: int, i: int, nms_pre: int):
        """Image b, level i: the ``nms_pre`` best objectness scores (descending; all, in prior order, when
        the level has fewer), their deltas (k, 4) and anchors (k, 4)."""
        c, r = cls[i], reg[i]
        s = self._level_scores(c[b])
        d = r[b].permute(1, 2, 0).reshape(-1, 4)
        pri = self.prior_generator.level(i, c.shape[2], c.shape[3])
        if 0 < nms_pre < s.shape[0]:
            s, order = s.sort(descending=True)
            s, order = s[:nms_pre], order[:nms_pre]
            d, pri = d[order], pri[order]
        return s, d, pri

    @torch.no_grad()
    def proposals(self, cls, reg, img_hw, cfg: dict):
        """Eager proposal selection (see the module docstring); returns a list over images."""
        cfg = dict(cfg or {})
        nms_pre = int(cfg.get("nms_pre", -1))
        out = []
        for b in range(cls[0].shape[0]):
            boxes, scores, lvls = [], [], []
            for i in range(len(cls)):
                s, d, pri = self.level_candidates(cls, reg, b, i, nms_pre)
                boxes.append(decode_with(self.bbox_coder, pri, d, img_hw))
                scores.append(s)
                lvls.append(torch.full((s.shape[0],), i, dtype=torch.int64))
            bx, sc, lv = torch.cat(boxes), torch.cat(scores), torch.cat(lvls)
            min_size = cfg.get("min_bbox_size", -1)
            if min_size is not None and min_size >= 0:
                ok = ((bx[:, 2] - bx[:, 0]) > min_size) & ((bx[:, 3] - bx[:, 1]) > min_size)
                bx, sc, lv = bx[ok], sc[ok], lv[ok]
            if bx.numel():
                if "nms" not in cfg:
                    raise ConfigError("test_cfg.rpn: missing 'nms' (MMDetection requires NMS for proposals)")
                keep = batched_nms(bx, sc, lv, cfg["nms"])
                bx, sc = bx[keep], sc[keep]
                if cfg.get("max_per_img") is not None:
                    n = int(cfg["max_per_img"])
                    bx, sc = bx[:n], sc[:n]
            out.append(torch.cat([bx, sc[:, None]], 1))
        return out
