"""mmdetection-mini's test-time post-processing of its YOLO heads (``BaseYOLOHead._get_bboxes_single`` and
mmdet 2.x ``multiclass_nms``), on the raw head outputs.

Per output level i (mini's order, largest stride first), a (5 + nc) * na channel map (C, H, W):

1. rows ``(y * W + x) * na + a`` of ``pred.permute(1, 2, 0).reshape(-1, 5 + nc)``, anchors from
   YOLOAnchorGenerator (base sizes centred at stride / 2, shifted by the grid) in the same order;
2. x, y sigmoid, then the coder: ``YOLOBBoxCoder`` ``cx = (sx * s - (s - 1) / 2 - 0.5) * stride +
   anchor_cx`` (s = scale_x_y), ``w = exp(tw) * anchor_w``; ``YOLOV5BBoxCoder`` ``cx = (sx - 0.5) * 2 *
   stride + anchor_cx``, ``w = (2 sigmoid(tw))^2 * anchor_w``; boxes x1y1x2y2;
3. objectness sigmoid ``>= conf_thr``; the ``nms_pre`` highest objectness (``torch.topk``);
4. all levels concatenated; with ``rescale`` the letterbox pad (left, top) is subtracted and boxes are
   divided by the scale factor;
5. ``multiclass_nms``: a (box, class) pair is a candidate when the class probability (not yet multiplied)
   ``> score_thr``; its score is class probability * objectness; class-aware ``batched_nms``
   (:mod:`zooport.postprocess.mmdet`) with ``test_cfg.nms``; the first ``max_per_img``.

Returns ``(dets (N, 5) x1 y1 x2 y2 score, labels (N,) int64)``, best first.
"""
from __future__ import annotations

import torch

from ..mmdet.anchors import YOLOAnchorGenerator


def decode_level(pred: torch.Tensor, anchors: torch.Tensor, stride: int, nc: int, coder: str, scale_x_y: float):
    """(boxes (M, 4), objectness (M,), class probabilities (M, nc)) of one level's (C, H, W) map."""
    p = pred.permute(1, 2, 0).reshape(-1, 5 + nc).clone()
    p[:, :2] = torch.sigmoid(p[:, :2])
    cx = (anchors[:, 0] + anchors[:, 2]) * 0.5
    cy = (anchors[:, 1] + anchors[:, 3]) * 0.5
    aw = anchors[:, 2] - anchors[:, 0]
    ah = anchors[:, 3] - anchors[:, 1]
    if coder == "YOLOV5BBoxCoder":
        px = (p[:, 0] - 0.5) * 2 * stride + cx
        py = (p[:, 1] - 0.5) * 2 * stride + cy
        w = (p[:, 2].sigmoid() * 2) ** 2 * aw
        h = (p[:, 3].sigmoid() * 2) ** 2 * ah
    else:
        s = scale_x_y
        px = (p[:, 0] * s - 0.5 * (s - 1) - 0.5) * stride + cx
        py = (p[:, 1] * s - 0.5 * (s - 1) - 0.5) * stride + cy
        w = torch.exp(p[:, 2]) * aw
        h = torch.exp(p[:, 3]) * ah
    boxes = torch.stack((px - w / 2, py - h / 2, px + w / 2, py + h / 2), dim=-1)
    return boxes, torch.sigmoid(p[:, 4]).view(-1), torch.sigmoid(p[:, 5:]).view(-1, nc)


def get_bboxes(outs, arch, *, scale_factor=None, pad_param=None, rescale: bool = False, test_cfg: dict | None = None):
    """mini's detections of one image from its per-level raw maps ``outs`` ((C, H, W) or (1, C, H, W)),
    for a :class:`~zooport.parsers.mini.config.MiniArch`. ``scale_factor``: (w, h, w, h) or a number;
    ``pad_param``: (top, bottom, left, right) of a LetterResize. See the module docstring."""
    from ...postprocess.mmdet import batched_nms

    cfg = dict(arch.test_cfg if test_cfg is None else test_cfg)
    gen = YOLOAnchorGenerator({"strides": arch.strides, "base_sizes": arch.anchors}, arch.where)
    nc = arch.num_classes
    all_b, all_cls, all_conf = [], [], []
    for i, pred in enumerate(outs):
        pred = pred[0] if pred.dim() == 4 else pred
        pred = pred.detach().float()
        anchors = gen.level(i, int(pred.shape[-2]), int(pred.shape[-1]))
        b, conf, cls = decode_level(pred, anchors, arch.strides[i], nc, arch.coder, arch.scale_x_y)
        keep = conf.ge(float(cfg.get("conf_thr", -1))).nonzero().flatten()
        b, conf, cls = b[keep], conf[keep], cls[keep]
        nms_pre = int(cfg.get("nms_pre", -1))
        if 0 < nms_pre < conf.size(0):
            _, top = conf.topk(nms_pre)
            b, conf, cls = b[top], conf[top], cls[top]
        all_b.append(b)
        all_cls.append(cls)
        all_conf.append(conf)
    boxes, cls, conf = torch.cat(all_b), torch.cat(all_cls), torch.cat(all_conf)
    if conf.numel() == 0:
        return torch.zeros((0, 5)), torch.zeros((0,), dtype=torch.long)
    if rescale:
        if pad_param is not None:
            boxes = boxes - boxes.new_tensor([pad_param[2], pad_param[0], pad_param[2], pad_param[0]])
        boxes = boxes / boxes.new_tensor(scale_factor)
    valid = cls > float(cfg.get("score_thr", 0.0))
    cand = boxes[:, None, :].expand(-1, nc, 4)[valid]
    scores = (cls * conf[:, None])[valid]
    labels = valid.nonzero(as_tuple=False)[:, 1]
    if cand.numel() == 0:
        return torch.zeros((0, 5)), torch.zeros((0,), dtype=torch.long)
    keep = batched_nms(cand, scores, labels, cfg.get("nms") or {"type": "nms", "iou_threshold": 0.5})
    max_num = int(cfg.get("max_per_img", -1))
    if max_num > 0:
        keep = keep[:max_num]
    return torch.cat([cand[keep], scores[keep][:, None]], dim=1), labels[keep]
