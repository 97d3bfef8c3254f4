"""SABL RetinaNet (side-aware boundary localisation) at inference: ``SABLRetinaHead``.

One square anchor per location (``square_anchor_generator``: size ``scales[0] * stride``); the
classification branch as RetinaNet's; the regression branch predicts, for each of the four box
sides, bucket logits and bucket offsets (``side = ceil(num_buckets / 2)`` channels each).
``forward`` -> [cls (nc), [(bucket cls (4*side), bucket offsets (4*side)) per level]], the golden's
``out1_L_0`` / ``out1_L_1``. Post-processing (MMDetection 3.3 ``_predict_by_feat_single``): per level
score threshold and ``nms_pre`` top-k on the class scores, bucketing decode, class score times the
localisation confidence, then ``min_bbox_size``, class-aware NMS and ``max_per_img``.
"""
from __future__ import annotations

import torch

from ...errors import ConfigError
from .anchors import build_prior_generator
from .common import conv2d, reject_unsupported
from .heads import _Stacked


class SABLRetinaHead(_Stacked):
    kind = "sabl"

    def __init__(self, cfg, where="bbox_head"):
        super().__init__(cfg, where)
        coder = dict(cfg.get("bbox_coder") or {})
        if coder.get("type", "BucketingBBoxCoder") != "BucketingBBoxCoder":
            raise ConfigError(f"{where}: SABLRetinaHead bbox_coder {coder.get('type')!r} not supported")
        reject_unsupported(coder, {"offset_topk": 2, "offset_upperbound": 1.0, "cls_ignore_neighbor": True,
                                   "clip_border": True}, where + ".bbox_coder")
        self.num_buckets = int(coder.get("num_buckets", 14))
        self.scale_factor = float(coder.get("scale_factor", 3.0))
        self.side_num = (self.num_buckets + 1) // 2
        self.prior_generator = build_prior_generator(cfg["square_anchor_generator"],
                                                     where + ".square_anchor_generator")
        if self.prior_generator.num_base_priors != 1:
            raise ConfigError(f"{where}: square_anchor_generator must give one anchor per location")
        self.strides = [int(s[0]) for s in self.prior_generator.strides]
        self.retina_cls = conv2d(self.feat_channels, self.cls_out_channels, 3, 1, 1)
        self.retina_bbox_reg = conv2d(self.feat_channels, self.side_num * 4, 3, 1, 1)
        self.retina_bbox_cls = conv2d(self.feat_channels, self.side_num * 4, 3, 1, 1)

    def forward(self, feats):
        cls, box = [], []
        for x in feats:
            c, r = self._feats(x)
            cls.append(self.retina_cls(c))
            box.append((self.retina_bbox_cls(r), self.retina_bbox_reg(r)))
        return [cls, box]

    def decode_level(self, i, bucket_cls, bucket_off, hw, img_hw, rows=None):
        """(M, 4*side) flattened predictions of level i (of its anchors ``rows``, all when None) ->
        boxes (M, 4), localisation confidence (M,)."""
        from .coders import bucket_decode

        pri = self.prior_generator.level(i, hw[0], hw[1])
        pri = pri if rows is None else pri[rows]
        if bucket_cls.shape[0] != pri.shape[0]:  # a batch of images flattened image-major
            pri = pri.repeat(bucket_cls.shape[0] // pri.shape[0], 1)
        return bucket_decode(pri, bucket_cls, bucket_off, self.num_buckets, self.scale_factor, img_hw)

    def predict_by_feat(self, groups, img_hw, cfg):
        """One image (batch of 1 tensors) -> (n, 6) x1, y1, x2, y2, score, label."""
        from .predict import _cls_prob, _flat, _post, filter_scores_and_topk

        k = 4 * self.side_num
        thr, nms_pre = float(cfg.get("score_thr", 0)), int(cfg.get("nms_pre", -1))
        boxes, scores, labels, confs = [], [], [], []
        for i, cls in enumerate(groups[0]):
            hw = (cls.shape[2], cls.shape[3])
            s, lab, rows = filter_scores_and_topk(_cls_prob(self, _flat(cls, self.cls_out_channels))[0], thr, nms_pre)
            bc, bo = (_flat(t, k)[0][rows] for t in groups[1][i])
            b, conf = self.decode_level(i, bc, bo, hw, img_hw, rows)
            boxes.append(b)
            scores.append(s)
            labels.append(lab)
            confs.append(conf)
        return _post(torch.cat(boxes), torch.cat(scores), torch.cat(labels), cfg, factors=torch.cat(confs))
