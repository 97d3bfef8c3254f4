"""The one place where mmdetection-mini's arithmetic departs from Darknet's.

mini's ``RRTinyYolov3Backbone`` runs Darknet yolov3-tiny's stride-1 ``[maxpool] size=2`` (layer 11) as
``nn.ZeroPad2d((0, 1, 0, 1))`` + ``nn.MaxPool2d(2, 1)``: the extra right column / bottom row is 0,
where Darknet pads with -FLT_MAX. After a leaky ReLU the border holds negative values, so the two
differ there (max(x, 0) vs x). A model read from a mini checkpoint keeps mini's arithmetic.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ZeroPadMaxPool(nn.Module):
    """(B, C, H, W) -> (B, C, H, W): zero-pad right and bottom by 1, then 2x2 max pool, stride 1.
    Called like the Darknet layers it replaces, with the list of its inputs."""

    def forward(self, xs) -> torch.Tensor:
        x = xs[0] if isinstance(xs, (list, tuple)) else xs
        return F.max_pool2d(F.pad(x, (0, 1, 0, 1)), 2, 1)


def mish(x: torch.Tensor) -> torch.Tensor:
    """mini's ``brick.Mish``: ``x * tanh(F.softplus(x))`` (PyTorch's softplus kernel, threshold 20).
    Darknet's ``log1p(exp(x))`` rounds differently in the last bit; over yolov4's 72 Mish layers that
    alone moves the outputs by ~1e-4, so a model read from a mini checkpoint uses mini's formula."""
    return x * torch.tanh(F.softplus(x))


def apply_mini_arithmetic(model, spec: dict) -> None:
    """Give a DarknetModel mini's arithmetic: ``spec = {"mish": True, "zero_pad_maxpool": [layer, ...]}``.
    Recorded as ``model.mini_arithmetic``, which the model's native checkpoint keeps (``native_arch``),
    so a saved and reloaded model still computes what mini computes."""
    if spec.get("mish"):
        for layer in model.layers:
            if getattr(layer, "act_name", None) == "mish":
                layer.act = mish
    for i in spec.get("zero_pad_maxpool", []):
        model.layers[int(i)] = ZeroPadMaxPool()
    model.mini_arithmetic = {"mish": bool(spec.get("mish")),
                             "zero_pad_maxpool": [int(i) for i in spec.get("zero_pad_maxpool", [])]}
