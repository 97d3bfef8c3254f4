"""Huffman tables as 16-bit lookup tables, and the bit windows the entropy decoder reads.

Speed design (pure Python): instead of shifting bits one at a time, the scan's unstuffed bytes are
turned, with numpy, into ``win``: a Python list where ``win[p]`` is the 16 bits starting at bit
position ``p``. Decoding a symbol is then one list index into a 65536-entry table keyed by that
window. For AC (and DC) coefficients the common case -- Huffman code plus its magnitude bits
fitting in 16 bits -- is resolved by a single *combined* lookup that yields bits consumed, zig-zag
advance and the signed coefficient value at once.

Table formats (all Python lists of 65536 ints, index = 16-bit window, MSB = next bit):

* ``code_lut``: ``(length << 8) | symbol`` for a valid code, ``-1`` for none.
* ``comb_lut``: ``value * 4096 + advance * 32 + nbits``; ``nbits == 0`` means "take the slow path"
  (code + magnitude longer than 16 bits, an EOB-run symbol, or an invalid code). For AC tables
  ``advance = run + 1`` (``16`` for ZRL) and ``advance == 0`` marks EOB. For DC tables advance is 1.
"""
from __future__ import annotations

import numpy as np

from .markers import JpegCorrupt

_LUT_CACHE: dict = {}


def _codes(counts, symbols, name):
    """Canonical codes: list of (length, code, symbol) per JPEG Annex C."""
    out, code, k = [], 0, 0
    for length in range(1, 17):
        for _ in range(counts[length - 1]):
            if code >= (1 << length):
                raise JpegCorrupt(f"{name}: bad Huffman table (code lengths over-subscribed)")
            out.append((length, code, symbols[k]))
            code += 1
            k += 1
        code <<= 1
    return out


def build_luts(table, is_ac: bool, name: str):
    """``table`` = (counts[16], symbols bytes) from DHT -> ``(code_lut, comb_lut)`` lists."""
    key = (table, is_ac)
    hit = _LUT_CACHE.get(key)
    if hit is not None:
        return hit
    counts, symbols = table
    code_lut = np.full(65536, -1, dtype=np.int64)
    comb_lut = np.zeros(65536, dtype=np.int64)
    for length, code, sym in _codes(counts, symbols, name):
        lo, hi = code << (16 - length), (code + 1) << (16 - length)
        code_lut[lo:hi] = (length << 8) | sym
        run, size = (sym >> 4, sym & 15) if is_ac else (0, sym)
        if is_ac and size == 0:
            if sym == 0x00:                       # EOB: advance 0
                comb_lut[lo:hi] = length
            elif sym == 0xF0:                     # ZRL: sixteen zeros
                comb_lut[lo:hi] = 16 * 32 + length
            continue                              # EOBn (progressive): slow path
        if size > 15 or length + size > 16:
            continue
        w = np.arange(lo, hi, dtype=np.int64)
        bits = (w >> (16 - length - size)) & ((1 << size) - 1)
        if size:
            bits = np.where(bits < (1 << (size - 1)), bits - ((1 << size) - 1), bits)
        comb_lut[lo:hi] = bits * 4096 + (run + 1) * 32 + length + size
    res = (code_lut.tolist(), comb_lut.tolist())
    if len(_LUT_CACHE) > 64:
        _LUT_CACHE.clear()
    _LUT_CACHE[key] = res
    return res


def unstuff(data: bytes) -> tuple[bytes, list]:
    """Split a scan's entropy-coded bytes at RST markers and remove byte stuffing.

    Returns ``(payload, starts)``: the concatenated unstuffed bytes of all restart segments and the
    bit position where each segment starts (each segment is byte-aligned by the standard)."""
    import re

    parts = re.split(rb"\xff[\xd0-\xd7]", data)
    starts, out, n = [], [], 0
    for p in parts:
        p = p.replace(b"\xff\x00", b"\xff")
        starts.append(n * 8)
        out.append(p)
        n += len(p)
    return b"".join(out), starts


def bit_windows(payload: bytes) -> list:
    """``win[p]`` = the 16 bits of ``payload`` starting at bit ``p`` (zeros past the end).

    Length is ``8 * len(payload) + 1`` plus 128 zero-padded positions so a decoder that reads
    slightly past the last real bit (as stb_image does, filling with zeros) stays in range; reading
    further raises IndexError, which the caller reports as a truncated scan."""
    b = np.frombuffer(payload + b"\x00" * 20, dtype=np.uint8).astype(np.int64)
    w24 = (b[:-2] << 16) | (b[1:-1] << 8) | b[2:]
    win = (w24[:, None] >> (8 - np.arange(8))) & 0xFFFF
    return win.ravel()[:8 * len(payload) + 129].tolist()
