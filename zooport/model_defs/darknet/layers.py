"""Torch modules for Darknet's non-head layers (AlexeyAB/darknet semantics, inference only).

Every module is built from one :class:`~zooport.parsers.darknet.plan.LayerPlan` and implements
``forward(xs)`` where ``xs`` is the list of the tensors named by ``plan.inputs`` (in order), each
(B, C, H, W) float32; it returns the layer's output (B, *plan.out_shape).

Parameters are created with ``torch.empty`` (never initialised: loading overwrites them) and named
exactly as ``plan.params`` names them, so ``state_dict()`` equals the plan's parameter list.
Settings are read from the cfg section with Darknet's defaults (``parse_*`` in ``src/parser.c``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UnsupportedError
from ..activations import get_activation
from .pool import AvgPool, Crop, LocalAvgPool, MaxPool, Reorg, Reorg3d, Upsample

BN_EPS = 1e-5  # Darknet normalize_cpu: (x - mean) / sqrt(var + .00001)


def _where(plan) -> str:
    sec = plan.section
    return f"{sec.path or '<cfg>'}:{sec.line}: [{sec.type}] (layer {plan.index})"


def _param_shapes(plan) -> dict[str, tuple[int, ...]]:
    return {name: tuple(shape) for name, shape in plan.params}


def _activation(plan, default: str):
    """The layer's activation as the plan read it (``attrs["activation"]``; ``default`` for layers without one)."""
    return get_activation(plan.attrs.get("activation", default), where=_where(plan))


class DarknetBN(nn.Module):
    """Inference batch norm with Darknet's eps; registers no ``num_batches_tracked``.

    ``with_bias=False`` for [connected] (its bias is added by the layer after BN)."""

    def __init__(self, n: int, with_bias: bool = True):
        super().__init__()
        # registration order = Darknet's file order (biases, scales, rolling mean, rolling variance)
        self.bias = nn.Parameter(torch.empty(n)) if with_bias else None
        self.weight = nn.Parameter(torch.empty(n))
        self.register_buffer("running_mean", torch.empty(n))
        self.register_buffer("running_var", torch.empty(n))

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, BN_EPS)


class ConvParams(nn.Module):
    """The ``conv.weight`` (n, c/groups, kh, kw) and optional ``conv.bias`` (n) of a layer."""

    def __init__(self, weight_shape, with_bias: bool):
        super().__init__()
        self.bias = nn.Parameter(torch.empty(weight_shape[0])) if with_bias else None
        self.weight = nn.Parameter(torch.empty(weight_shape))


class Convolutional(nn.Module):
    """[convolutional]: conv (+ BN) + activation (default **logistic**, as in Darknet).

    Padding: ``pad=1`` means size/2, else ``padding`` (default 0); Darknet's im2col pads pad*dilation cells
    and its output size (h + 2*pad - size)/stride + 1 ignores the dilation (see ``__init__``).
    ``share_index`` layers store nothing and run with the parameters of the layer they name.
    ``binary=1``/``xnor=1`` binarise the weights (sign x mean |w| per filter); ``xnor=1`` also the inputs
    (sign), like Darknet's CPU path.
    """

    def __init__(self, plan):
        super().__init__()
        a = plan.attrs  # everything as the plan read it (parsers/darknet/layer_rules.conv_rule)
        c, h, w = plan.in_shape
        n, oh, ow = plan.out_shape
        size = a["size"]
        self.stride = (a["stride_y"], a["stride_x"])
        self.dilation = a["dilation"]
        self.groups = a["groups"]
        pad = a["padding"]
        self.xnor = bool(a["xnor"])
        self.binary = bool(a["binary"]) or self.xnor
        self.act_name = a["activation"]
        self.act = _activation(plan, "logistic")
        self.share = a["share_index"]  # the absolute index of the layer whose weights this one uses, or None
        # Darknet's im2col pads pad*dilation cells on each side and produces its own output size
        # (h + 2*pad - size)/stride + 1 (the plan's); when a symmetric torch padding does not give that size,
        # pad the bottom/right explicitly (zeros, what im2col reads outside the input) and cut the excess.
        left = pad * self.dilation
        k_eff = self.dilation * (size - 1) + 1
        right_h = (oh - 1) * self.stride[0] + k_eff - h - left
        right_w = (ow - 1) * self.stride[1] + k_eff - w - left
        if ((h + 2 * left - k_eff) // self.stride[0] + 1 == oh
                and (w + 2 * left - k_eff) // self.stride[1] + 1 == ow):   # the usual case: plain symmetric
            self.padding, self.extra_pad = left, None
        else:
            self.padding, self.extra_pad = 0, (left, max(0, right_w), left, max(0, right_h))
        self.out_hw = (oh, ow)
        shapes = _param_shapes(plan)
        self.batch_normalize = bool(a["batch_normalize"])
        if self.share is None:
            wshape = shapes.get("conv.weight", (n, c // max(1, self.groups), size, size))
            self.bn = DarknetBN(n) if self.batch_normalize else None   # registered first: file order
            self.conv = ConvParams(wshape, with_bias=not self.batch_normalize)
        else:
            self.bn = None
            self.conv = None

    def forward(self, xs, shared=None):
        x = xs[0]
        src = shared if shared is not None else self
        weight, bias = src.conv.weight, src.conv.bias
        if self.binary:   # binary=1: sign(w) * mean|w| per filter; xnor=1 also binarises the input
            scale = weight.abs().mean(dim=(1, 2, 3), keepdim=True)
            weight = torch.where(weight > 0, scale, -scale)
        if self.xnor:
            x = torch.where(x > 0, 1.0, -1.0).to(x.dtype)
        if self.extra_pad is not None:
            x = F.pad(x, self.extra_pad)
        y = F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        if self.extra_pad is not None:
            y = y[:, :, : self.out_hw[0], : self.out_hw[1]]
        if src.bn is not None:
            y = src.bn(y)
        return self.act(y)

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold BN into the conv weight/bias in place (no-op without BN or for shared layers)."""
        if self.bn is None or self.conv is None:
            return
        bn = self.bn
        k = bn.weight / torch.sqrt(bn.running_var + BN_EPS)
        # new tensors rather than in-place: loaded weights may be views of one read-only file buffer
        self.conv.weight = nn.Parameter(self.conv.weight * k.view(-1, 1, 1, 1))
        self.conv.bias = nn.Parameter(bn.bias - bn.running_mean * k)
        self.bn = None


class Connected(nn.Module):
    """[connected]: flatten (C*H*W in C order), ``fc`` (+ BN without bias), bias, activation (default logistic)."""

    def __init__(self, plan):
        super().__init__()
        shapes = _param_shapes(plan)
        out = plan.out_shape[0]
        inp = plan.in_shape[0] * plan.in_shape[1] * plan.in_shape[2]
        self.fc = ConvParams(shapes.get("fc.weight", (out, inp)), with_bias=True)
        self.bn = DarknetBN(out, with_bias=False) if plan.attrs["batch_normalize"] else None
        self.act = _activation(plan, "logistic")

    def forward(self, xs):
        x = xs[0].flatten(1)
        y = x @ self.fc.weight.t()
        if self.bn is not None:
            y = self.bn(y)
        y = y + self.fc.bias
        return self.act(y)[:, :, None, None]


class Route(nn.Module):
    """[route]: each input sliced to its ``group_id``-th of ``groups`` channel chunks, then concatenated."""

    def __init__(self, plan):
        super().__init__()
        self.groups = plan.attrs["groups"]
        self.group_id = plan.attrs["group_id"]

    def forward(self, xs):
        if self.groups != 1:
            parts = []
            for x in xs:
                part = x.shape[1] // self.groups
                parts.append(x[:, part * self.group_id: part * (self.group_id + 1)])
            xs = parts
        return xs[0] if len(xs) == 1 else torch.cat(xs, 1)


class Shortcut(nn.Module):
    """[shortcut]: input (+ weighted) sum of the ``from`` layers, then activation (default linear).

    Darknet adds flat per-image element ``i`` of a ``from`` layer only where ``i`` is below that layer's
    size: with equal H, W this adds the first min(C, C_from) channels. ``weights_type`` per_feature
    ((n+1,) weights) or per_channel ((n+1, C)), normalised per Darknet's ``weights_normalization``:
    relu: relu(w) / (eps + sum relu(w)); softmax: exp(w - max) / (eps + sum exp(w - max)), eps = 1e-4.
    """

    def __init__(self, plan):
        super().__init__()
        self.act = _activation(plan, "linear")
        # per_layer is Darknet's per_feature, avg_relu its relu normalisation (parse_shortcut), mapped by the plan
        self.wtype = plan.attrs["weights_type"]
        self.wnorm = plan.attrs["weights_normalization"]
        if self.wtype not in ("none", "per_feature", "per_channel"):
            raise UnsupportedError(f"{_where(plan)}: weights_type={self.wtype!r}: expected per_feature or "
                                   f"per_channel")
        if self.wnorm not in ("none", "relu", "softmax"):
            raise UnsupportedError(f"{_where(plan)}: weights_normalization={self.wnorm!r}: expected relu or "
                                   f"softmax")
        shapes = _param_shapes(plan)
        self.weights = nn.Parameter(torch.empty(shapes["weights"])) if "weights" in shapes else None

    def _norm_weights(self):
        w = self.weights  # (n+1,) or (n+1, C)
        if self.wnorm == "relu":
            r = F.relu(w)
            return r / (0.0001 + r.sum(0, keepdim=True))
        if self.wnorm == "softmax":
            e = torch.exp(w - w.amax(0, keepdim=True))
            return e / (0.0001 + e.sum(0, keepdim=True))
        return w

    def forward(self, xs):
        x = xs[0]
        if self.weights is not None:
            w = self._norm_weights()
            w = w.view(w.shape[0], 1, 1, 1) if w.dim() == 1 else w.view(w.shape[0], -1, 1, 1)
            out = x * w[0]
        else:
            w = None
            out = x
        for i, a in enumerate(xs[1:], start=1):
            if a.shape[1:] != x.shape[1:]:
                a = _fit_flat(a, x)
            out = out + (a * w[i] if w is not None else a)
        return self.act(out)


def _fit_flat(a, x):
    """``a`` cut or zero-extended, per image as a flat vector, to the shape of ``x`` (Darknet's rule)."""
    na = a.shape[1] * a.shape[2] * a.shape[3]
    nx = x.shape[1] * x.shape[2] * x.shape[3]
    flat = a.reshape(a.shape[0], na)
    flat = flat[:, :nx] if na >= nx else F.pad(flat, (0, nx - na))
    return flat.reshape(x.shape)


class ScaleChannels(nn.Module):
    """[scale_channels]: output = from-layer * this input (B, C, 1, 1), or (B, 1, H, W) with
    ``scale_wh=1``, broadcast; then activation (default linear)."""

    def __init__(self, plan):
        super().__init__()
        self.act = _activation(plan, "linear")

    def forward(self, xs):
        return self.act(xs[1] * xs[0])


class Sam(nn.Module):
    """[sam]: element-wise input * from-layer, then activation (default linear)."""

    def __init__(self, plan):
        super().__init__()
        self.act = _activation(plan, "linear")

    def forward(self, xs):
        return self.act(xs[0] * xs[1])


class Identity(nn.Module):
    """[dropout] (inference), [cost] and [empty]/[silence]: the input unchanged."""

    def __init__(self, plan=None):
        super().__init__()

    def forward(self, xs):
        return xs[0]


class Activation(nn.Module):
    """[activation]: the activation alone (default linear)."""

    def __init__(self, plan):
        super().__init__()
        self.act = _activation(plan, "linear")

    def forward(self, xs):
        return self.act(xs[0])


class Softmax(nn.Module):
    """[softmax]: per image, the flat input split into ``groups`` equal chunks, each softmaxed
    with ``temperature``; output keeps the plan's shape."""

    def __init__(self, plan):
        super().__init__()
        if plan.attrs["spatial"]:  # (tree= is refused by the plan already)
            raise UnsupportedError(f"{_where(plan)}: spatial=1 softmax is not supported")
        self.groups = plan.attrs["groups"]
        self.temperature = plan.attrs["temperature"]
        self.out_shape = tuple(plan.out_shape)

    def forward(self, xs):
        x = xs[0]
        b = x.shape[0]
        flat = x.reshape(b, self.groups, -1)
        if self.temperature != 1.0:
            flat = flat / self.temperature
        return torch.softmax(flat, -1).reshape(b, *self.out_shape)


# canonical layer type -> module class (heads live in darknet_heads)
LAYER_MODULES = {
    "convolutional": Convolutional,
    "connected": Connected,
    "maxpool": MaxPool,
    "avgpool": AvgPool,
    "local_avgpool": LocalAvgPool,
    "route": Route,
    "shortcut": Shortcut,
    "upsample": Upsample,
    "reorg": Reorg,
    "reorg3d": Reorg3d,
    "scale_channels": ScaleChannels,
    "sam": Sam,
    "dropout": Identity,
    "cost": Identity,
    "empty": Identity,
    "crop": Crop,
    "softmax": Softmax,
    "activation": Activation,
}
