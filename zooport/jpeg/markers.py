"""JPEG marker parsing: the header segments that precede and separate entropy-coded scans.

Input is the whole file as ``bytes``. :func:`parse` walks the marker segments in file order and
returns a :class:`Frame` (from SOF0/SOF1/SOF2) plus, for every SOS, a :class:`Scan` that carries a
snapshot of the Huffman tables and restart interval in force at that point and the byte range of
its entropy-coded data. Quantisation tables are recorded as they are in force at the end (stb_image
dequantises after decoding, with the table set last defined for each slot).

What is accepted is what stb_image accepts: 8-bit precision, baseline/extended Huffman (SOF0, SOF1)
and progressive Huffman (SOF2), 1, 3 or 4 components, sampling factors 1..4 that divide the
largest ones. Everything else (arithmetic coding, lossless, hierarchical, 12-bit) is refused with
:class:`JpegUnsupported`; damaged structure with :class:`JpegCorrupt`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import DatasetError, UnsupportedError

MAX_DIMENSION = 1 << 24       # stb_image's STBI_MAX_DIMENSIONS
DEFAULT_MAX_PIXELS = 1 << 27  # refuse before allocating: 134 Mpixel, about 400 MB of RGB


class JpegCorrupt(DatasetError):
    """A JPEG whose structure or entropy-coded data is damaged or truncated."""


class JpegUnsupported(UnsupportedError):
    """A valid JPEG variant that stb_image (and so Darknet) cannot decode."""


# Names of the SOF kinds stb_image refuses (marker byte -> what it is), for the error message.
_REFUSED_SOF = {0xC3: "lossless (SOF3)", 0xC5: "differential sequential (SOF5)",
                0xC6: "differential progressive (SOF6)", 0xC7: "differential lossless (SOF7)",
                0xC9: "arithmetic-coded sequential (SOF9)", 0xCA: "arithmetic-coded progressive (SOF10)",
                0xCB: "arithmetic-coded lossless (SOF11)", 0xCD: "arithmetic-coded differential (SOF13)",
                0xCE: "arithmetic-coded differential progressive (SOF14)",
                0xCF: "arithmetic-coded differential lossless (SOF15)"}


@dataclass
class Component:
    """One frame component: id byte, sampling factors h/v (1..4), quant table slot tq (0..3)."""
    cid: int
    h: int
    v: int
    tq: int


@dataclass
class Frame:
    """SOF contents. ``width``/``height`` in pixels; ``progressive`` for SOF2."""
    width: int
    height: int
    progressive: bool
    comps: list
    jfif: bool = False
    adobe_transform: int = -1     # APP14 colour transform: -1 absent, 0 none/CMYK, 1 YCbCr, 2 YCCK
    quant: dict = field(default_factory=dict)   # slot -> tuple of 64 ints in zig-zag order

    @property
    def hmax(self) -> int:
        return max(c.h for c in self.comps)

    @property
    def vmax(self) -> int:
        return max(c.v for c in self.comps)


@dataclass
class Scan:
    """One SOS: component indices into ``Frame.comps`` with their (dc, ac) Huffman tables, the
    spectral selection ``ss..se``, successive approximation ``ah``/``al``, the restart interval in
    MCUs (0 = none) and ``data`` = the scan's entropy-coded bytes, still byte-stuffed, RST kept."""
    comps: list
    dc_tables: list
    ac_tables: list
    ss: int
    se: int
    ah: int
    al: int
    restart: int
    data: bytes


# The entropy-coded data of a scan ends at the first 0xFF that is followed by neither a stuffed
# 0x00, a restart marker, nor another 0xFF (fill bytes before a marker).
_SCAN_END = re.compile(rb"\xff(?![\x00\xd0-\xd7\xff])")


def parse(buf: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Frame, list]:
    """Parse ``buf``; returns ``(frame, scans)``. ``name`` is used in error messages only."""
    if len(buf) < 4 or buf[0] != 0xFF or buf[1] != 0xD8:
        raise JpegCorrupt(f"{name}: not a JPEG file (expected the SOI marker FF D8 at offset 0)")
    n = len(buf)
    pos = 2
    frame = None
    scans: list = []
    quant: dict = {}
    dc_tab: dict = {}
    ac_tab: dict = {}
    restart = 0
    jfif = False
    adobe = -1
    while True:
        while pos < n and buf[pos] == 0xFF and pos + 1 < n and buf[pos + 1] == 0xFF:
            pos += 1                    # fill bytes
        if pos + 1 >= n:
            raise JpegCorrupt(f"{name}: file is truncated (no EOI marker after offset {pos})")
        if buf[pos] != 0xFF:
            raise JpegCorrupt(f"{name}: expected a marker at offset {pos}, found byte 0x{buf[pos]:02X}")
        m = buf[pos + 1]
        pos += 2
        if m == 0xD9:                   # EOI
            break
        if 0xD0 <= m <= 0xD7 or m == 0x01:
            continue                    # stray RSTn / TEM: no length
        if pos + 2 > n:
            raise JpegCorrupt(f"{name}: file is truncated inside marker 0x{m:02X} at offset {pos - 2}")
        seg_len = (buf[pos] << 8) | buf[pos + 1]
        if seg_len < 2 or pos + seg_len > n:
            raise JpegCorrupt(f"{name}: file is truncated or damaged: marker 0x{m:02X} at offset {pos - 2} "
                              f"declares {seg_len} bytes, {n - pos} remain")
        seg = buf[pos + 2:pos + seg_len]
        pos += seg_len
        if m in (0xC0, 0xC1, 0xC2):
            if frame is not None:
                raise JpegCorrupt(f"{name}: second SOF marker at offset {pos - seg_len - 2}")
            frame = _frame(seg, m == 0xC2, name, max_pixels)
        elif m in _REFUSED_SOF:
            raise JpegUnsupported(f"{name}: {_REFUSED_SOF[m]} JPEG is not supported (expected baseline or "
                                  f"progressive Huffman-coded JPEG, as stb_image decodes)")
        elif m == 0xC4:
            _dht(seg, dc_tab, ac_tab, name)
        elif m == 0xDB:
            _dqt(seg, quant, name)
        elif m == 0xDD:
            if len(seg) != 2:
                raise JpegCorrupt(f"{name}: bad DRI segment length {seg_len} (expected 4)")
            restart = (seg[0] << 8) | seg[1]
        elif m == 0xDA:
            if frame is None:
                raise JpegCorrupt(f"{name}: SOS before any SOF marker")
            end = _SCAN_END.search(buf, pos)
            end = n if end is None else end.start()
            scans.append(_sos(seg, frame, dc_tab, ac_tab, restart, buf[pos:end], name))
            pos = end
        elif m == 0xE0 and seg[:5] == b"JFIF\x00":
            jfif = True
        elif m == 0xEE and len(seg) >= 12 and seg[:6] == b"Adobe\x00":
            adobe = seg[11]
        elif m == 0xDC:                  # DNL: stb accepts it only when it repeats the height
            if frame is None or len(seg) != 2 or ((seg[0] << 8) | seg[1]) != frame.height:
                raise JpegCorrupt(f"{name}: bad DNL segment")
        elif 0xE0 <= m <= 0xEF or m == 0xFE:
            pass                        # other APPn, COM
        else:
            raise JpegCorrupt(f"{name}: unknown marker 0x{m:02X} at offset {pos - seg_len - 2}")
    if frame is None or not scans:
        raise JpegCorrupt(f"{name}: no image data (expected an SOF and at least one SOS marker)")
    frame.jfif, frame.adobe_transform, frame.quant = jfif, adobe, quant
    for c in frame.comps:
        if c.tq not in quant:
            raise JpegCorrupt(f"{name}: component {c.cid} uses quantisation table {c.tq}, which is not defined")
    return frame, scans


def _frame(seg: bytes, progressive: bool, name: str, max_pixels: int) -> Frame:
    if len(seg) < 6:
        raise JpegCorrupt(f"{name}: SOF segment too short")
    if seg[0] != 8:
        raise JpegUnsupported(f"{name}: {seg[0]}-bit JPEG is not supported (expected 8-bit samples, "
                              f"the only precision stb_image decodes)")
    height, width, nc = (seg[1] << 8) | seg[2], (seg[3] << 8) | seg[4], seg[5]
    if height == 0 or width == 0:
        raise JpegUnsupported(f"{name}: JPEG declares width {width}, height {height} "
                              f"(expected both > 0; a height given later by DNL is not supported)")
    if nc not in (1, 3, 4) or len(seg) != 6 + 3 * nc:
        raise JpegCorrupt(f"{name}: bad SOF: {nc} components in a {len(seg) + 2}-byte segment "
                          f"(expected 1, 3 or 4 components)")
    if width > MAX_DIMENSION or height > MAX_DIMENSION or width * height > max_pixels:
        raise JpegUnsupported(f"{name}: JPEG declares {width}x{height} pixels, more than the limit of "
                              f"{max_pixels} pixels (corrupt, or too large to decode)")
    comps = []
    for i in range(nc):
        cid, hv, tq = seg[6 + 3 * i:9 + 3 * i]
        h, v = hv >> 4, hv & 15
        if not (1 <= h <= 4 and 1 <= v <= 4) or tq > 3:
            raise JpegCorrupt(f"{name}: bad SOF component {cid}: sampling {h}x{v}, table {tq} "
                              f"(expected sampling 1..4 and table 0..3)")
        comps.append(Component(cid, h, v, tq))
    f = Frame(width, height, progressive, comps)
    for c in comps:
        if f.hmax % c.h or f.vmax % c.v:
            raise JpegCorrupt(f"{name}: component {c.cid} sampling {c.h}x{c.v} does not divide "
                              f"{f.hmax}x{f.vmax}")
    return f


def _dqt(seg: bytes, quant: dict, name: str) -> None:
    i = 0
    while i < len(seg):
        pq, tq = seg[i] >> 4, seg[i] & 15
        size = 128 if pq else 64
        if pq > 1 or tq > 3 or i + 1 + size > len(seg):
            raise JpegCorrupt(f"{name}: bad DQT segment (precision {pq}, slot {tq})")
        body = seg[i + 1:i + 1 + size]
        if pq:
            quant[tq] = tuple((body[2 * k] << 8) | body[2 * k + 1] for k in range(64))
        else:
            quant[tq] = tuple(body)
        i += 1 + size


def _dht(seg: bytes, dc_tab: dict, ac_tab: dict, name: str) -> None:
    i = 0
    while i < len(seg):
        if i + 17 > len(seg):
            raise JpegCorrupt(f"{name}: DHT segment too short")
        tc, th = seg[i] >> 4, seg[i] & 15
        counts = tuple(seg[i + 1:i + 17])
        total = sum(counts)
        if tc > 1 or th > 3 or i + 17 + total > len(seg):
            raise JpegCorrupt(f"{name}: bad DHT segment (class {tc}, slot {th}, {total} symbols)")
        (ac_tab if tc else dc_tab)[th] = (counts, bytes(seg[i + 17:i + 17 + total]))
        i += 17 + total


def _sos(seg, frame, dc_tab, ac_tab, restart, data, name) -> Scan:
    ns = seg[0] if seg else 0
    if ns < 1 or ns > 4 or len(seg) != 4 + 2 * ns:
        raise JpegCorrupt(f"{name}: bad SOS segment ({ns} components in {len(seg) + 2} bytes)")
    ids = [c.cid for c in frame.comps]
    comps, dcs, acs = [], [], []
    for k in range(ns):
        cid, t = seg[1 + 2 * k], seg[2 + 2 * k]
        if cid not in ids:
            raise JpegCorrupt(f"{name}: SOS names component {cid}, which the SOF does not define")
        comps.append(ids.index(cid))
        dcs.append(dc_tab.get(t >> 4))
        acs.append(ac_tab.get(t & 15))
    ss, se, a = seg[1 + 2 * ns], seg[2 + 2 * ns], seg[3 + 2 * ns]
    ah, al = a >> 4, a & 15
    if frame.progressive:
        if ss > 63 or se > 63 or ss > se or ah > 13 or al > 13 or (ss == 0 and se != 0) \
                or (ss > 0 and ns != 1):
            raise JpegCorrupt(f"{name}: bad progressive scan parameters Ss={ss} Se={se} Ah={ah} Al={al}")
    elif ss != 0 or ah != 0 or al != 0:
        raise JpegCorrupt(f"{name}: bad sequential scan parameters Ss={ss} Se={se} Ah={ah} Al={al}")
    else:
        se = 63
    return Scan(comps, dcs, acs, ss, se, ah, al, restart, data)
