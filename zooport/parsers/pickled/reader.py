"""Reading a ``torch.save`` file through the allowlist: the zip layout (torch >= 1.6), with legacy (non-zip)
files handed to :mod:`.legacy`.

The archive is checked before anything is unpickled: exactly one ``<root>/data.pkl``, no TorchScript
(``code/``, ``constants.pkl``), no ``..`` or absolute member names; every storage member is read with its
exact expected size (:func:`zooport.parsers.torch_zip.read_member`).
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from ...errors import CheckpointError, UnsafeCheckpointError
from ..torch_zip import read_member
from .allowlist import _NUMPY_FLOATS, _RestrictedUnpickler
from .legacy import read_torch_legacy


def _check_members(path: Path, names: list[str]) -> str:
    """Validate the zip's member names; return the archive root (``<root>/data.pkl``)."""
    for n in names:
        parts = n.replace("\\", "/").split("/")
        if n.startswith(("/", "\\")) or ".." in parts or (len(n) > 1 and n[1] == ":"):
            raise UnsafeCheckpointError(f"{path}: archive member {n!r} has an absolute or '..' path")
    for n in names:
        base = n.rsplit("/", 1)[-1]
        if base == "constants.pkl" or "/code/" in n or n.startswith("code/"):
            raise UnsafeCheckpointError(f"{path}: TorchScript archive (member {n!r}); TorchScript carries code "
                                        f"and is not read")
    roots = [n[: -len("data.pkl")] for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(roots) != 1:
        raise CheckpointError(f"{path}: zip archive is not a torch.save checkpoint "
                              f"(expected exactly one '<root>/data.pkl', found {len(roots)})")
    return roots[0]


def read_torch_zip(path: str | os.PathLike, float_dtype: torch.dtype | None = None):
    """Unpickle a ``torch.save`` zip checkpoint through the allowlist.

    Returns the top-level object (plain containers, :class:`StandIn` records,
    tensors in their stored dtypes, or every floating storage cast once to
    ``float_dtype`` when given: one cast per storage instead of one per tensor). Raises :class:`CheckpointError` /
    :class:`UnsafeCheckpointError` naming ``path`` and the reason.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror})") from None
    if size == 0:
        raise CheckpointError(f"{path}: empty file, expected a PyTorch checkpoint")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head.startswith(b"PK"):
        if head[:1] == b"\x80":
            return read_torch_legacy(path, float_dtype)
        raise CheckpointError(f"{path}: not a PyTorch zip checkpoint (starts with {head[:4]!r})")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CheckpointError(f"{path}: broken or truncated zip archive ({e})") from None
    with zf:
        names = zf.namelist()
        root = _check_members(path, names)
        members = set(names)
        byteorder = (read_member(zf, root + "byteorder", path).decode(errors="replace").strip()
                     if root + "byteorder" in members else "little")
        if byteorder != "little":
            raise CheckpointError(f"{path}: big-endian storages are not supported")
        storages: dict[str, torch.Tensor] = {}

        def load_storage(key: str, dtype: torch.dtype, numel: int) -> torch.Tensor:
            if key in storages:
                st = storages[key]
                if st.dtype != dtype and not (float_dtype is not None and dtype.is_floating_point):
                    raise CheckpointError(f"{path}: storage {key!r} referenced with two dtypes")
                return st
            name = f"{root}data/{key}"
            if name not in members:
                raise CheckpointError(f"{path}: storage {key!r} is missing from the archive (member {name})")
            itemsize = torch.empty((), dtype=dtype).element_size()
            # the recorded size must be exactly what the record needs, checked before reading anything
            buf = read_member(zf, name, path, numel * itemsize, what=f"storage {key!r}")
            if float_dtype is not None and dtype.is_floating_point and dtype != float_dtype \
                    and dtype in _NUMPY_FLOATS and float_dtype in _NUMPY_FLOATS:
                # numpy's cast: much cheaper than a torch op per small storage on a busy CPU
                st = torch.from_numpy(np.frombuffer(buf, dtype=_NUMPY_FLOATS[dtype]).astype(_NUMPY_FLOATS[float_dtype]))
            else:
                st = torch.frombuffer(bytearray(buf), dtype=dtype) if numel else torch.empty(0, dtype=dtype)
                if float_dtype is not None and st.is_floating_point() and st.dtype != float_dtype:
                    st = st.to(float_dtype)
            storages[key] = st
            return st

        data = read_member(zf, root + "data.pkl", path, what="data.pkl")
        try:
            return _RestrictedUnpickler(data, load_storage).load()
        except CheckpointError as e:
            if str(e).startswith(str(path)):
                raise
            raise type(e)(f"{path}: {e}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                RuntimeError, MemoryError, OverflowError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path}: malformed pickle in data.pkl ({type(e).__name__}: {e})") from None
