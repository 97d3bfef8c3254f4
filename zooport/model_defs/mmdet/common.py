"""Building blocks shared by the MMDetection modules, named as mmcv names them.

``ConvModule`` holds ``conv`` then the norm layer (``bn`` for BN, ``gn`` for GN,
as mmcv's ``build_norm_layer`` names them) then the activation, so state-dict
keys read ``<prefix>.conv.weight``, ``<prefix>.bn.running_mean``, ... exactly as
in MMDetection checkpoints. Parameters are created uninitialised
(``torch.empty``): loading always overwrites them.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ...errors import ConfigError


class Swish(nn.Module):
    """mmcv's Swish: x * sigmoid(x)."""

    def forward(self, x):
        return x * torch.sigmoid(x)


def build_act(cfg, where: str) -> nn.Module:
    """mmcv ``act_cfg`` dict (or None) -> module."""
    if cfg is None:
        return nn.Identity()
    t = cfg.get("type")
    if t == "ReLU":
        return nn.ReLU(inplace=False)
    if t == "ReLU6":
        return nn.ReLU6()
    if t == "LeakyReLU":
        return nn.LeakyReLU(float(cfg.get("negative_slope", 0.01)))
    if t in ("Swish",):
        return Swish()
    if t == "SiLU":
        return nn.SiLU()
    if t == "Sigmoid":
        return nn.Sigmoid()
    if t == "HSwish":
        return nn.Hardswish()
    raise ConfigError(f"{where}: unsupported activation type {t!r} (known: ReLU, ReLU6, LeakyReLU, Swish, SiLU, Sigmoid, HSwish)")


def build_norm(cfg, channels: int, where: str) -> tuple[str, nn.Module]:
    """mmcv ``norm_cfg`` -> (attribute name, module)."""
    t = cfg.get("type")
    if t in ("BN", "BN2d", "SyncBN"):
        return "bn", nn.BatchNorm2d(channels, eps=float(cfg.get("eps", 1e-5)), momentum=float(cfg.get("momentum", 0.1)))
    if t == "GN":
        if "num_groups" not in cfg:
            raise ConfigError(f"{where}: GN norm_cfg needs num_groups")
        return "gn", nn.GroupNorm(int(cfg["num_groups"]), channels, eps=float(cfg.get("eps", 1e-5)))
    raise ConfigError(f"{where}: unsupported norm type {t!r} (known: BN, SyncBN, GN)")


def conv2d(cin, cout, k, stride=1, padding=0, bias=True, groups=1, dilation=1) -> nn.Conv2d:
    # device="meta" is avoided (state dict loading with assign would be needed); empty is cheap
    c = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=bias, groups=groups, dilation=dilation)
    return c


def build_conv(conv_cfg, cin, cout, k, stride=1, padding=0, bias=True, groups=1, dilation=1,
               where: str = "conv") -> nn.Conv2d:
    """mmcv's ``build_conv_layer``: ``conv_cfg`` None / ``Conv`` / ``Conv2d`` is a plain conv;
    ``Conv2dAdaptivePadding`` is TensorFlow's "SAME" padding (asymmetric, from each input's size; mmcv
    ignores ``padding`` for it), i.e. :class:`~zooport.model_defs.same_padding.Conv2dSame`."""
    kind = (conv_cfg or {}).get("type", "Conv2d")
    extra = {k_: v for k_, v in (conv_cfg or {}).items() if k_ != "type"}
    if extra:
        raise ConfigError(f"{where}: conv_cfg arguments {sorted(extra)} are not supported")
    if kind in ("Conv", "Conv2d"):
        return conv2d(cin, cout, k, stride, padding, bias, groups, dilation)
    if kind == "Conv2dAdaptivePadding":
        from ..same_padding import Conv2dSame

        return Conv2dSame(cin, cout, k, stride=stride, dilation=dilation, groups=groups, bias=bias)
    raise ConfigError(f"{where}: conv_cfg type {kind!r} is not supported "
                      "(expected Conv2d or Conv2dAdaptivePadding)")


class ConvModule(nn.Module):
    """conv -> norm -> act, mmcv order ('conv', 'norm', 'act')."""

    def __init__(self, cin, cout, k, stride=1, padding=0, *, groups=1, dilation=1, bias="auto", conv_cfg=None,
                 norm_cfg=None, act_cfg={"type": "ReLU"}, where="ConvModule"):  # noqa: B006 - read only
        super().__init__()
        if bias == "auto":
            bias = norm_cfg is None
        self.conv = build_conv(conv_cfg, cin, cout, k, stride, padding, bool(bias), groups, dilation, where)
        self.norm_name = None
        if norm_cfg is not None:
            self.norm_name, norm = build_norm(norm_cfg, cout, where)
            self.add_module(self.norm_name, norm)
        self.activate = build_act(act_cfg, where)

    def forward(self, x):
        x = self.conv(x)
        if self.norm_name is not None:
            x = getattr(self, self.norm_name)(x)
        return self.activate(x)


class Scale(nn.Module):
    """mmcv's learnable scalar multiplier (key ``scale``, a 0-d parameter)."""

    def __init__(self, value: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x):
        return x * self.scale


def run_stages(owner: nn.Module, names: list, x, out_indices) -> tuple:
    """A backbone's stages: ``owner``'s submodules ``names`` run in order on ``x`` (B, C, H, W); returns the
    outputs of the stages whose index is in ``out_indices``, in stage order (MMDetection's ``out_indices``)."""
    outs = []
    for i, name in enumerate(names):
        x = getattr(owner, name)(x)
        if i in out_indices:
            outs.append(x)
    return tuple(outs)


@torch.no_grad()
def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv of the same class (plain or TF-SAME) computing bn(conv(x)) (eval statistics)."""
    fused = copy.deepcopy(conv)
    if fused.bias is None:
        fused.bias = nn.Parameter(torch.empty(conv.out_channels))
    std = torch.sqrt(bn.running_var + bn.eps)
    w = bn.weight / std
    fused.weight.copy_(conv.weight * w.reshape(-1, 1, 1, 1))
    b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_((b - bn.running_mean) * w + bn.bias)
    return fused


def fuse_modules(root: nn.Module) -> None:
    """Fold every BN that directly follows a conv: ConvModule(conv, bn), ResNet (convN, bnN), downsample."""
    for mod in list(root.modules()):
        if isinstance(mod, ConvModule) and mod.norm_name == "bn":
            mod.conv = fold_bn(mod.conv, mod.bn)
            del mod.bn
            mod.norm_name = None
            continue
        for i in range(1, 4):
            c, b = getattr(mod, f"conv{i}", None), getattr(mod, f"bn{i}", None)
            if isinstance(c, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                setattr(mod, f"conv{i}", fold_bn(c, b))
                setattr(mod, f"bn{i}", nn.Identity())
        ds = getattr(mod, "downsample", None)
        if isinstance(ds, nn.Sequential) and len(ds) == 2 and isinstance(ds[1], nn.BatchNorm2d):
            ds[0] = fold_bn(ds[0], ds[1])
            ds[1] = nn.Identity()


def reject_unsupported(cfg: dict, defaults: dict, where: str) -> None:
    """Raise when ``cfg`` sets an argument we do not implement to anything but its harmless default."""
    def norm(v):  # configs from .py files hold tuples, from JSON lists
        return [norm(e) for e in v] if isinstance(v, (list, tuple)) else v

    for k, default in defaults.items():
        if k in cfg and norm(cfg[k]) != norm(default) and cfg[k] is not None:
            raise ConfigError(f"{where}: {cfg.get('type')} argument {k}={cfg[k]!r} is not supported "
                              f"(only {default!r})")
