"""Darknet detection heads: [yolo], [region], [Gaussian_yolo], [detection] (inference only).

Each head module has no parameters and two methods, both taking the raw (B, C, H, W) tensor that
feeds the head (the previous layer's output, activation included):

* ``activate(x)`` -> (B, C, H, W): Darknet's in-place head output (what ``forward_*_layer`` leaves
  in ``l.output``; the goldens' ``headNNN_out.f32``). For [region] that buffer is Darknet's
  *flattened* layout (per cell, per anchor: coords, objectness, classes) viewed as (B, C, H, W).
* ``decode(x, img_h, img_w)`` -> (B, N, 4 + 1 + nc): box centre x, y, width, height in input pixels,
  objectness, per-class scores, with Darknet's box formulas (``get_*_box``). Rows run anchor-major,
  then grid row, then grid column. Sizes come from the tensor shapes, so tracing keeps H, W dynamic.

Per head, objectness * class score is the probability Darknet thresholds and prints:
[Gaussian_yolo] folds its (1 - mean uncertainty) factor into the class scores; [region] and
[detection] softmax their classes (when ``softmax=1``).
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import UnsupportedError

HEAD_TYPES = ("yolo", "region", "Gaussian_yolo", "detection")


def _grid(h: int, w: int, like):
    gy = torch.arange(h, dtype=like.dtype, device=like.device).view(1, 1, h, 1)
    gx = torch.arange(w, dtype=like.dtype, device=like.device).view(1, 1, 1, w)
    return gy, gx


def _mask_and_anchors(plan):
    """The head's mask and its anchor pairs, as the plan read them (head_rules.yolo_rule)."""
    mask, pairs = list(plan.attrs["mask"]), [list(p) for p in plan.attrs["anchors"]]
    # Darknet reads only num anchor pairs, and a mask index past them reads beyond its buffer; a few
    # AlexeyAB cfgs (cspx-p7-mish.cfg) list more pairs than num and mask into them: use the listed pairs.
    for m in mask:
        if not 0 <= m < len(pairs):
            raise plan.section.error("mask", f"mask index {m} is outside the {len(pairs)} anchor pairs given")
    return mask, [pairs[m] for m in mask]


class YoloHead(nn.Module):
    """[yolo]: logistic on x, y, objectness, classes (none with ``new_coords=1``, whose previous conv is
    logistic already), then x, y -> s*x - (s-1)/2 with ``scale_x_y = s``. Boxes: x = (col + x) / W * img_w;
    w = exp(tw) * anchor_w, or tw^2 * 4 * anchor_w with new_coords (anchors in input pixels)."""

    def __init__(self, plan, net_hw):
        super().__init__()
        sec, a = plan.section, plan.attrs  # sec: only to name the cfg line in errors
        self.classes = a["classes"]
        self.mask, self.anchors = _mask_and_anchors(plan)
        self.n = len(self.mask)
        self.no = 5 + self.classes
        self.scale_x_y = a["scale_x_y"]
        self.new_coords = bool(a["new_coords"])
        if plan.in_shape[0] != self.n * self.no:
            raise sec.error(None, f"gets {plan.in_shape[0]} channels; {self.n} anchors x (5 + {self.classes} "
                                  f"classes) = {self.n * self.no} expected (filters= of the layer before)")

    def _structured(self, x):
        b, _, h, w = x.shape
        p = x.reshape(b, self.n, self.no, h, w)
        xy, wh, rest = p[:, :, :2], p[:, :, 2:4], p[:, :, 4:]
        if not self.new_coords:
            xy = torch.sigmoid(xy)
            rest = torch.sigmoid(rest)
        s = self.scale_x_y
        if s != 1.0:
            xy = xy * s - 0.5 * (s - 1.0)
        return xy, wh, rest

    def activate(self, x):
        xy, wh, rest = self._structured(x)
        return torch.cat([xy, wh, rest], 2).reshape(x.shape)

    def decode(self, x, img_h, img_w):
        b, _, h, w = x.shape
        xy, wh, rest = self._structured(x)
        gy, gx = _grid(h, w, x)
        anchors = torch.tensor(self.anchors, dtype=x.dtype, device=x.device)
        aw, ah = anchors[:, 0].view(1, -1, 1, 1), anchors[:, 1].view(1, -1, 1, 1)
        bx = (xy[:, :, 0] + gx) / w * img_w
        by = (xy[:, :, 1] + gy) / h * img_h
        if self.new_coords:
            bw = wh[:, :, 0] * wh[:, :, 0] * 4.0 * aw
            bh = wh[:, :, 1] * wh[:, :, 1] * 4.0 * ah
        else:
            bw = torch.exp(wh[:, :, 0]) * aw
            bh = torch.exp(wh[:, :, 1]) * ah
        box = torch.stack([bx, by, bw, bh], 2)
        out = torch.cat([box, rest], 2)                      # (B, n, no, H, W)
        return out.permute(0, 1, 3, 4, 2).reshape(b, self.n * h * w, self.no)


class GaussianYoloHead(nn.Module):
    """[Gaussian_yolo]: per anchor 8 box entries (mu_x, sigma_x, mu_y, sigma_y, mu_w, sigma_w, mu_h, sigma_h),
    objectness, classes. Logistic on mu_x, sigma_x, mu_y, sigma_y, sigma_w, sigma_h, objectness, classes;
    ``scale_x_y`` on mu_x, mu_y. Box from the means; class scores times (1 - mean of the 4 sigmas)."""

    def __init__(self, plan, net_hw):
        super().__init__()
        sec, a = plan.section, plan.attrs  # sec: only to name the cfg line in errors
        self.classes = a["classes"]
        self.mask, self.anchors = _mask_and_anchors(plan)
        self.n = len(self.mask)
        self.no = 9 + self.classes
        self.scale_x_y = a["scale_x_y"]
        if a["yolo_point"] != "center":
            raise UnsupportedError(f"[Gaussian_yolo] (layer {plan.index}): only yolo_point=center is supported")
        if plan.in_shape[0] != self.n * self.no:
            raise sec.error(None, f"gets {plan.in_shape[0]} channels; {self.n} anchors x (9 + {self.classes}) "
                                  f"= {self.n * self.no} expected")

    def _structured(self, x):
        b, _, h, w = x.shape
        p = x.reshape(b, self.n, self.no, h, w)
        sig = torch.sigmoid(p)
        s = self.scale_x_y
        mu_x, mu_y = sig[:, :, 0:1], sig[:, :, 2:3]
        if s != 1.0:
            mu_x = mu_x * s - 0.5 * (s - 1.0)
            mu_y = mu_y * s - 0.5 * (s - 1.0)
        return torch.cat([mu_x, sig[:, :, 1:2], mu_y, sig[:, :, 3:4], p[:, :, 4:5], sig[:, :, 5:6],
                          p[:, :, 6:7], sig[:, :, 7:]], 2)

    def activate(self, x):
        return self._structured(x).reshape(x.shape)

    def decode(self, x, img_h, img_w):
        b, _, h, w = x.shape
        p = self._structured(x)
        gy, gx = _grid(h, w, x)
        anchors = torch.tensor(self.anchors, dtype=x.dtype, device=x.device)
        aw, ah = anchors[:, 0].view(1, -1, 1, 1), anchors[:, 1].view(1, -1, 1, 1)
        bx = (p[:, :, 0] + gx) / w * img_w
        by = (p[:, :, 2] + gy) / h * img_h
        bw = torch.exp(p[:, :, 4]) * aw
        bh = torch.exp(p[:, :, 6]) * ah
        uc = (p[:, :, 1] + p[:, :, 3] + p[:, :, 5] + p[:, :, 7]) / 4.0
        cls = p[:, :, 9:] * (1.0 - uc).unsqueeze(2)
        out = torch.cat([torch.stack([bx, by, bw, bh], 2), p[:, :, 8:9], cls], 2)
        return out.permute(0, 1, 3, 4, 2).reshape(b, self.n * h * w, 5 + self.classes)


class RegionHead(nn.Module):
    """[region] (YOLOv2): Darknet flattens the input to (H*W*n, coords+1+classes) per image, applies logistic
    to objectness and softmax to the classes. Boxes: x = (col + sigmoid(tx)) / W * img_w,
    w = exp(tw) * anchor_w / W * img_w (anchors in grid cells)."""

    def __init__(self, plan, net_hw):
        super().__init__()
        sec, a = plan.section, plan.attrs  # sec: only to name the cfg line in errors
        self.classes = a["classes"]
        self.coords = a["coords"]
        self.n = a["num"]
        self.softmax = bool(a["softmax"])
        self.tree = False  # tree= / map= are refused by the plan
        pairs = [list(p) for p in a["anchors"]] or [[0.5, 0.5]] * self.n  # Darknet's biases start at .5
        self.grid_anchors = pairs[:self.n]
        self.size = self.coords + 1 + self.classes
        if self.coords != 4:
            raise UnsupportedError(f"[region] (layer {plan.index}): coords={self.coords}; only 4 is supported")
        if plan.in_shape[0] != self.n * self.size:
            raise sec.error(None, f"gets {plan.in_shape[0]} channels; num={self.n} x (5 + {self.classes}) = "
                                  f"{self.n * self.size} expected")
        _, h, w = plan.in_shape
        # anchors in input pixels at the cfg's size (metadata)
        self.anchors = [[a[0] * net_hw[1] / w, a[1] * net_hw[0] / h] for a in self.grid_anchors]

    def _check(self):
        if self.tree:
            raise UnsupportedError("[region] with a hierarchical softmax (tree=) cannot be decoded: the tree "
                                   "file is not part of the cfg")

    def _structured(self, x):
        """(B, n, size, H, W) with objectness logistic and classes softmaxed (x, y, w, h raw)."""
        b, _, h, w = x.shape
        p = x.reshape(b, self.n, self.size, h, w)
        obj = torch.sigmoid(p[:, :, 4:5])
        cls = p[:, :, 5:]
        if self.softmax:
            cls = torch.softmax(cls, 2)
        return torch.cat([p[:, :, :4], obj, cls], 2)

    def activate(self, x):
        self._check()
        b, c, h, w = x.shape
        p = self._structured(x)
        # Darknet's flatten(): per cell, per anchor, the `size` entries contiguous
        return p.permute(0, 3, 4, 1, 2).reshape(b, c, h, w)

    def decode(self, x, img_h, img_w):
        self._check()
        b, _, h, w = x.shape
        p = self._structured(x)
        gy, gx = _grid(h, w, x)
        anchors = torch.tensor(self.grid_anchors, dtype=x.dtype, device=x.device)
        aw, ah = anchors[:, 0].view(1, -1, 1, 1), anchors[:, 1].view(1, -1, 1, 1)
        bx = (torch.sigmoid(p[:, :, 0]) + gx) / w * img_w
        by = (torch.sigmoid(p[:, :, 1]) + gy) / h * img_h
        bw = torch.exp(p[:, :, 2]) * aw / w * img_w
        bh = torch.exp(p[:, :, 3]) * ah / h * img_h
        out = torch.cat([torch.stack([bx, by, bw, bh], 2), p[:, :, 4:]], 2)
        return out.permute(0, 1, 3, 4, 2).reshape(b, self.n * h * w, self.size)


class DetectionHead(nn.Module):
    """[detection] (YOLOv1) on a flat input: side*side*classes class probabilities (softmaxed per cell when
    ``softmax=1``), then side*side*n confidences, then side*side*n*4 boxes. Boxes: x = (col + bx) / side * img_w,
    w = bw^2 * img_w with ``sqrt=1`` (bw * img_w otherwise); objectness = confidence."""

    def __init__(self, plan, net_hw):
        super().__init__()
        sec, a = plan.section, plan.attrs  # sec: only to name the cfg line in errors
        self.classes = a["classes"]
        self.n = a["num"]
        self.side = a["side"]
        self.coords = a["coords"]
        self.softmax = bool(a["softmax"])
        self.sqrt = bool(a["sqrt"])
        self.anchors = None
        need = self.side * self.side * ((1 + self.coords) * self.n + self.classes)
        total = plan.in_shape[0] * plan.in_shape[1] * plan.in_shape[2]
        if self.coords != 4 or total != need:
            raise sec.error(None, f"gets {total} inputs; side={self.side}, num={self.n}, coords={self.coords}, "
                                  f"classes={self.classes} need {need} (coords must be 4)")

    def _parts(self, x):
        b = x.shape[0]
        cells = self.side * self.side
        flat = x.reshape(b, -1)
        cls = flat[:, : cells * self.classes].reshape(b, cells, self.classes)
        if self.softmax:
            cls = torch.softmax(cls, -1)
        conf = flat[:, cells * self.classes: cells * (self.classes + self.n)].reshape(b, cells, self.n)
        boxes = flat[:, cells * (self.classes + self.n):].reshape(b, cells, self.n, 4)
        return cls, conf, boxes

    def activate(self, x):
        cls, conf, boxes = self._parts(x)
        b = x.shape[0]
        return torch.cat([cls.reshape(b, -1), conf.reshape(b, -1), boxes.reshape(b, -1)], 1).reshape(x.shape)

    def decode(self, x, img_h, img_w):
        cls, conf, boxes = self._parts(x)
        b = x.shape[0]
        side = self.side
        cell = torch.arange(side * side, dtype=x.dtype, device=x.device)
        col = (cell % side).view(1, -1, 1)
        row = torch.div(cell, side, rounding_mode="floor").view(1, -1, 1)
        bx = (boxes[..., 0] + col) / side * img_w
        by = (boxes[..., 1] + row) / side * img_h
        pw = boxes[..., 2] * boxes[..., 2] if self.sqrt else boxes[..., 2]
        ph = boxes[..., 3] * boxes[..., 3] if self.sqrt else boxes[..., 3]
        out = torch.cat([torch.stack([bx, by, pw * img_w, ph * img_h], -1), conf.unsqueeze(-1),
                         cls.unsqueeze(2).expand(b, side * side, self.n, self.classes)], -1)
        return out.reshape(b, side * side * self.n, 5 + self.classes)


HEAD_MODULES = {
    "yolo": YoloHead,
    "region": RegionHead,
    "Gaussian_yolo": GaussianYoloHead,
    "detection": DetectionHead,
}
