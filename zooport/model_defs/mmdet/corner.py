"""CornerNet's ``CornerHead`` and CentripetalNet's ``CentripetalHead`` (MMDetection 3.3) at inference.

Per feature level (hourglass stack): top-left and bottom-right ``BiCornerPool`` branches (two 3x3
ConvModules, each followed by a corner pool written with ``torch.cummax``: top-left = max towards
the bottom and right, bottom-right = max towards the top and left; then 3x3 + 1x1 convs), and per
corner a heat map (nc logits), an offset (2) and either an embedding (CornerNet) or, for
CentripetalNet, a guiding shift (2) whose 1x1 conv gives the offsets of a 3x3 deformable conv on the
pooled features that predicts the centripetal shift (2, log scale).
``forward`` -> MMDetection's ``_forward`` groups, each a list over levels:
CornerHead [tl_heat, br_heat, tl_emb, br_emb, tl_off, br_off];
CentripetalHead [tl_heat, br_heat, tl_off, br_off, tl_guiding_shift, br_guiding_shift,
tl_centripetal_shift, br_centripetal_shift]. Decoding uses the last level only
(:mod:`.corner_decode`).
"""
from __future__ import annotations

import torch
from torch import nn

from ..deform_conv import DeformConv2d
from .common import ConvModule, reject_unsupported


def corner_pool(x, direction: str):
    """mmcv ``CornerPool``: running max towards ``direction``'s far side ('top' = from the bottom up).

    Eager: ``torch.cummax``. ONNX has no cummax, so an export traces a log-step scan instead
    (max with the map shifted by 1, 2, 4, ... cells): the same values exactly, max being exact."""
    dim, flip = {"bottom": (2, False), "left": (3, True), "right": (3, False), "top": (2, True)}[direction]
    if flip:
        x = x.flip(dim)
    y = _scan_max(x, dim) if torch.onnx.is_in_onnx_export() else torch.cummax(x, dim=dim)[0]
    return y.flip(dim) if flip else y


def _scan_max(x, dim: int):
    n = x.shape[dim]
    step = 1
    while step < n:
        pad = x.narrow(dim, 0, step).clone().fill_(float("-inf"))
        x = torch.maximum(x, torch.cat([pad, x.narrow(dim, 0, n - step)], dim))
        step *= 2
    return x


class BiCornerPool(nn.Module):
    def __init__(self, cin, directions, feat=128, norm=None, where=""):
        super().__init__()
        self.directions = directions
        self.direction1_conv = ConvModule(cin, feat, 3, 1, 1, norm_cfg=norm, where=where)
        self.direction2_conv = ConvModule(cin, feat, 3, 1, 1, norm_cfg=norm, where=where)
        self.aftpool_conv = ConvModule(feat, cin, 3, 1, 1, norm_cfg=norm, act_cfg=None, where=where)
        self.conv1 = ConvModule(cin, cin, 1, norm_cfg=norm, act_cfg=None, where=where)
        self.conv2 = ConvModule(cin, cin, 3, 1, 1, norm_cfg=norm, where=where)
        self.relu = nn.ReLU()

    def forward(self, x):
        a = corner_pool(self.direction1_conv(x), self.directions[0])
        b = corner_pool(self.direction2_conv(x), self.directions[1])
        return self.conv2(self.relu(self.aftpool_conv(a + b) + self.conv1(x)))


def _branch(cin, cout, feat=256):
    """CornerHead ``_make_layers``: 3x3 ConvModule (bias, ReLU) then a plain 1x1 conv."""
    return nn.Sequential(ConvModule(cin, feat, 3, 1, 1), ConvModule(feat, cout, 1, act_cfg=None))


class CornerHead(nn.Module):
    kind = "corner"

    def __init__(self, cfg, where="bbox_head"):
        super().__init__()
        reject_unsupported(cfg, {"corner_offset_channels": 2}, where)
        self.num_classes = int(cfg.get("num_classes", 80))
        self.cls_out_channels = self.num_classes
        self.use_sigmoid = True
        self.in_channels = c = int(cfg["in_channels"])
        self.levels = int(cfg.get("num_feat_levels", 2))
        self.emb_channels = int(cfg.get("corner_emb_channels", 1))
        self.test_cfg = dict(cfg.get("test_cfg") or {})
        self.strides = [4]  # HourglassNet's output stride; decoding scales by input / map size
        norm = {"type": "BN", "requires_grad": True}
        self.tl_pool = nn.ModuleList([BiCornerPool(c, ("top", "left"), norm=norm, where=where)
                                      for _ in range(self.levels)])
        self.br_pool = nn.ModuleList([BiCornerPool(c, ("bottom", "right"), norm=norm, where=where)
                                      for _ in range(self.levels)])
        for name, out in (("tl_heat", self.num_classes), ("br_heat", self.num_classes), ("tl_off", 2), ("br_off", 2)):
            setattr(self, name, nn.ModuleList([_branch(c, out) for _ in range(self.levels)]))
        if self.emb_channels > 0:
            self.tl_emb = nn.ModuleList([_branch(c, self.emb_channels) for _ in range(self.levels)])
            self.br_emb = nn.ModuleList([_branch(c, self.emb_channels) for _ in range(self.levels)])

    def _level(self, x, i):
        tl, br = self.tl_pool[i](x), self.br_pool[i](x)
        out = {"tl_heat": self.tl_heat[i](tl), "br_heat": self.br_heat[i](br),
               "tl_off": self.tl_off[i](tl), "br_off": self.br_off[i](br), "tl_pool": tl, "br_pool": br}
        if self.emb_channels > 0:
            out["tl_emb"], out["br_emb"] = self.tl_emb[i](tl), self.br_emb[i](br)
        return out

    groups = ("tl_heat", "br_heat", "tl_emb", "br_emb", "tl_off", "br_off")

    def forward(self, feats):
        outs = [self._level(x, i) for i, x in enumerate(feats)]
        return [[o[g] for o in outs] for g in self.groups]

    def decode_inputs(self, groups) -> dict:
        """Last level's maps by name (what the decoding reads)."""
        return {g: grp[-1] for g, grp in zip(self.groups, groups)}

    def predict_by_feat(self, groups, img_hw, cfg):
        from .corner_decode import predict_corners

        return predict_corners(self, groups, img_hw, cfg)

    def decode_dense(self, groups, img_hw):
        """The shared (B, N, 4 + 1 + nc) form: the ``num_dets`` (1000) best corner pairs before NMS as
        xywh, factor 1, and the pair score in its class column (rejected pairs: all zero but the factor)."""
        from .corner_decode import decode_corners

        cfg = self.test_cfg
        m = self.decode_inputs(groups)
        outs = []
        for b in range(m["tl_heat"].shape[0]):
            boxes, scores, classes = decode_corners({k: v[b:b + 1] for k, v in m.items()}, img_hw,
                                                    int(cfg.get("corner_topk", 100)),
                                                    int(cfg.get("local_maximum_kernel", 3)),
                                                    float(cfg.get("distance_threshold", 0.5)))
            # rejected pairs (score -1, in arbitrary order among their ties) become all-zero rows
            boxes = boxes * (scores > 0).to(boxes.dtype)[..., None]
            probs = torch.zeros(*scores.shape, self.num_classes, dtype=scores.dtype)
            probs.scatter_(2, classes[..., None], scores.clamp(min=0)[..., None])
            xywh = torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], -1)
            outs.append(torch.cat([xywh, torch.ones_like(scores[..., None]), probs], -1))
        return torch.cat(outs)


class CentripetalHead(CornerHead):
    groups = ("tl_heat", "br_heat", "tl_off", "br_off", "tl_guiding_shift", "br_guiding_shift",
              "tl_centripetal_shift", "br_centripetal_shift")

    def __init__(self, cfg, where="bbox_head"):
        cfg = {**cfg, "corner_emb_channels": int(cfg.get("corner_emb_channels", 0))}
        super().__init__(cfg, where)
        reject_unsupported(cfg, {"centripetal_shift_channels": 2, "guiding_shift_channels": 2,
                                 "feat_adaption_conv_kernel": 3, "corner_emb_channels": 0}, where)
        c, n = self.in_channels, self.levels
        self.tl_feat_adaption = nn.ModuleList([DeformConv2d(c, c, 3, 1, 1) for _ in range(n)])
        self.br_feat_adaption = nn.ModuleList([DeformConv2d(c, c, 3, 1, 1) for _ in range(n)])
        self.tl_dcn_offset = nn.ModuleList([ConvModule(2, 18, 1, bias=False, act_cfg=None) for _ in range(n)])
        self.br_dcn_offset = nn.ModuleList([ConvModule(2, 18, 1, bias=False, act_cfg=None) for _ in range(n)])
        for name in ("tl_guiding_shift", "br_guiding_shift", "tl_centripetal_shift", "br_centripetal_shift"):
            setattr(self, name, nn.ModuleList([_branch(c, 2) for _ in range(n)]))

    def _level(self, x, i):
        out = super()._level(x, i)
        for s in ("tl", "br"):
            guide = getattr(self, f"{s}_guiding_shift")[i](out[f"{s}_pool"])
            offset = getattr(self, f"{s}_dcn_offset")[i](guide.detach())
            adapted = getattr(self, f"{s}_feat_adaption")[i](out[f"{s}_pool"], offset)
            out[f"{s}_guiding_shift"] = guide
            out[f"{s}_centripetal_shift"] = getattr(self, f"{s}_centripetal_shift")[i](adapted)
        return out
