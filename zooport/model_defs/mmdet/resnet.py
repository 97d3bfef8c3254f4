"""MMDetection's ResNet backbone (``type='ResNet'``), keys as in mmdet checkpoints.

Input (B, 3, H, W) -> tuple of the stages in ``out_indices``: stage i has
``base_channels * 2**i * expansion`` channels and stride 4 * 2**i.
"""
from __future__ import annotations

from torch import nn

from ...errors import ConfigError
from .common import build_norm, conv2d, reject_unsupported, run_stages

ARCH = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
        101: ("bottleneck", (3, 4, 23, 3)), 152: ("bottleneck", (3, 8, 36, 3))}


def _bn(cfg, ch, where):
    name, mod = build_norm(cfg, ch, where)
    if name != "bn":
        raise ConfigError(f"{where}: ResNet supports BN norm only, got {cfg.get('type')!r}")
    return mod


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride, downsample, norm_cfg, style, dilation, where):
        super().__init__()
        self.conv1 = conv2d(inplanes, planes, 3, stride, dilation, bias=False, dilation=dilation)
        self.bn1 = _bn(norm_cfg, planes, where)
        self.conv2 = conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _bn(norm_cfg, planes, where)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride, downsample, norm_cfg, style, dilation, where):
        super().__init__()
        # pytorch style strides the 3x3 conv, caffe style the first 1x1
        s1, s2 = (1, stride) if style == "pytorch" else (stride, 1)
        self.conv1 = conv2d(inplanes, planes, 1, s1, 0, bias=False)
        self.bn1 = _bn(norm_cfg, planes, where)
        self.conv2 = conv2d(planes, planes, 3, s2, dilation, bias=False, dilation=dilation)
        self.bn2 = _bn(norm_cfg, planes, where)
        self.conv3 = conv2d(planes, planes * 4, 1, 1, 0, bias=False)
        self.bn3 = _bn(norm_cfg, planes * 4, where)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, cfg: dict, where: str = "backbone"):
        super().__init__()
        reject_unsupported(cfg, {"deep_stem": False, "avg_down": False, "dcn": None, "plugins": None,
                                 "stage_with_dcn": (False, False, False, False), "in_channels": 3}, where)
        depth = cfg.get("depth")
        if depth not in ARCH:
            raise ConfigError(f"{where}: ResNet depth {depth!r} not supported (known: {sorted(ARCH)})")
        kind, stage_blocks = ARCH[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        num_stages = int(cfg.get("num_stages", 4))
        strides = list(cfg.get("strides", (1, 2, 2, 2)))[:num_stages]
        dilations = list(cfg.get("dilations", (1, 1, 1, 1)))[:num_stages]
        style = cfg.get("style", "pytorch")
        if style not in ("pytorch", "caffe"):
            raise ConfigError(f"{where}: ResNet style must be 'pytorch' or 'caffe', got {style!r}")
        base = int(cfg.get("base_channels", 64))
        stem = int(cfg.get("stem_channels") or base)
        norm_cfg = cfg.get("norm_cfg") or {"type": "BN"}
        self.out_indices = tuple(cfg.get("out_indices", (0, 1, 2, 3)))
        if any(not 0 <= i < num_stages for i in self.out_indices):
            raise ConfigError(f"{where}: out_indices {self.out_indices} outside 0..{num_stages - 1}")
        self.conv1 = conv2d(3, stem, 7, 2, 3, bias=False)
        self.bn1 = _bn(norm_cfg, stem, where)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = stem
        self.res_layers = []
        self.out_channels = []
        for i in range(num_stages):
            planes = base * 2 ** i
            downsample = None
            if strides[i] != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(conv2d(inplanes, planes * block.expansion, 1, strides[i], 0, bias=False),
                                           _bn(norm_cfg, planes * block.expansion, where))
            blocks = [block(inplanes, planes, strides[i], downsample, norm_cfg, style, dilations[i], where)]
            inplanes = planes * block.expansion
            for _ in range(1, stage_blocks[i]):
                blocks.append(block(inplanes, planes, 1, None, norm_cfg, style, dilations[i], where))
            name = f"layer{i + 1}"
            self.add_module(name, nn.Sequential(*blocks))
            self.res_layers.append(name)
            self.out_channels.append(inplanes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return run_stages(self, self.res_layers, x, self.out_indices)
