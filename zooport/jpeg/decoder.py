"""Top level: JPEG bytes -> (H, W, 3) uint8 RGB, equal bit for bit to ``stbi_load(..., 3)``.

Pipeline: :mod:`.markers` (segments, tables) -> :mod:`.entropy` (quantised coefficients per
scan, progressive scans accumulate) -> :mod:`.idct` (dequantise, stb's integer IDCT, block
planes) -> :mod:`.color` (stb's resampler per component, fixed-point YCbCr -> RGB).
Like stb_image, EXIF orientation is NOT applied; Darknet's ``load_image_color`` sees the stored
pixel grid.
"""
from __future__ import annotations

import array
import os

import numpy as np

from . import color, entropy, idct, markers
from .markers import DEFAULT_MAX_PIXELS, JpegCorrupt


def decode_jpeg(buf: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode JPEG ``buf``; ``name`` (a file name) goes into error messages.

    Returns (H, W, 3) uint8 RGB (grayscale replicated to 3 channels, as Darknet requests).
    Raises :class:`~zooport.jpeg.JpegCorrupt` / :class:`~zooport.jpeg.JpegUnsupported`."""
    frame, scans = markers.parse(buf, name, max_pixels)
    geo, mcux, mcuy = entropy.geometry(frame)
    nblocks = sum(bw * bh for bw, bh, _, _ in geo)
    # Every block costs at least one bit of entropy-coded data, so a file cannot honestly declare
    # more blocks than it has bits; refusing here keeps a forged header from allocating gigabytes.
    if nblocks > 8 * sum(len(s.data) for s in scans) + 64 * len(frame.comps):
        raise JpegCorrupt(f"{name}: JPEG declares {frame.width}x{frame.height} pixels but holds only "
                          f"{sum(len(s.data) for s in scans)} bytes of image data (truncated or forged header)")
    coefs = [array.array("i", bytes(4 * 64 * bw * bh)).tolist() for bw, bh, _, _ in geo]
    for scan in scans:
        entropy.decode_scan(frame, scan, coefs, geo, mcux, mcuy, name)
    planes = []
    for k, comp in enumerate(frame.comps):
        bw, bh, _, cy = geo[k]
        blocks = idct.dequantize(np.asarray(coefs[k], dtype=np.int64).reshape(-1, 64), frame.quant[comp.tq])
        coefs[k] = None
        p = idct.plane(idct.idct_blocks(blocks), bw, bh)[:cy]
        planes.append(color.upsample(p, frame.hmax // comp.h, frame.vmax // comp.v, frame.width, frame.height))
    return color.to_rgb(planes, frame)


def read_jpeg(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read and decode the JPEG file ``path`` -> (H, W, 3) uint8 RGB, as Darknet sees it."""
    from ..errors import DatasetError

    if not os.path.isfile(path):
        raise DatasetError(f"{path}: image file is missing")
    with open(path, "rb") as f:
        buf = f.read()
    return decode_jpeg(buf, str(path), max_pixels)


def is_jpeg(path) -> bool:
    """True if the file starts with the JPEG SOI marker (so stb mode applies to it)."""
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"\xff\xd8"
    except OSError:
        return False
