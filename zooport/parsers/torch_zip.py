"""Bounded reads of ``torch.save`` zip members (no torch import: the CLI's sniffing uses it too).

PyTorch writes every member of its zip checkpoints *stored* (``ZIP_STORED``, no compression), so a
member's bytes on disk are its bytes in memory. A compressed member cannot come from ``torch.save``
and could expand without bound (a zip bomb): it is refused before anything is inflated. Sizes are
read from the central directory and checked against what the caller needs before reading.
"""
from __future__ import annotations

import zipfile
import zlib

from ..errors import CheckpointError, UnsafeCheckpointError


def read_member(zf: zipfile.ZipFile, name: str, path, size: int | None = None, what: str | None = None) -> bytes:
    """Exactly the bytes of stored member ``name`` (``size`` of them when given; the member's recorded
    size must then equal it). Raises :class:`UnsafeCheckpointError` for a compressed member and
    :class:`CheckpointError` for a size mismatch, truncation or a CRC error, naming ``path``."""
    what = what or f"archive member {name!r}"
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise CheckpointError(f"{path}: {what} is missing from the archive (member {name})") from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise UnsafeCheckpointError(f"{path}: {what} is compressed (zip method {info.compress_type}); torch.save "
                                    "stores members uncompressed, and a compressed one could inflate without bound")
    if info.compress_size != info.file_size:
        raise CheckpointError(f"{path}: {what} records {info.file_size} bytes but stores {info.compress_size}")
    if size is not None and info.file_size != size:
        raise CheckpointError(f"{path}: {what} holds {info.file_size} bytes, its record needs {size}")
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size)  # never more than recorded
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise CheckpointError(f"{path}: {what} is unreadable or truncated ({e})") from None
    if len(data) != info.file_size:
        raise CheckpointError(f"{path}: {what} is truncated ({len(data)} of {info.file_size} bytes)")
    return data
