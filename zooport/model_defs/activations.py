"""Darknet's activation functions (``src/activations.c`` of AlexeyAB/darknet), as torch ops.

Every function maps a (B, C, H, W) (or any-shaped) float tensor to a tensor of the
same shape, element-wise unless noted. The formulas follow Darknet's CPU code so
that parity with Darknet holds to float32 rounding:

* ``leaky`` slope 0.1 (not PyTorch's default 0.01);
* ``gelu`` is the tanh approximation with Darknet's constants;
* ``mish`` uses Darknet's softplus with threshold 20;
* ``normalize_channels*`` normalise over the channel axis (dim 1) per pixel.

:data:`ACTIVATIONS` is the explicit name -> function registry. A cfg naming an
activation that is not in it is rejected (Darknet would silently use relu).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_MISH_THRESHOLD = 20.0
_NORM_EPS = 0.0001  # Darknet's eps in activate_array_normalize_channels*


def linear(x):
    return x


def logistic(x):
    return torch.sigmoid(x)


def loggy(x):
    return 2.0 * torch.sigmoid(x) - 1.0


def relu(x):
    return F.relu(x)


def relu6(x):
    return torch.clamp(x, 0.0, 6.0)


def relie(x):
    return torch.where(x > 0, x, 0.01 * x)


def ramp(x):
    return F.relu(x) + 0.1 * x


def leaky(x):
    return F.leaky_relu(x, 0.1)


def tanh(x):
    return torch.tanh(x)


def elu(x):
    return torch.where(x >= 0, x, torch.expm1(x))


def selu(x):
    return torch.where(x >= 0, 1.0507 * x, 1.0507 * 1.6732 * torch.expm1(x))


def gelu(x):
    # Darknet: 0.5*x*(1 + tanh(0.797885*x + 0.035677*x^3))
    return 0.5 * x * (1.0 + torch.tanh(0.797885 * x + 0.035677 * x * x * x))


def plse(x):
    return torch.where(x < -4, 0.01 * (x + 4), torch.where(x > 4, 0.01 * (x - 4) + 1, 0.125 * x + 0.5))


def stair(x):
    n = torch.floor(x)
    half = torch.floor(x / 2)
    odd = torch.remainder(n, 2) != 0
    return torch.where(odd, (x - n) + half, half)


def hardtan(x):
    return torch.clamp(x, -1.0, 1.0)


def lhtan(x):
    return torch.where(x < 0, 0.001 * x, torch.where(x > 1, 0.001 * (x - 1) + 1, x))


def swish(x):
    # Darknet's x * logistic(x) is SiLU; torch's fused kernel is what PyTorch-trained swish nets (YOLOv5,
    # YOLOv4-csp) were run with, so exported YOLOv5 networks compute bit-identically to the original.
    return F.silu(x)


def _softplus(x):
    # Darknet's softplus_activate(x, 20): x above the threshold, exp(x) below -threshold, else log1p(exp(x))
    return torch.where(x > _MISH_THRESHOLD, x,
                       torch.where(x < -_MISH_THRESHOLD, torch.exp(x), torch.log1p(torch.exp(x))))


def mish(x):
    return x * torch.tanh(_softplus(x))


def hard_mish(x):
    return torch.where(x > 0, x, torch.where(x > -2, 0.5 * x * x + x, torch.zeros_like(x)))


def normalize_channels(x):
    """Per pixel: positive parts divided by (eps + sum of positive parts over channels); negatives -> 0."""
    pos = F.relu(x)
    return pos / (_NORM_EPS + pos.sum(dim=1, keepdim=True))


def normalize_channels_softmax(x):
    """Per pixel softmax over channels, without max subtraction, with eps in the denominator."""
    e = torch.exp(x)
    return e / (_NORM_EPS + e.sum(dim=1, keepdim=True))


def normalize_channels_softmax_maxval(x):
    e = torch.exp(x - x.amax(dim=1, keepdim=True))
    return e / (_NORM_EPS + e.sum(dim=1, keepdim=True))


ACTIVATIONS = {
    "linear": linear,
    "logistic": logistic,
    "loggy": loggy,
    "relu": relu,
    "relu6": relu6,
    "relie": relie,
    "ramp": ramp,
    "leaky": leaky,
    "revleaky": leaky,  # Darknet forwards revleaky exactly like leaky
    "tanh": tanh,
    "elu": elu,
    "selu": selu,
    "gelu": gelu,
    "plse": plse,
    "stair": stair,
    "hardtan": hardtan,
    "lhtan": lhtan,
    "swish": swish,
    "mish": mish,
    "hard_mish": hard_mish,
    "normalize_channels": normalize_channels,
    "normalize_channels_softmax": normalize_channels_softmax,
    "normalize_channels_softmax_maxval": normalize_channels_softmax_maxval,
}


def get_activation(name: str, *, where: str = ""):
    """The function for Darknet activation ``name``; UnsupportedError naming ``where`` if unknown."""
    fn = ACTIVATIONS.get(name)
    if fn is None:
        from ..errors import UnsupportedError

        raise UnsupportedError(f"{where}: unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return fn
