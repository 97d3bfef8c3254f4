"""YOLOv5 v7.0 classification head: ``Classify`` (``models.common.Classify``).

A ``ClassificationModel`` is a detection backbone cut after ``cutoff`` layers
whose last layer is replaced by ``Classify``; the model class is
:class:`zooport.model_defs.yolov5.tasks.YOLOv5ClsModel`.
"""
from __future__ import annotations

import torch
from torch import nn

from . import blocks as B

HIDDEN = 1280  # YOLOv5's fixed width of the head's Conv (EfficientNet-B0's)


class Classify(nn.Module):
    """(B, c1, H, W) (or a list of such, concatenated on channels) -> logits (B, c2).

    Conv(c1, 1280, k, s, p, g) with BN and the model's activation, global average
    pool, Dropout (identity in eval), Linear(1280, c2). Keys ``conv.conv.weight``,
    ``conv.bn.*``, ``linear.weight`` (c2, 1280), ``linear.bias``. The head's
    BatchNorm keeps PyTorch's defaults (eps 1e-5, momentum 0.1): YOLOv5 attaches
    the head after ``initialize_weights`` set 1e-3 / 0.03 on the backbone; a
    checkpoint's own values are read per module (overrides) anyway.
    """

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, *, opt):
        super().__init__()
        head_opt = B.BuildOptions(act=opt.act, csp_act=opt.csp_act, bn_eps=1e-5, bn_momentum=0.1)
        self.conv = B.Conv(c1, HIDDEN, k, s, B.autopad(k, p), g, opt=head_opt)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(p=0.0)
        self.linear = nn.Linear(HIDDEN, c2)
        self.nc = int(c2)

    def heads(self, xs: list) -> list:
        """``[logits (B, nc)]`` from the list of head inputs (concatenated on channels when several)."""
        x = xs[0] if len(xs) == 1 else torch.cat(xs, 1)
        return [self.linear(self.drop(self.pool(self.conv(x)).flatten(1)))]

    def forward(self, x):
        return self.heads(list(x) if isinstance(x, (list, tuple)) else [x])[0]
