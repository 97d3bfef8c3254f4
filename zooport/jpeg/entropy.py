"""Entropy (Huffman) decoding of baseline and progressive scans into quantised DCT coefficients.

Output: for each frame component a flat Python list ``coefs[c]`` of ``bw * bh * 64`` ints, block
``b`` (row-major over the component's full MCU grid of ``bw x bh`` blocks) at ``[64 b, 64 b + 64)``,
coefficients in zig-zag order, not dequantised. Lists, not numpy arrays, because single-item
stores into a list are several times cheaper from Python; :mod:`.idct` converts them in one go.

The hot loop (baseline AC) is one combined table lookup per coefficient, see :mod:`.huffman`.
Progressive scans (rarer) use the plain code table and follow JPEG Annex G / stb_image: DC first
and refinement scans, AC first scans with end-of-band runs, AC refinement with correction bits.
"""
from __future__ import annotations

from .huffman import bit_windows, build_luts, unstuff
from .markers import JpegCorrupt


def geometry(frame):
    """Per component ``(bw, bh, cx, cy)``: block grid of the interleaved MCU layout and the
    component's own size in samples, as stb_image computes them."""
    hmax, vmax = frame.hmax, frame.vmax
    mcux = -(-frame.width // (8 * hmax))
    mcuy = -(-frame.height // (8 * vmax))
    out = []
    for c in frame.comps:
        out.append((mcux * c.h, mcuy * c.v, -(-frame.width * c.h // hmax), -(-frame.height * c.v // vmax)))
    return out, mcux, mcuy


def _mcu_blocks(frame, scan, geo, mcux, mcuy):
    """List over MCUs of [(slot in scan, component, coefficient offset), ...]."""
    if len(scan.comps) == 1:
        c = scan.comps[0]
        bw, _, cx, cy = geo[c]
        nbx, nby = -(-cx // 8), -(-cy // 8)
        return [[(0, c, (by * bw + bx) * 64)] for by in range(nby) for bx in range(nbx)]
    mcus = []
    for my in range(mcuy):
        for mx in range(mcux):
            blocks = []
            for slot, c in enumerate(scan.comps):
                comp, bw = frame.comps[c], geo[c][0]
                for y in range(comp.v):
                    row = (my * comp.v + y) * bw + mx * comp.h
                    blocks.extend((slot, c, (row + x) * 64) for x in range(comp.h))
            mcus.append(blocks)
    return mcus


def decode_scan(frame, scan, coefs, geo, mcux, mcuy, name):
    """Decode one scan, updating ``coefs`` in place."""
    payload, starts = unstuff(scan.data)
    win = bit_windows(payload)
    mcus = _mcu_blocks(frame, scan, geo, mcux, mcuy)
    if scan.restart and len(starts) < -(-len(mcus) // scan.restart):
        raise JpegCorrupt(f"{name}: scan has {len(starts) - 1} restart markers, expected "
                          f"{-(-len(mcus) // scan.restart) - 1} (truncated or damaged data)")
    need_dc = scan.ss == 0 and scan.ah == 0
    need_ac = scan.se > 0
    tabs = []
    for slot in range(len(scan.comps)):
        dc, ac = scan.dc_tables[slot], scan.ac_tables[slot]
        if (need_dc and dc is None) or (need_ac and ac is None):
            raise JpegCorrupt(f"{name}: scan uses a Huffman table that was never defined (DHT missing)")
        tabs.append((build_luts(dc, False, name) if dc else None, build_luts(ac, True, name) if ac else None))
    try:
        if not frame.progressive:
            _baseline(mcus, win, starts, scan.restart, tabs, coefs, name)
        elif scan.ss == 0:
            _prog_dc(mcus, win, starts, scan.restart, tabs, coefs, scan.ah, scan.al, name)
        elif scan.ah == 0:
            _prog_ac_first(mcus, win, starts, scan, tabs[0][1][0], coefs, name)
        else:
            _prog_ac_refine(mcus, win, starts, scan, tabs[0][1][0], coefs, name)
    except IndexError:
        raise JpegCorrupt(f"{name}: entropy-coded data ends early (truncated or damaged scan)") from None


def _bad(name):
    return JpegCorrupt(f"{name}: bad Huffman code in the entropy-coded data (damaged JPEG)")


def _baseline(mcus, win, starts, restart, tabs, coefs, name):
    preds = [0] * len(coefs)
    pos, seg = starts[0], 0
    for i, blocks in enumerate(mcus):
        if restart and i and i % restart == 0:
            seg += 1
            pos = starts[seg]
            preds = [0] * len(coefs)
        for slot, c, base in blocks:
            (dcode, dcomb), (acode, acomb) = tabs[slot]
            out = coefs[c]
            e = dcomb[win[pos]]
            if e & 31:
                pos += e & 31
                diff = e >> 12
            else:                                   # long DC code or magnitude
                t = dcode[win[pos]]
                if t < 0 or (t & 255) > 15:
                    raise _bad(name)
                pos += t >> 8
                s = t & 255
                diff = win[pos] >> (16 - s) if s else 0
                pos += s
                if s and diff < (1 << (s - 1)):
                    diff -= (1 << s) - 1
            preds[c] += diff
            out[base] = preds[c]
            k = 0
            while k < 63:
                e = acomb[win[pos]]
                n = e & 31
                if n:
                    pos += n
                    a = (e >> 5) & 31
                    if not a:                       # EOB
                        break
                    k += a
                    out[base + k] = e >> 12
                    continue
                t = acode[win[pos]]                 # slow path: code + magnitude > 16 bits
                if t < 0:
                    raise _bad(name)
                pos += t >> 8
                rs = t & 255
                s = rs & 15
                if not s:
                    if rs != 0xF0:                  # stb ends the block on any other s == 0 symbol
                        break
                    k += 16
                    continue
                k += (rs >> 4) + 1
                v = win[pos] >> (16 - s)
                pos += s
                if v < (1 << (s - 1)):
                    v -= (1 << s) - 1
                out[base + k] = v
            if k > 63:
                raise _bad(name)


def _receive_extend(win, pos, s):
    v = win[pos] >> (16 - s)
    if v < (1 << (s - 1)):
        v -= (1 << s) - 1
    return v


def _prog_dc(mcus, win, starts, restart, tabs, coefs, ah, al, name):
    preds = [0] * len(coefs)
    pos, seg = starts[0], 0
    bit = 1 << al
    for i, blocks in enumerate(mcus):
        if restart and i and i % restart == 0:
            seg += 1
            pos = starts[seg]
            preds = [0] * len(coefs)
        for slot, c, base in blocks:
            if ah:                                   # refinement: one bit per block
                if win[pos] >> 15:
                    coefs[c][base] += bit
                pos += 1
                continue
            t = tabs[slot][0][0][win[pos]]
            if t < 0 or (t & 255) > 15:
                raise _bad(name)
            pos += t >> 8
            s = t & 255
            diff = _receive_extend(win, pos, s) if s else 0
            pos += s
            preds[c] += diff
            coefs[c][base] = preds[c] * bit


def _prog_ac_first(mcus, win, starts, scan, acode, coefs, name):
    ss, se, al, restart = scan.ss, scan.se, scan.al, scan.restart
    pos, seg, eobrun = starts[0], 0, 0
    for i, blocks in enumerate(mcus):
        if restart and i and i % restart == 0:
            seg += 1
            pos = starts[seg]
            eobrun = 0
        _, c, base = blocks[0]
        if eobrun:
            eobrun -= 1
            continue
        out = coefs[c]
        k = ss
        while k <= se:
            t = acode[win[pos]]
            if t < 0:
                raise _bad(name)
            pos += t >> 8
            r, s = (t & 255) >> 4, t & 15
            if not s:
                if r < 15:
                    eobrun = (1 << r) - 1
                    if r:
                        eobrun += win[pos] >> (16 - r)
                        pos += r
                    break
                k += 16
                continue
            k += r
            if k > 63:
                raise _bad(name)
            out[base + k] = _receive_extend(win, pos, s) * (1 << al)
            pos += s
            k += 1


def _prog_ac_refine(mcus, win, starts, scan, acode, coefs, name):
    ss, se, restart = scan.ss, scan.se, scan.restart
    p1 = 1 << scan.al
    m1 = -p1
    pos, seg, eobrun = starts[0], 0, 0
    for i, blocks in enumerate(mcus):
        if restart and i and i % restart == 0:
            seg += 1
            pos = starts[seg]
            eobrun = 0
        _, c, base = blocks[0]
        out = coefs[c]
        k = ss
        if not eobrun:
            while k <= se:
                t = acode[win[pos]]
                if t < 0:
                    raise _bad(name)
                pos += t >> 8
                r, s = (t & 255) >> 4, t & 15
                if not s:
                    if r < 15:                       # end-of-band run starts here
                        eobrun = 1 << r
                        if r:
                            eobrun += win[pos] >> (16 - r)
                            pos += r
                        break
                    val = 0                          # ZRL: skip sixteen zero coefficients
                else:
                    if s != 1:
                        raise _bad(name)
                    val = p1 if win[pos] >> 15 else m1
                    pos += 1
                while k <= se:                       # correction bits for nonzero ones on the way
                    z = out[base + k]
                    if z:
                        if win[pos] >> 15 and not (z & p1):
                            out[base + k] = z + p1 if z >= 0 else z + m1
                        pos += 1
                    else:
                        if r == 0:
                            if val:
                                out[base + k] = val
                            k += 1
                            break
                        r -= 1
                    k += 1
        if eobrun:                                   # inside an end-of-band run: corrections only
            while k <= se:
                z = out[base + k]
                if z:
                    if win[pos] >> 15 and not (z & p1):
                        out[base + k] = z + p1 if z >= 0 else z + m1
                    pos += 1
                k += 1
            eobrun -= 1
