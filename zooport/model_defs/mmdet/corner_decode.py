"""Corner decoding of CornerNet / CentripetalNet (MMDetection 3.3 ``CornerHead._decode_heatmap``).

From the last level's maps of one image: sigmoid heat maps kept at their 3x3 local maxima, the top
``corner_topk`` (k) corners of each kind over all classes, positions + offsets, every (top-left,
bottom-right) pair scored by the mean corner score and rejected (score -1) when the classes differ,
the box is empty, and either the embeddings differ by more than ``distance_threshold`` (CornerNet)
or a centripetal-shifted corner falls outside the central region (CentripetalNet: mu = 1/2.4, 1/2.1
for areas > 3500, plus the area-ratio distance); coordinates scaled by input / map size and clamped
at 0; the best ``num_dets`` (1000) pairs. Then, per ``test_cfg``, the candidates with score > -0.1
go through class-aware soft-NMS (or NMS) and ``max_per_img``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _gather(feat, inds):
    """(1, C, H, W) map at flat positions ``inds`` (1, k) -> (1, k, C)."""
    f = feat.permute(0, 2, 3, 1).reshape(feat.shape[0], -1, feat.shape[1])
    return f.gather(1, inds[..., None].expand(-1, -1, f.shape[2]))


def _topk(heat, k):
    b, _, h, w = heat.shape
    scores, inds = torch.topk(heat.reshape(b, -1), k)
    clses = torch.div(inds, h * w, rounding_mode="floor")
    inds = inds % (h * w)
    return scores, inds, clses, torch.div(inds, w, rounding_mode="floor").float(), (inds % w).float()


def decode_corners(m: dict, img_hw, k=100, kernel=3, distance_threshold=0.5, num_dets=1000):
    """``m``: last-level maps of one image by group name -> boxes (1, n, 4), scores (1, n), classes (1, n)."""
    tl_heat, br_heat = m["tl_heat"].sigmoid(), m["br_heat"].sigmoid()
    b, _, h, w = tl_heat.shape
    inp_h, inp_w = img_hw
    pad = (kernel - 1) // 2
    tl_heat = tl_heat * (F.max_pool2d(tl_heat, kernel, 1, pad) == tl_heat).float()
    br_heat = br_heat * (F.max_pool2d(br_heat, kernel, 1, pad) == br_heat).float()
    tl_s, tl_i, tl_c, tl_y, tl_x = _topk(tl_heat, k)
    br_s, br_i, br_c, br_y, br_x = _topk(br_heat, k)
    tl_off, br_off = _gather(m["tl_off"], tl_i).view(b, k, 1, 2), _gather(m["br_off"], br_i).view(b, 1, k, 2)
    tl_x = tl_x.view(b, k, 1) + tl_off[..., 0]
    tl_y = tl_y.view(b, k, 1) + tl_off[..., 1]
    br_x = br_x.view(b, 1, k) + br_off[..., 0]
    br_y = br_y.view(b, 1, k) + br_off[..., 1]
    centripetal = "tl_centripetal_shift" in m
    if centripetal:
        tl_cs = _gather(m["tl_centripetal_shift"], tl_i).view(b, k, 1, 2).exp()
        br_cs = _gather(m["br_centripetal_shift"], br_i).view(b, 1, k, 2).exp()
        ct = [tl_x + tl_cs[..., 0], tl_y + tl_cs[..., 1], br_x - br_cs[..., 0], br_y - br_cs[..., 1]]
    sx, sy = inp_w / w, inp_h / h
    tl_x, tl_y, br_x, br_y = tl_x * sx, tl_y * sy, br_x * sx, br_y * sy
    z = torch.zeros_like(tl_x.expand(b, k, k))
    tl_x, tl_y = torch.where(tl_x > 0, tl_x, z), torch.where(tl_y > 0, tl_y, z)
    br_x, br_y = torch.where(br_x > 0, br_x, z), torch.where(br_y > 0, br_y, z)
    boxes = torch.stack((tl_x, tl_y, br_x, br_y), dim=3)
    area = ((br_x - tl_x) * (br_y - tl_y)).abs()
    scores = (tl_s.view(b, k, 1) + br_s.view(b, 1, k)) / 2
    tl_cls = tl_c.view(b, k, 1).expand(b, k, k)
    reject = (tl_cls != br_c.view(b, 1, k)) | (br_x <= tl_x) | (br_y <= tl_y)
    if centripetal:
        ct = [ct[0] * sx, ct[1] * sy, ct[2] * sx, ct[3] * sy]
        ct = [t * t.gt(0.0).type_as(t) for t in ct]
        ct_area = ((ct[2] - ct[0]) * (ct[3] - ct[1])).abs()
        mu = torch.where(area > 3500, torch.full_like(area, 1 / 2.1), torch.ones_like(area) / 2.4)
        cx, cy = (boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2
        r = [cx - mu * (boxes[..., 2] - boxes[..., 0]) / 2, cy - mu * (boxes[..., 3] - boxes[..., 1]) / 2,
             cx + mu * (boxes[..., 2] - boxes[..., 0]) / 2, cy + mu * (boxes[..., 3] - boxes[..., 1]) / 2]
        dists = ct_area / ((r[2] - r[0]) * (r[3] - r[1])).abs()
        reject = reject | (dists > distance_threshold)
        reject = reject | (ct[0] <= r[0]) | (ct[0] >= r[2]) | (ct[1] <= r[1]) | (ct[1] >= r[3])
        reject = reject | (ct[2] <= r[0]) | (ct[2] >= r[2]) | (ct[3] <= r[1]) | (ct[3] >= r[3])
    else:
        emb = (_gather(m["tl_emb"], tl_i).view(b, k, 1) - _gather(m["br_emb"], br_i).view(b, 1, k)).abs()
        reject = reject | (emb > distance_threshold)
    scores = torch.where(reject, -torch.ones_like(scores), scores).view(b, -1)
    scores, inds = torch.topk(scores, min(num_dets, scores.shape[1]))
    boxes = boxes.reshape(b, -1, 4).gather(1, inds[..., None].expand(-1, -1, 4))
    classes = tl_cls.reshape(b, -1).gather(1, inds)
    return boxes, scores, classes


def predict_corners(head, groups, img_hw, cfg):
    """One image (batch of 1 maps) -> (n, 6) x1, y1, x2, y2, score, label after soft-NMS."""
    from ...postprocess.mmdet import batched_nms

    boxes, scores, classes = decode_corners(head.decode_inputs(groups), img_hw, int(cfg.get("corner_topk", 100)),
                                            int(cfg.get("local_maximum_kernel", 3)),
                                            float(cfg.get("distance_threshold", 0.5)))
    boxes, scores, classes = boxes[0], scores[0], classes[0]
    keep = scores > -0.1
    boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    if boxes.numel() == 0:
        return boxes.new_zeros((0, 6))
    keep, scores = batched_nms(boxes, scores, classes, cfg.get("nms"), return_scores=True)
    n = int(cfg.get("max_per_img", -1))
    if n > 0:
        keep, scores = keep[:n], scores[:n]
    return torch.cat([boxes[keep], scores[:, None], classes[keep, None].to(boxes.dtype)], 1)
