"""Chroma upsampling and colour conversion, as stb_image does them, over whole planes.

stb picks one resampler per component from its expansion factors ``hs = hmax / h``,
``vs = vmax / v``: 1x1 copy; ``v_2`` (1x2): ``(3 near + far + 2) >> 2``; ``h_2`` (2x1): the same
3:1 filter horizontally with the two edge samples copied (and, as stb has it, the second-to-last
sample weighted toward its left neighbour); ``hv_2`` (2x2): the vertical 3:1 sums
``t = 3 near + far`` (unshifted), then ``(3 t + t' + 8) >> 4`` horizontally and ``(t + 2) >> 2`` at
the two row ends (its SSE2 variant computes the same numbers); anything else: nearest neighbour
(sample replication). "near" is the source row ``j // 2`` of output row ``j``, "far" the one above
(even ``j``) or below (odd ``j``), clamped to the component's rows.

Colour: stb's fixed-point YCbCr -> RGB with 20 fractional bits, the Cb term of G truncated to
16 bits (``& 0xffff0000``); Darknet asks for 3 channels, and stb's SSE2 colour kernel only serves
4-channel output, so this scalar formula is the one Darknet gets. Adobe CMYK / YCCK use stb's
``blinn_8x8`` multiply. Input planes (H', W') uint8; output (H, W, 3) uint8 RGB.
"""
from __future__ import annotations

import numpy as np


def _fix(x: float) -> int:
    """stb's ``float2fixed``: ``((int)(x * 4096.0f + 0.5f)) << 8``."""
    return int(np.float32(x) * np.float32(4096) + np.float32(0.5)) << 8


_CR_R, _CR_G, _CB_G, _CB_B = _fix(1.40200), -_fix(0.71414), -_fix(0.34414), _fix(1.77200)


def _vertical(p: np.ndarray, height: int):
    """Near and far rows for each of ``height`` output rows of a 2x vertical expansion."""
    n = p.shape[0]
    j = np.arange(height)
    near = j // 2
    far = np.where(j % 2 == 0, np.maximum(near - 1, 0), np.minimum(near + 1, n - 1))
    return p[near].astype(np.int32), p[far].astype(np.int32)


def _h2(t: np.ndarray, w: int, div: int, bias_edge: int, bias_mid: int, edge_shift: int, mid_shift: int):
    """Horizontal 2x of int32 rows ``t`` (R, w): out[2i-1] = (3 t[i-1] + t[i] + bias_mid) >> s,
    out[2i] = (3 t[i] + t[i-1] + bias_mid) >> s; both ends ``(t * div + bias_edge) >> edge_shift``."""
    r = t.shape[0]
    out = np.empty((r, 2 * w), dtype=np.int32)
    edge0 = (t[:, 0] * div + bias_edge) >> edge_shift
    if w == 1:
        out[:, 0] = out[:, 1] = edge0
        return out
    out[:, 0] = edge0
    out[:, 2 * w - 1] = (t[:, w - 1] * div + bias_edge) >> edge_shift
    prev, cur = t[:, :-1], t[:, 1:]
    out[:, 1:2 * w - 1:2] = (3 * prev + cur + bias_mid) >> mid_shift
    out[:, 2:2 * w - 1:2] = (3 * cur + prev + bias_mid) >> mid_shift
    return out


def upsample(p: np.ndarray, hs: int, vs: int, width: int, height: int) -> np.ndarray:
    """Component plane ``p`` (rows >= its own height, cols >= ceil(width / hs)), cropped to the
    component's true row count, -> (height, width) uint8 at full resolution."""
    w_lo = -(-width // hs)
    p = p[:, :w_lo]
    if hs == 1 and vs == 1:
        out = p[:height]
    elif hs == 1 and vs == 2:
        near, far = _vertical(p, height)
        out = (3 * near + far + 2) >> 2
    elif hs == 2 and vs == 1:
        t = p[:height].astype(np.int32)
        if w_lo == 1:
            out = np.repeat(t, 2, axis=1)
        else:
            # h_2: edges copied, inside (3 x[i] + x[i -/+ 1] + 2) >> 2; stb computes the
            # second-to-last output as (3 x[w-2] + x[w-1] + 2) >> 2 (weights swapped), kept.
            out = _h2(t, w_lo, 1, 0, 2, 0, 2)
            out[:, 2 * w_lo - 2] = (3 * t[:, w_lo - 2] + t[:, w_lo - 1] + 2) >> 2
    elif hs == 2 and vs == 2:
        near, far = _vertical(p, height)
        t = 3 * near + far
        if w_lo == 1:
            out = np.repeat((t + 2) >> 2, 2, axis=1)
        else:
            out = _h2(t, w_lo, 1, 2, 8, 2, 4)
    else:
        rows = np.minimum(np.arange(height) // vs, p.shape[0] - 1)
        out = np.repeat(p[rows], hs, axis=1)
    return np.ascontiguousarray(out[:height, :width]).astype(np.uint8)


def ycbcr_to_rgb(y, cb, cr) -> np.ndarray:
    """(H, W) uint8 planes -> (H, W, 3) uint8, stb's scalar fixed-point formula."""
    yf = (y.astype(np.int64) << 20) + (1 << 19)
    crv = cr.astype(np.int64) - 128
    cbv = cb.astype(np.int64) - 128
    r = (yf + crv * _CR_R) >> 20
    g = (yf + crv * _CR_G + ((cbv * _CB_G) & ~0xFFFF)) >> 20
    b = (yf + cbv * _CB_B) >> 20
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def blinn(x, m) -> np.ndarray:
    """stb's rounded 8-bit product ``x * m / 255``."""
    t = x.astype(np.int32) * m.astype(np.int32) + 128
    return ((t + (t >> 8)) >> 8).astype(np.uint8)


def to_rgb(planes: list, frame) -> np.ndarray:
    """Full-resolution component planes -> (H, W, 3) RGB as stb_image with 3 requested channels."""
    n = len(planes)
    if n == 1:
        return np.repeat(planes[0][:, :, None], 3, axis=2)
    if n == 3:
        is_rgb = sum(1 for c, want in zip(frame.comps, b"RGB") if c.cid == want) == 3 or \
            (frame.adobe_transform == 0 and not frame.jfif)
        if is_rgb:
            return np.stack(planes, axis=-1)
        return ycbcr_to_rgb(*planes)
    if frame.adobe_transform == 0:                      # CMYK (Adobe, inverted)
        return np.stack([blinn(p, planes[3]) for p in planes[:3]], axis=-1)
    rgb = ycbcr_to_rgb(*planes[:3])
    if frame.adobe_transform == 2:                      # YCCK
        return np.stack([blinn(255 - rgb[..., i], planes[3]) for i in range(3)], axis=-1)
    return rgb
