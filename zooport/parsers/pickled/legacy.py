"""Legacy (torch < 1.6, non-zip) ``torch.save`` files, read through the same allowlist.

Early YOLOv5 releases were saved by torch 1.5. The layout is a sequence of
pickles (magic number, protocol version 1001, a sys-info dict, the object,
the list of storage keys) followed by the raw storages. Classes of
``nn.Module`` objects appear as persistent records ``("module", class,
source file, source text)``: the class resolves to a stand-in through the
allowlist and the source text is ignored (never compiled or executed).
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import torch

from ...errors import CheckpointError
from .allowlist import _RestrictedUnpickler


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def read_torch_legacy(path: str | os.PathLike, float_dtype: torch.dtype | None = None):
    """Unpickle a legacy (torch < 1.6, non-zip) ``torch.save`` file through the same allowlist.

    Layout: pickles of the magic number, the protocol version (1001), a
    sys-info dict and the object (storages as persistent ids), a pickled list
    of storage keys, then per key (in that order) an int64 element count and
    the raw little-endian data. Storages are allocated from their records
    (together bounded by the file size) and filled after the object pickle. Float
    tensors keep their stored dtype here (``float_dtype`` is applied by the
    caller per tensor in this format).
    """
    path = Path(path)
    data = path.read_bytes()
    f = io.BytesIO(data)
    storages: dict[str, torch.Tensor] = {}
    claimed = [0]  # bytes of all storages allocated so far: together they must fit in the file

    def no_storage(key, dtype, numel):
        raise CheckpointError(f"{path}: unexpected storage in the legacy header")

    def alloc(key, dtype, numel):
        if key in storages:
            return storages[key]
        itemsize = torch.empty((), dtype=dtype).element_size()
        claimed[0] += numel * itemsize
        if claimed[0] > len(data):
            raise CheckpointError(f"{path}: storage {key!r} claims {numel * itemsize} bytes; with the storages "
                                  f"before it that is more than the file holds ({len(data)} bytes)")
        storages[key] = torch.empty(numel, dtype=dtype)
        return storages[key]

    try:
        if _RestrictedUnpickler(f, no_storage).load() != _LEGACY_MAGIC:
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (bad legacy magic number)")
        if _RestrictedUnpickler(f, no_storage).load() != _LEGACY_PROTOCOL:
            raise CheckpointError(f"{path}: unsupported legacy torch.save protocol version")
        info = _RestrictedUnpickler(f, no_storage).load()
        if not isinstance(info, dict) or not info.get("little_endian", False):
            raise CheckpointError(f"{path}: big-endian or malformed legacy checkpoint")
        obj = _RestrictedUnpickler(f, alloc).load()
        keys = _RestrictedUnpickler(f, no_storage).load()
    except CheckpointError as e:
        raise type(e)(str(e) if str(e).startswith(str(path)) else f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RuntimeError, MemoryError, OverflowError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: malformed legacy checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(keys, list) or set(keys) != set(storages):
        raise CheckpointError(f"{path}: legacy storage key list does not match the storages the object uses")
    for key in keys:
        st = storages[key]
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: storage {key!r} is missing (file truncated)")
        n = int.from_bytes(head, "little", signed=True)
        if n != st.numel():
            raise CheckpointError(f"{path}: storage {key!r} holds {n} elements, its record says {st.numel()}")
        raw = f.read(n * st.element_size())
        if len(raw) < n * st.element_size():
            raise CheckpointError(f"{path}: storage {key!r} is truncated ({len(raw)} of {n * st.element_size()} bytes)")
        if n:
            st.copy_(torch.frombuffer(bytearray(raw), dtype=st.dtype))
    return obj
