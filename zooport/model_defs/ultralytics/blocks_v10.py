"""YOLOv10's blocks as Ultralytics (8.1+) defines them: ``SCDown`` and ``PSA`` (``CIB`` and ``RepVGGDW``, the inner
blocks of ``C2fCIB``, live in :mod:`.blocks` with the other inner blocks).

Submodule names equal Ultralytics' so state-dict keys match; sizes are explicit (from a pickled
module tree or the yaml builder). Tensors are (B, C, H, W).
"""
from __future__ import annotations

import torch
from torch import nn

from ..yolov5.blocks import Conv
from .blocks import Attention


class SCDown(nn.Module):
    """Spatial-channel decoupled downsampling: ``cv2(cv1(x))``, 1x1 conv to c2 then a depthwise k x k,
    stride s conv without activation."""

    def __init__(self, c1, c2, k, s, *, opt):
        super().__init__()
        self.cv1 = Conv(c1, c2, 1, 1, opt=opt)
        self.cv2 = Conv(c2, c2, k, s, g=c2, act=False, opt=opt)

    def forward(self, x):
        return self.cv2(self.cv1(x))


class PSA(nn.Module):
    """YOLOv10's partial self-attention: ``a, b = cv1(x).split(c)``; ``b += attn(b)``; ``b += ffn(b)``;
    out ``cv2(cat(a, b))`` (ffn = Conv(c, hidden, 1), Conv(hidden, c, 1, act=False))."""

    def __init__(self, c1, c, num_heads, key_dim, head_dim, hidden, *, opt):
        super().__init__()
        self.c = c
        self.cv1 = Conv(c1, 2 * c, 1, 1, opt=opt)
        self.cv2 = Conv(2 * c, c1, 1, opt=opt)
        self.attn = Attention(c, num_heads, key_dim, head_dim, opt=opt)
        self.ffn = nn.Sequential(Conv(c, hidden, 1, opt=opt), Conv(hidden, c, 1, act=False, opt=opt))

    def forward(self, x):
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        b = b + self.attn(b)
        b = b + self.ffn(b)
        return self.cv2(torch.cat((a, b), 1))
