"""RepPointsV2 (``RepPointsV2Head``, as mmdetection-mini runs it; Chen et al. 2020) at inference.

Per FPN level, from (B, C, H, W) features:

* towers: ``stacked_convs`` cls / reg ConvModules, then ``shared_stacked_convs`` on the reg tower;
* foreground segmentation: ``reppoints_sem_out`` (1x1, nc logits) on the shared feature, and a 1x1
  ConvModule embedding added to the cls, reg and corner features;
* corner verification: ``hem_tl`` / ``hem_br`` corner-pool packs (two ConvModules, a top+left resp.
  bottom+right corner pool (:func:`~.corner.corner_pool`), 3x3 conv + GroupNorm(32), a 1x1 conv +
  GroupNorm(32) shortcut, ReLU, a ConvModule), then 3x3 convs: heat maps (tl, br) and sub-cell
  offsets (tl x, y, br x, y);
* RepPoints: initial points (9 (y, x) pairs) from a 3x3 + 1x1 conv; minus the regular 3x3 grid they are
  the offsets of two deformable convs (:mod:`zooport.model_defs.deform_conv`) over the features
  concatenated with the 6 heat-map / offset channels: classification (nc logits) and the refinement
  residual (refined = initial + residual).

``forward`` -> six groups, each a list over levels, in mini's order: cls (nc), pts_init (18),
pts_refine (18), hm_score (2), hm_offset (4), sem (nc). ``predict_by_feat``: mini's
``_get_bboxes_single``: boxes from the first two refined points (``exact_minmax``: x0, y0, x1, y1 in
cells) * stride + location, clipped to the image; on levels 1-4 every corner is moved to the best
heat-map cell of the 2x2 window at its position on heat-map level 0 (levels 1, 2) or 1 (levels
3, 4), plus that cell's offset, times that level's stride; then mmdet 2.x ``multiclass_nms``.
``decode_dense``: the same boxes for every location (no ``nms_pre``), (B, N, 4 + 1 + nc).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import ConfigError
from ..deform_conv import DeformConv2d
from .common import ConvModule, conv2d, reject_unsupported
from .corner import corner_pool
from .heads import _Stacked

GROUPS = ("cls", "pts_init", "pts_refine", "hm_score", "hm_offset", "sem")


class CornerPoolPack(nn.Module):
    """mini's ``CornerPoolPack`` (TLPool: top + left pools; BRPool: bottom + right)."""

    def __init__(self, dim, directions, norm, first_kernel_size, kernel_size, corner_dim, where):
        super().__init__()
        self.directions = directions
        fk, k = int(first_kernel_size), int(kernel_size)
        self.p1_conv1 = ConvModule(dim, corner_dim, fk, 1, (fk - 1) // 2, norm_cfg=norm, where=where)
        self.p2_conv1 = ConvModule(dim, corner_dim, fk, 1, (fk - 1) // 2, norm_cfg=norm, where=where)
        self.p_conv1 = conv2d(corner_dim, dim, 3, 1, 1, bias=False)
        self.p_gn1 = nn.GroupNorm(32, dim)  # hard-coded 32 groups in mini
        self.conv1 = conv2d(dim, dim, 1, bias=False)
        self.gn1 = nn.GroupNorm(32, dim)
        self.relu1 = nn.ReLU()
        self.conv2 = ConvModule(dim, dim, k, 1, (k - 1) // 2, norm_cfg=norm, where=where)

    def forward(self, x):
        a = corner_pool(self.p1_conv1(x), self.directions[0])
        b = corner_pool(self.p2_conv1(x), self.directions[1])
        return self.conv2(self.relu1(self.p_gn1(self.p_conv1(a + b)) + self.gn1(self.conv1(x))))


class RepPointsV2Head(_Stacked):
    kind = "reppoints_v2"

    def __init__(self, cfg, where="bbox_head"):
        super().__init__(cfg, where)
        reject_unsupported(cfg, {"use_grid_points": False, "center_init": True}, where)
        if cfg.get("transform_method", "exact_minmax") != "exact_minmax":
            raise ConfigError(f"{where}: RepPointsV2Head transform_method {cfg.get('transform_method')!r}; "
                              "only 'exact_minmax' (what RepPointsV2 uses) is supported")
        n = int(cfg.get("num_points", 9))
        k = int(round(n ** 0.5))
        if k * k != n or k % 2 == 0:
            raise ConfigError(f"{where}: num_points must be an odd square (9, 25, ...), got {n}")
        self.strides = [int(s) for s in cfg.get("point_strides", (8, 16, 32, 64, 128))]
        norm, fc = cfg.get("norm_cfg"), self.feat_channels
        if fc % 32:
            raise ConfigError(f"{where}: feat_channels={fc}: RepPointsV2's corner packs use GroupNorm(32)")
        self.shared_convs = nn.ModuleList(ConvModule(fc, fc, 3, 1, 1, norm_cfg=norm, where=where)
                                          for _ in range(int(cfg.get("shared_stacked_convs", 1))))
        pack = dict(norm=norm, first_kernel_size=cfg.get("first_kernel_size", 3),
                    kernel_size=cfg.get("kernel_size", 3), corner_dim=int(cfg.get("corner_dim", 64)), where=where)
        self.hem_tl = CornerPoolPack(fc, ("top", "left"), **pack)
        self.hem_br = CornerPoolPack(fc, ("bottom", "right"), **pack)
        pc = int(cfg.get("point_feat_channels", 256))
        self.reppoints_cls_conv = DeformConv2d(fc + 6, pc, k, 1, k // 2)
        self.reppoints_cls_out = conv2d(pc, self.cls_out_channels, 1)
        self.reppoints_pts_init_conv = conv2d(fc, pc, 3, 1, 1)
        self.reppoints_pts_init_out = conv2d(pc, 2 * n, 1)
        self.reppoints_pts_refine_conv = DeformConv2d(fc + 6, pc, k, 1, k // 2)
        self.reppoints_pts_refine_out = conv2d(pc, 2 * n, 1)
        self.reppoints_hem_tl_score_out = conv2d(fc, 1, 3, 1, 1)
        self.reppoints_hem_br_score_out = conv2d(fc, 1, 3, 1, 1)
        self.reppoints_hem_tl_offset_out = conv2d(fc, 2, 3, 1, 1)
        self.reppoints_hem_br_offset_out = conv2d(fc, 2, 3, 1, 1)
        self.reppoints_sem_out = conv2d(fc, self.cls_out_channels, 1)
        self.reppoints_sem_embedding = ConvModule(fc, fc, 1, norm_cfg=norm, where=where)
        self.relu = nn.ReLU()
        base = torch.arange(-(k // 2), k // 2 + 1, dtype=torch.float32)
        self.register_buffer("dcn_base_offset", torch.stack([base.repeat_interleave(k), base.repeat(k)], 1)
                             .reshape(1, -1, 1, 1), persistent=False)

    def _level(self, x):
        cls, pts = self._feats(x)
        shared = pts
        for m in self.shared_convs:
            shared = m(shared)
        sem = self.reppoints_sem_out(shared)
        emb = self.reppoints_sem_embedding(shared)
        cls, pts, hem = cls + emb, pts + emb, shared + emb
        tl, br = self.hem_tl(hem), self.hem_br(hem)
        hm_score = torch.cat([self.reppoints_hem_tl_score_out(tl), self.reppoints_hem_br_score_out(br)], 1)
        hm_offset = torch.cat([self.reppoints_hem_tl_offset_out(tl), self.reppoints_hem_br_offset_out(br)], 1)
        init = self.reppoints_pts_init_out(self.relu(self.reppoints_pts_init_conv(pts)))
        offset = init - self.dcn_base_offset.to(x.dtype)
        hm = torch.cat([hm_score, hm_offset], 1)
        cls_out = self.reppoints_cls_out(self.relu(self.reppoints_cls_conv(torch.cat([cls, hm], 1), offset)))
        refine = self.reppoints_pts_refine_out(self.relu(self.reppoints_pts_refine_conv(torch.cat([pts, hm], 1),
                                                                                        offset))) + init
        return cls_out, init, refine, hm_score, hm_offset, sem

    def forward(self, feats):
        outs = [self._level(x) for x in feats]
        return [[o[g] for o in outs] for g in range(len(GROUPS))]

    # -- decoding ----------------------------------------------------------------------------------------------
    @staticmethod
    def _select(score_map, x, y, stride):
        """mini's ``select`` (ks 2): the arg-max cell of the 2x2 window at (x, y) / stride of ``score_map``
        (H, W) logits -> (new x, new y) cells (float)."""
        h, w = score_map.shape[-2], score_map.shape[-1]
        _, idx = F.max_pool2d(score_map.sigmoid()[None, None], 2, 1, 0, return_indices=True)
        idx = idx[0, 0]
        xr = torch.floor((x / stride).clamp(min=0, max=idx.shape[-1] - 1)).long()
        yr = torch.floor((y / stride).clamp(min=0, max=idx.shape[-2] - 1)).long()
        sel = idx[yr, xr]
        return sel % w, torch.div(sel, w, rounding_mode="floor")

    def _level_boxes(self, i, refine, hm_scores, hm_offsets, img_hw, rows=None):
        """(M, 4) boxes of level i for one image; ``refine`` (18, H, W); ``rows`` the kept locations."""
        h, w = refine.shape[-2:]
        s = self.strides[i]
        pts = refine.reshape(-1, 2, h, w)[:2]  # the first two (y, x) points
        box = torch.stack([pts[0, 1], pts[0, 0], pts[1, 1], pts[1, 0]], -1).reshape(-1, 4)
        ys, xs = torch.meshgrid(torch.arange(h, dtype=box.dtype) * s, torch.arange(w, dtype=box.dtype) * s,
                                indexing="ij")
        ctr = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)
        if rows is not None:
            box, ctr = box[rows], ctr[rows]
        b = box * s + torch.cat([ctr, ctr], 1)
        ih, iw = float(img_hw[0]), float(img_hw[1])
        x1, y1 = b[:, 0].clamp(0, iw), b[:, 1].clamp(0, ih)
        x2, y2 = b[:, 2].clamp(0, iw), b[:, 3].clamp(0, ih)
        if i > 0:
            j = 0 if i in (1, 2) else 1
            hs = self.strides[j]
            off = hm_offsets[j].permute(1, 2, 0)
            nx1, ny1 = self._select(hm_scores[j][0], x1, y1, hs)
            nx2, ny2 = self._select(hm_scores[j][1], x2, y2, hs)
            x1 = ((nx1.to(b.dtype) + off[ny1, nx1, 0]) * hs).clamp(0, iw)
            y1 = ((ny1.to(b.dtype) + off[ny1, nx1, 1]) * hs).clamp(0, ih)
            x2 = ((nx2.to(b.dtype) + off[ny2, nx2, 2]) * hs).clamp(0, iw)
            y2 = ((ny2.to(b.dtype) + off[ny2, nx2, 3]) * hs).clamp(0, ih)
        return torch.stack([x1, y1, x2, y2], -1)

    def predict_by_feat(self, groups, img_hw, cfg):
        """mini's ``_get_bboxes_single`` for one image (batch-of-1 groups) -> (n, 6) x1 y1 x2 y2 score label."""
        from .coders import rescale_boxes
        from .predict import multiclass_nms

        nc = self.cls_out_channels
        hm_s = [t[0] for t in groups[3]]
        hm_o = [t[0] for t in groups[4]]
        nms_pre = int(cfg.get("nms_pre", -1))
        all_b, all_s = [], []
        for i, cls in enumerate(groups[0]):
            scores = cls[0].permute(1, 2, 0).reshape(-1, nc).sigmoid()
            rows = None
            if 0 < nms_pre < scores.shape[0]:
                rows = scores.max(1)[0].topk(nms_pre)[1]
                scores = scores[rows]
            all_b.append(self._level_boxes(i, groups[2][i][0], hm_s, hm_o, img_hw, rows))
            all_s.append(scores)
        boxes = rescale_boxes(torch.cat(all_b), cfg.get("_scale_factor"))
        scores = torch.cat(all_s)
        scores = torch.cat([scores, scores.new_zeros(scores.shape[0], 1)], 1)
        nms = dict(cfg.get("nms") or {"type": "nms", "iou_threshold": 0.5})
        if "iou_thr" in nms:  # mmcv 1.x's deprecated name, as mini's configs write it
            nms["iou_threshold"] = nms.pop("iou_thr")
        return multiclass_nms(boxes, scores, float(cfg.get("score_thr", 0)), nms, int(cfg.get("max_per_img", -1)))

    def decode_dense(self, groups, img_hw):
        """(B, N, 4 + 1 + nc): every location's verified box (xywh), factor 1, class probabilities."""
        out = []
        for b in range(groups[0][0].shape[0]):
            hm_s = [t[b] for t in groups[3]]
            hm_o = [t[b] for t in groups[4]]
            boxes = torch.cat([self._level_boxes(i, groups[2][i][b], hm_s, hm_o, img_hw)
                               for i in range(len(groups[0]))])
            probs = torch.cat([c[b].permute(1, 2, 0).reshape(-1, self.cls_out_channels).sigmoid() for c in groups[0]])
            xywh = torch.cat([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], 1)
            out.append(torch.cat([xywh, torch.ones_like(probs[:, :1]), probs], 1))
        return torch.stack(out)
