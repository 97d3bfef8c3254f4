"""RoIAlign in plain PyTorch (mmcv ``RoIAlign`` semantics) and MMDetection's ``SingleRoIExtractor``.

``roi_align(feat, rois, output_size, spatial_scale, sampling_ratio, aligned)``:
feat (B, C, H, W), rois (N, 5) rows ``batch_index, x1, y1, x2, y2`` in input
pixels -> (N, C, ph, pw). For every output bin mmcv averages
``grid_h x grid_w`` bilinear samples (``grid = sampling_ratio``, or
``ceil(roi_size / output_size)`` per RoI when ``sampling_ratio == 0``); with
``aligned=True`` the box is shifted by half a pixel (``x * scale - 0.5``) and
may be smaller than one pixel. A sample outside ``[-1, H] x [-1, W]`` counts
as 0; coordinates in ``[-1, 0]`` are clamped to 0 and the last row / column
is replicated, as mmcv's ``bilinear_interpolate`` does.

Vectorised without a loop over RoIs: bilinear sampling is separable, so the
average over one bin is ``Ay[p] @ F_window @ Ax[q]^T`` where ``Ay`` (ph, Kh)
and ``Ax`` (pw, Kw) sum the interpolation weights of the bin's samples per
feature row / column of a window of the feature map that covers the RoI. The
windows of a group of RoIs are gathered at once and contracted with two
batched matmuls; RoIs are grouped so that a group's windows stay within a
memory budget (a loop over a handful of groups, never over single RoIs).

For ONNX export the op is an autograd ``Function`` whose ``symbolic`` emits
ONNX ``RoiAlign`` (opset >= 16, ``coordinate_transformation_mode`` =
``half_pixel`` for ``aligned=True``, ``output_half_pixel`` otherwise,
``mode="avg"``), whose adaptive ``sampling_ratio=0`` rule is the same.
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import ConfigError

# elements of gathered feature windows per group (float32: 4 bytes each)
_WINDOW_BUDGET = 1 << 24


def _axis_weights(start, bin_size, grid, n_out: int, size: int, g_max: int):
    """Per RoI: window start (N,), window length (N,), weights (N, n_out, K) over the window.

    ``start``/``bin_size`` (N,) float32, ``grid`` (N,) int64 samples per bin, ``size`` the feature
    extent along this axis. K = the largest window length among these RoIs.
    """
    n = start.shape[0]
    dev = start.device
    p = torch.arange(n_out, device=dev, dtype=torch.float32)
    i = torch.arange(max(g_max, 1), device=dev, dtype=torch.float32)
    gridf = grid.clamp(min=1).to(torch.float32)
    # mmcv: start + p * bin + (i + 0.5) * bin / grid   (float32, this evaluation order)
    pos = (start[:, None, None] + p[None, :, None] * bin_size[:, None, None]
           + (i[None, None, :] + 0.5) * bin_size[:, None, None] / gridf[:, None, None])
    used = i[None, None, :] < grid[:, None, None].to(torch.float32)  # (N, 1, G)
    inside = (pos >= -1.0) & (pos <= float(size)) & used
    pos = pos.clamp(min=0.0)
    low = pos.floor().to(torch.int64)
    at_end = low >= size - 1
    low = torch.where(at_end, torch.full_like(low, size - 1), low)
    pos = torch.where(at_end, low.to(pos.dtype), pos)
    high = torch.where(at_end, low, low + 1)
    frac = pos - low.to(pos.dtype)
    w_low = torch.where(inside, 1.0 - frac, torch.zeros_like(frac))
    w_high = torch.where(inside, frac, torch.zeros_like(frac))
    big = torch.full_like(low, size)
    w0 = torch.where(inside, low, big).amin(dim=(1, 2)).clamp(max=size - 1)  # (N,)
    w1 = torch.where(inside, high, torch.full_like(high, -1)).amax(dim=(1, 2))
    length = (w1 - w0 + 1).clamp(min=1)
    k = int(length.max()) if n else 1
    # scatter the (zero for unused samples) weights to their window-relative row / column
    rel_low = (low - w0[:, None, None]).clamp(0, k - 1).reshape(n, n_out, -1)
    rel_high = (high - w0[:, None, None]).clamp(0, k - 1).reshape(n, n_out, -1)
    wts = start.new_zeros((n, n_out, k))
    wts.scatter_add_(2, rel_low, w_low.reshape(n, n_out, -1))
    wts.scatter_add_(2, rel_high, w_high.reshape(n, n_out, -1))
    return w0, length, wts


def _grid(extent, n_out, sampling_ratio):
    if sampling_ratio > 0:
        return torch.full_like(extent, sampling_ratio, dtype=torch.int64)
    return torch.ceil(extent / n_out).to(torch.int64).clamp(min=0)


def roi_align_reference(feat, rois, output_size, spatial_scale, sampling_ratio=0, aligned=True):
    """Plain-PyTorch RoIAlign (see the module docstring). Shapes: (B, C, H, W), (N, 5) -> (N, C, ph, pw)."""
    ph, pw = output_size
    n = rois.shape[0]
    _, c, h, w = feat.shape
    out = feat.new_zeros((n, c, ph, pw))
    if n == 0:
        return out
    rois = rois.to(torch.float32)
    off = 0.5 if aligned else 0.0
    scale = torch.tensor(spatial_scale, dtype=torch.float32)
    x1 = rois[:, 1] * scale - off
    y1 = rois[:, 2] * scale - off
    rw = rois[:, 3] * scale - off - x1
    rh = rois[:, 4] * scale - off - y1
    if not aligned:
        rw, rh = rw.clamp(min=1.0), rh.clamp(min=1.0)
    bw, bh = rw / pw, rh / ph
    gw, gh = _grid(rw, pw, sampling_ratio), _grid(rh, ph, sampling_ratio)
    count = (gw * gh).clamp(min=1).to(feat.dtype)
    fp = feat.permute(0, 2, 3, 1)  # (B, H, W, C): windows gather whole channel rows
    bidx = rois[:, 0].to(torch.int64)
    y0, ly, ay = _axis_weights(y1, bh, gh, ph, h, int(gh.max()))
    x0, lx, ax = _axis_weights(x1, bw, gw, pw, w, int(gw.max()))
    ay, ax = ay.to(feat.dtype), ax.to(feat.dtype)
    # group RoIs by (window height, window width) rounded up to powers of two, so that one tall and
    # one wide RoI do not force a large square window on everyone (a loop over groups, not RoIs)
    key = torch.ceil(torch.log2(ly.to(torch.float32))) * 64 + torch.ceil(torch.log2(lx.to(torch.float32)))
    for k in torch.unique(key):
        grp = torch.nonzero(key == k).squeeze(1)
        kh, kw = int(ly[grp].max()), int(lx[grp].max())
        step = max(1, _WINDOW_BUDGET // (kh * kw * c))
        for s in range(0, grp.numel(), step):
            idx = grp[s:s + step]
            m = idx.numel()
            rows = (y0[idx, None] + torch.arange(kh)).clamp(max=h - 1)
            cols = (x0[idx, None] + torch.arange(kw)).clamp(max=w - 1)
            win = fp[bidx[idx][:, None, None], rows[:, :, None], cols[:, None, :]]  # (m, kh, kw, C)
            t = torch.bmm(ay[idx, :, :kh], win.reshape(m, kh, kw * c))  # (m, ph, kw*C)
            t = t.reshape(m, ph, kw, c).permute(0, 2, 1, 3).reshape(m, kw, ph * c)
            res = torch.bmm(ax[idx, :, :kw], t).reshape(m, pw, ph, c).permute(0, 3, 2, 1)
            out[idx] = res / count[idx][:, None, None, None]
    return out


class _RoIAlignOp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feat, rois, ph: int, pw: int, spatial_scale: float, sampling_ratio: int, aligned: bool):
        # the ONNX graph gets RoiAlign from symbolic(); the reference's data-dependent grouping, traced
        # inside a Function, breaks the TorchScript exporter's passes, so it runs untraced
        state = torch._C._get_tracing_state()
        torch._C._set_tracing_state(None)
        try:
            return roi_align_reference(feat, rois, (ph, pw), spatial_scale, sampling_ratio, aligned)
        finally:
            torch._C._set_tracing_state(state)

    @staticmethod
    def symbolic(g, feat, rois, ph, pw, spatial_scale, sampling_ratio, aligned):
        from torch.onnx.symbolic_helper import _slice_helper

        boxes = _slice_helper(g, rois, axes=[1], starts=[1], ends=[5])
        bidx = _slice_helper(g, rois, axes=[1], starts=[0], ends=[1])
        bidx = g.op("Squeeze", bidx, g.op("Constant", value_t=torch.tensor([1], dtype=torch.int64)))
        bidx = g.op("Cast", bidx, to_i=7)  # INT64
        return g.op("RoiAlign", feat, boxes, bidx, output_height_i=ph, output_width_i=pw,
                    sampling_ratio_i=sampling_ratio, spatial_scale_f=spatial_scale, mode_s="avg",
                    coordinate_transformation_mode_s="half_pixel" if aligned else "output_half_pixel")


def roi_align(feat, rois, output_size, spatial_scale, sampling_ratio=0, aligned=True):
    """RoIAlign that exports to ONNX ``RoiAlign``; eager: :func:`roi_align_reference`."""
    ph, pw = output_size
    return _RoIAlignOp.apply(feat, rois, int(ph), int(pw), float(spatial_scale), int(sampling_ratio), bool(aligned))


class SingleRoIExtractor(nn.Module):
    """``SingleRoIExtractor``: each RoI is pooled from one level, chosen by its scale sqrt(w * h):
    ``level = clamp(floor(log2(scale / finest_scale + 1e-6)), 0, L - 1)`` (finest_scale 56 by default).

    ``forward(feats, rois)``: feats = the first L neck levels, rois (N, 5) -> (N, C, out, out).
    """

    def __init__(self, cfg: dict, where: str):
        super().__init__()
        layer = dict(cfg.get("roi_layer") or {})
        if layer.get("type") != "RoIAlign":
            raise ConfigError(f"{where}.roi_layer: type {layer.get('type')!r} is not supported "
                              "(zooport implements RoIAlign only)")
        if layer.get("pool_mode", "avg") != "avg":
            raise ConfigError(f"{where}.roi_layer: pool_mode {layer.get('pool_mode')!r} is not supported (only 'avg')")
        extra = {k: v for k, v in cfg.items() if k in ("roi_scale_factor", "gc_context") and v}
        if extra:
            raise ConfigError(f"{where}: {sorted(extra)} not supported")
        size = layer.get("output_size", 7)
        self.output_size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.sampling_ratio = int(layer.get("sampling_ratio", 0))
        self.aligned = bool(layer.get("aligned", True))
        self.featmap_strides = [int(s) for s in cfg["featmap_strides"]]
        self.out_channels = int(cfg["out_channels"])
        self.finest_scale = float(cfg.get("finest_scale", 56))

    @property
    def num_inputs(self) -> int:
        return len(self.featmap_strides)

    def map_roi_levels(self, rois):
        scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
        lvl = torch.floor(torch.log2(scale / self.finest_scale + 1e-6))
        return lvl.clamp(min=0, max=self.num_inputs - 1).long()

    def forward(self, feats, rois):
        lvls = self.map_roi_levels(rois)
        c = feats[0].shape[1]
        exporting = torch.onnx.is_in_onnx_export()
        out = feats[0].new_zeros((rois.shape[0], c) + self.output_size)
        for i, stride in enumerate(self.featmap_strides):
            if exporting:  # static graph: pool every RoI at every level, keep the right level
                # other levels' RoIs become empty boxes (an adaptive grid of 0 samples: nearly free)
                mine = (lvls == i)[:, None]
                r = torch.cat([rois[:, :1], torch.where(mine, rois[:, 1:], torch.zeros_like(rois[:, 1:]))], 1)
                pooled = roi_align(feats[i], r, self.output_size, 1.0 / stride, self.sampling_ratio, self.aligned)
                out = torch.where((lvls == i)[:, None, None, None], pooled, out)
                continue
            inds = torch.nonzero(lvls == i).squeeze(1)
            if inds.numel():
                out[inds] = roi_align(feats[i], rois[inds], self.output_size, 1.0 / stride,
                                      self.sampling_ratio, self.aligned)
        return out
