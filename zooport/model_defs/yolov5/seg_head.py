"""YOLOv5 v7.0 instance segmentation heads: the ``Proto`` module and the ``Segment`` head.

``Segment`` is ``Detect`` with ``nm`` mask coefficients appended to every
prediction (no = 5 + nc + nm per anchor) plus ``Proto``, which turns the first
(stride-8) head input into ``nm`` prototype masks at stride 4.

The model class is :class:`zooport.model_defs.yolov5.tasks.YOLOv5SegModel`:

* ``raw(x)``: ``[p3, p4, p5, proto]``: per level (B, na*no, H, W)
  before any sigmoid (channel a*no + c = anchor a, field c), then the
  prototypes (B, nm, H8*2, W8*2).
* ``model(x)`` in eval: ``(pred, proto)``: pred (B, N, 5 + nc + nm): xywh
  pixels, objectness, class probabilities (sigmoid) and the raw mask
  coefficients (no sigmoid), rows level by level, anchor, y, x.
  Post-processing: :mod:`zooport.postprocess.yolov5_seg`.
"""
from __future__ import annotations

import torch
from torch import nn

from . import blocks as B


class Proto(nn.Module):
    """Conv3x3(c1 -> c_), nearest x2 upsample, Conv3x3(c_ -> c_), Conv1x1(c_ -> c2): (B, c1, H, W) -> (B, c2, 2H, 2W)."""

    def __init__(self, c1, c_=256, c2=32, *, opt):
        super().__init__()
        self.cv1 = B.Conv(c1, c_, 3, opt=opt)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.cv2 = B.Conv(c_, c_, 3, opt=opt)
        self.cv3 = B.Conv(c_, c2, opt=opt)

    def forward(self, x):
        return self.cv3(self.cv2(self.upsample(self.cv1(x))))


class Segment(B.Detect):
    """YOLOv5's ``Segment``: ``Detect`` with mask coefficients and ``proto`` (keys ``m.*``, ``proto.*``, ``anchors``)."""

    def __init__(self, nc, anchors, nm=32, npr=256, ch=(), *, stride=None, opt):
        super().__init__(nc, anchors, (), stride=stride, with_convs=False)
        self.nm = int(nm)
        self.npr = int(npr)
        self.no = 5 + nc + self.nm
        self.m = nn.ModuleList(nn.Conv2d(x, self.no * self.na, 1) for x in ch)
        self.proto = Proto(ch[0], self.npr, self.nm, opt=opt)

    def heads(self, xs: list) -> list:
        """Per level (B, na*no, H, W) before sigmoid, then the prototypes (B, nm, 2H0, 2W0)."""
        return [self.m[i](x) for i, x in enumerate(xs)] + [self.proto(xs[0])]

    def decode(self, outs: list):
        """``(pred (B, N, 5+nc+nm), proto)``: boxes and scores as ``Detect.decode``, mask coefficients raw."""
        *levels, proto = outs
        z = []
        for i, p in enumerate(levels):
            bs, _, ny, nx = p.shape
            y = p.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2)
            grid, anchor_grid = self.grids(i, p)
            xy, wh, conf, mask = y.split((2, 2, self.nc + 1, self.nm), 4)
            xy = (xy.sigmoid() * 2 + grid) * self.stride[i]
            wh = (wh.sigmoid() * 2) ** 2 * anchor_grid
            z.append(torch.cat((xy, wh, conf.sigmoid(), mask), 4).reshape(bs, -1, self.no))
        return torch.cat(z, 1), proto
