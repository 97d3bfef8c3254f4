"""Dequantisation and stb_image's integer 8x8 inverse DCT, vectorised over all blocks.

stb_image (as Darknet builds it: x86-64, so SSE2 is on) runs its SSE2 IDCT, which is designed to
equal its scalar one but works on 16-bit lanes: sums ``s0+s4``, ``s0-s4``, ``s1+s7``, ``s3+s5`` wrap at
16 bits, the column pass result is saturated to int16 before the row pass, and the row pass result
is saturated to int16 then to 0..255. We reproduce exactly that, in int32 numpy arithmetic (32-bit
products and sums wrap the same way as the SIMD ``madd``).

Shapes: coefficients ``(N, 64)`` zig-zag order -> blocks ``(N, 8, 8)`` uint8 (row, column) ->
component plane ``(bh * 8, bw * 8)`` uint8.
"""
from __future__ import annotations

import numpy as np

# Zig-zag index k -> natural (row * 8 + col) position.
ZIGZAG = np.array([
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52,
    45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63], dtype=np.intp)


def _f2f(x: float) -> int:
    """stb's fixed-point constant: ``(int)(x * 4096 + 0.5)`` with ``x`` a float literal."""
    return int(np.float32(x) * np.float32(4096) + np.float32(0.5))


_A, _B, _C = _f2f(0.5411961), _f2f(-1.847759065), _f2f(0.765366865)
_P5, _P1, _P2 = _f2f(1.175875602), _f2f(-0.899976223), _f2f(-2.562915447)
_P3, _P4 = _f2f(-1.961570560), _f2f(-0.390180644)
_T0, _T1, _T2, _T3 = _f2f(0.298631336), _f2f(2.053119869), _f2f(3.072711026), _f2f(1.501321110)


def _wrap16(x):
    return ((x + 32768) & 0xFFFF) - 32768


def _pass(d, bias: int, shift: int):
    """One 1-D pass along axis 1 of int32 ``d`` (N, 8, 8); returns int32 saturated to int16."""
    r = [d[:, i, :] for i in range(8)]
    t2 = r[2] * _A + r[6] * (_A + _B)
    t3 = r[2] * (_A + _C) + r[6] * _A
    t0 = _wrap16(r[0] + r[4]) << 12
    t1 = _wrap16(r[0] - r[4]) << 12
    x0, x3, x1, x2 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    y0 = r[7] * (_P3 + _T0) + r[3] * _P3
    y2 = r[7] * _P3 + r[3] * (_P3 + _T2)
    y1 = r[5] * (_P4 + _T1) + r[1] * _P4
    y3 = r[5] * _P4 + r[1] * (_P4 + _T3)
    s17, s35 = _wrap16(r[1] + r[7]), _wrap16(r[3] + r[5])
    y4 = s17 * (_P5 + _P1) + s35 * _P5
    y5 = s17 * _P5 + s35 * (_P5 + _P2)
    x4, x5, x6, x7 = y0 + y4, y1 + y5, y2 + y5, y3 + y4
    out = np.empty_like(d)
    for lo, hi, a, b in ((0, 7, x0, x7), (1, 6, x1, x6), (2, 5, x2, x5), (3, 4, x3, x4)):
        a = a + bias
        out[:, lo, :] = (a + b) >> shift
        out[:, hi, :] = (a - b) >> shift
    return np.clip(out, -32768, 32767, out=out)


def dequantize(coefs_zz, quant) -> np.ndarray:
    """``coefs_zz`` (N, 64) ints in zig-zag order, ``quant`` 64 ints in zig-zag order ->
    (N, 8, 8) int32 in natural order, each product wrapped to int16 as stb stores it (short)."""
    q = np.asarray(quant, dtype=np.int64)
    deq = _wrap16(np.asarray(coefs_zz, dtype=np.int64) * q)
    nat = np.empty_like(deq)
    nat[:, ZIGZAG] = deq
    return nat.reshape(-1, 8, 8).astype(np.int32)


def idct_blocks(blocks: np.ndarray) -> np.ndarray:
    """(N, 8, 8) int32 dequantised coefficients -> (N, 8, 8) uint8 samples, bit-exact to stb."""
    with np.errstate(over="ignore"):
        cols = _pass(blocks, 512, 10)
        rows = _pass(np.ascontiguousarray(cols.transpose(0, 2, 1)), 65536 + (128 << 17), 17)
    return np.clip(rows.transpose(0, 2, 1), 0, 255).astype(np.uint8)


def plane(samples: np.ndarray, bw: int, bh: int) -> np.ndarray:
    """(bh * bw, 8, 8) blocks in row-major block order -> (bh * 8, bw * 8) plane."""
    return samples.reshape(bh, bw, 8, 8).transpose(0, 2, 1, 3).reshape(bh * 8, bw * 8)
