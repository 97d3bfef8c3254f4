"""A pure-numpy JPEG decoder equal bit for bit to stb_image, the decoder Darknet uses.

Public API: :func:`read_jpeg` (file -> (H, W, 3) uint8 RGB), :func:`decode_jpeg` (bytes),
:func:`is_jpeg`, and the errors :class:`JpegCorrupt` (a DatasetError) and
:class:`JpegUnsupported` (an UnsupportedError). Modules: ``markers`` (segments), ``huffman``
(tables, bit windows), ``entropy`` (scans -> coefficients), ``idct`` (dequantise + IDCT),
``color`` (resampling + YCbCr -> RGB), ``decoder`` (the pipeline). numpy only, no cv2.
"""
from .decoder import decode_jpeg, is_jpeg, read_jpeg
from .markers import JpegCorrupt, JpegUnsupported

__all__ = ["decode_jpeg", "read_jpeg", "is_jpeg", "JpegCorrupt", "JpegUnsupported"]
