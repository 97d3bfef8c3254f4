"""Prior (anchor / point) generation as MMDetection's prior generators do it.

All priors for a level come out location-major (row y, then column x), then
base-anchor minor: (H * W * A, 4) xyxy for anchors, which matches flattening a
head's (A * k, H, W) output with ``permute(1, 2, 0).reshape(-1, k)``.
"""
from __future__ import annotations

import math

import torch

from ...errors import ConfigError


def _pair(s):
    return (float(s[0]), float(s[1])) if isinstance(s, (list, tuple)) else (float(s), float(s))


class AnchorGenerator:
    """``type='AnchorGenerator'``: base anchors per level from base size, scales and ratios.

    scales = ``scales`` or ``octave_base_scale * 2**(i / scales_per_octave)``;
    h_ratio = sqrt(ratio), w_ratio = 1 / h_ratio; w = base * w_ratio * scale (ratio-major
    when ``scale_major``); centre = ``center_offset * base`` (0 by default: the cell's corner).
    """

    def __init__(self, cfg: dict, where: str):
        t = cfg.get("type", "AnchorGenerator")
        if t != "AnchorGenerator":
            raise ConfigError(f"{where}: unsupported anchor generator {t!r}")
        self.strides = [_pair(s) for s in cfg["strides"]]
        ratios = [float(r) for r in cfg.get("ratios", [1.0])]
        if cfg.get("scales") is not None:
            scales = [float(s) for s in cfg["scales"]]
        elif cfg.get("octave_base_scale") is not None:
            n = int(cfg["scales_per_octave"])
            scales = [float(cfg["octave_base_scale"]) * 2 ** (i / n) for i in range(n)]
        else:
            raise ConfigError(f"{where}: anchor_generator needs scales or octave_base_scale")
        base_sizes = cfg.get("base_sizes") or [min(s) for s in self.strides]
        self.center_offset = float(cfg.get("center_offset", 0.0))
        scale_major = bool(cfg.get("scale_major", True))
        if cfg.get("centers") is not None:
            raise ConfigError(f"{where}: anchor_generator centers are not supported")
        r = torch.tensor(ratios, dtype=torch.float32)
        sc = torch.tensor(scales, dtype=torch.float32)
        self.base = [base_anchors(float(bs), r, sc, (self.center_offset * bs, self.center_offset * bs), scale_major)
                     for bs in base_sizes]
        self.num_base_priors = len(ratios) * len(scales)
        self.num_base_priors_per_level = [self.num_base_priors] * len(self.base)

    def level(self, i: int, h: int, w: int) -> torch.Tensor:
        """(h * w * A, 4) xyxy anchors of level ``i`` for an (h, w) feature map."""
        sx, sy = self.strides[i]
        return grid_shift(self.base[i], h, w, sx, sy)


class YOLOAnchorGenerator:
    """``type='YOLOAnchorGenerator'``: per level a list of (w, h) base sizes centred at stride / 2."""

    def __init__(self, cfg: dict, where: str):
        self.strides = [_pair(s) for s in cfg["strides"]]
        self.base_sizes = [[(float(w), float(h)) for w, h in lvl] for lvl in cfg["base_sizes"]]
        if len(self.base_sizes) != len(self.strides):
            raise ConfigError(f"{where}: {len(self.base_sizes)} base_sizes levels but {len(self.strides)} strides")
        self.base = []
        for (sx, sy), sizes in zip(self.strides, self.base_sizes):
            xc, yc = sx / 2.0, sy / 2.0
            self.base.append(torch.tensor([[xc - 0.5 * w, yc - 0.5 * h, xc + 0.5 * w, yc + 0.5 * h]
                                           for w, h in sizes], dtype=torch.float32))
        n = {len(s) for s in self.base_sizes}
        if len(n) != 1:
            raise ConfigError(f"{where}: every level needs the same number of base sizes")
        self.num_base_priors = n.pop()
        self.num_base_priors_per_level = [self.num_base_priors] * len(self.base)

    def level(self, i: int, h: int, w: int) -> torch.Tensor:
        sx, sy = self.strides[i]
        return grid_shift(self.base[i], h, w, sx, sy)


def base_anchors(size: float, ratios: torch.Tensor, scales: torch.Tensor, center, scale_major: bool):
    """MMDetection's ``gen_single_level_base_anchors`` in float32: (R*S, 4) xyxy around ``center``.

    h_ratio = sqrt(ratio), w_ratio = 1 / h_ratio; ratio-major rows when ``scale_major``, else scale-major.
    """
    hr = torch.sqrt(ratios)
    wr = 1 / hr
    if scale_major:
        ws = (size * wr[:, None] * scales[None, :]).reshape(-1)
        hs = (size * hr[:, None] * scales[None, :]).reshape(-1)
    else:
        ws = (size * scales[:, None] * wr[None, :]).reshape(-1)
        hs = (size * scales[:, None] * hr[None, :]).reshape(-1)
    xc, yc = center
    return torch.stack([xc - 0.5 * ws, yc - 0.5 * hs, xc + 0.5 * ws, yc + 0.5 * hs], -1)


class SSDAnchorGenerator:
    """``type='SSDAnchorGenerator'``: per level anchors of sizes min_size and sqrt(min_size * max_size)
    at ratio 1, plus min_size at ratios 1/r and r for each r of ``ratios[level]``; centred at stride / 2.

    Without ``min_sizes``/``max_sizes`` the sizes follow MMDetection's hard-coded SSD300/SSD512 rule
    from ``basesize_ratio_range`` (percent steps of int(floor(max - min) / (levels - 2)), plus a first
    level of 7-15 % (SSD300 COCO), 10-20 % (SSD300 VOC), 4-10 % (SSD512 COCO) or 7-15 % (SSD512 VOC)).
    Row order per level: [ratio 1 small, ratio 1 large, 1/r0, r0, 1/r1, r1, ...].
    """

    def __init__(self, cfg: dict, where: str):
        self.strides = [_pair(s) for s in cfg["strides"]]
        ratios = cfg["ratios"]
        if len(ratios) != len(self.strides):
            raise ConfigError(f"{where}: {len(ratios)} ratio lists but {len(self.strides)} strides")
        mins, maxs = cfg.get("min_sizes"), cfg.get("max_sizes")
        if (mins is None) != (maxs is None):
            raise ConfigError(f"{where}: give both min_sizes and max_sizes, or neither")
        if mins is None:
            mins, maxs = _ssd_sizes(cfg, len(self.strides), where)
        if not len(mins) == len(maxs) == len(self.strides):
            raise ConfigError(f"{where}: {len(mins)} min_sizes, {len(maxs)} max_sizes, {len(self.strides)} strides")
        scale_major = bool(cfg.get("scale_major", True))
        self.base = []
        for k, (sx, sy) in enumerate(self.strides):
            rs = [1.0]
            for r in ratios[k]:
                rs += [1 / float(r), float(r)]
            scales = torch.tensor([1.0, math.sqrt(float(maxs[k]) / float(mins[k]))], dtype=torch.float32)
            anchors = base_anchors(float(mins[k]), torch.tensor(rs, dtype=torch.float32), scales,
                                   (sx / 2.0, sy / 2.0), scale_major)
            keep = list(range(len(rs)))
            keep.insert(1, len(rs))
            self.base.append(anchors[keep])
        self.num_base_priors_per_level = [len(b) for b in self.base]

    def level(self, i: int, h: int, w: int) -> torch.Tensor:
        sx, sy = self.strides[i]
        return grid_shift(self.base[i], h, w, sx, sy)


def _ssd_sizes(cfg: dict, levels: int, where: str):
    size = int(cfg.get("input_size", 300))
    lo, hi = (float(v) for v in cfg.get("basesize_ratio_range", (0.15, 0.9)))
    lo_p, hi_p = int(lo * 100), int(hi * 100)
    step = int(math.floor(hi_p - lo_p) / (levels - 2))
    mins = [int(size * r / 100) for r in range(lo_p, hi_p + 1, step)]
    maxs = [int(size * (r + step) / 100) for r in range(lo_p, hi_p + 1, step)]
    first = {(300, 0.15): (7, 15), (300, 0.2): (10, 20), (512, 0.1): (4, 10), (512, 0.15): (7, 15)}.get((size, lo))
    if first is None:
        raise ConfigError(f"{where}: without min_sizes/max_sizes MMDetection's SSD rule needs input_size 300 with "
                          f"basesize_ratio_range starting 0.15 or 0.2, or 512 with 0.1 or 0.15 (got {size}, {lo})")
    mins.insert(0, int(size * first[0] / 100))
    maxs.insert(0, int(size * first[1] / 100))
    return mins, maxs


def grid_shift(base: torch.Tensor, h: int, w: int, sx: float, sy: float) -> torch.Tensor:
    shift_x = torch.arange(0, w, dtype=torch.float32) * sx
    shift_y = torch.arange(0, h, dtype=torch.float32) * sy
    yy, xx = torch.meshgrid(shift_y, shift_x, indexing="ij")
    xx, yy = xx.reshape(-1), yy.reshape(-1)
    shifts = torch.stack([xx, yy, xx, yy], dim=-1)
    return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)


def points(h: int, w: int, stride: int, offset: float, with_stride: bool = False) -> torch.Tensor:
    """MlvlPointGenerator: (h * w, 2) centres ((x + offset) * stride, (y + offset) * stride),
    plus (stride, stride) columns when ``with_stride`` -> (h * w, 4)."""
    sx = (torch.arange(0, w, dtype=torch.float32) + offset) * stride
    sy = (torch.arange(0, h, dtype=torch.float32) + offset) * stride
    yy, xx = torch.meshgrid(sy, sx, indexing="ij")
    cols = [xx.reshape(-1), yy.reshape(-1)]
    if with_stride:
        s = torch.full_like(cols[0], float(stride))
        cols += [s, s]
    return torch.stack(cols, dim=-1)


def build_prior_generator(cfg: dict, where: str):
    t = cfg.get("type", "AnchorGenerator")
    if t == "AnchorGenerator":
        return AnchorGenerator(cfg, where)
    if t == "YOLOAnchorGenerator":
        return YOLOAnchorGenerator(cfg, where)
    if t == "SSDAnchorGenerator":
        return SSDAnchorGenerator(cfg, where)
    raise ConfigError(f"{where}: unsupported prior generator {t!r} (known: AnchorGenerator, YOLOAnchorGenerator, SSDAnchorGenerator)")


WH_RATIO_CLIP = abs(math.log(16 / 1000))
