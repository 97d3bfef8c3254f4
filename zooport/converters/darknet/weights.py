"""Darknet ``.weights`` files <-> flat float32 buffers <-> state dicts.

File format (little-endian): int32 major, int32 minor, int32 revision, then ``seen`` (images trained on)
as uint64 when ``major*10 + minor >= 2``, else uint32; then every parameter tensor of the layer plan in
order (:mod:`zooport.parsers.darknet.plan`) as raw float32, nothing else. When major or minor exceeds
1000, connected-layer weight matrices are stored transposed ((in, out) instead of (out, in)).

Reading copies the file once: the payload is read straight into one preallocated float32 array and
every state-dict tensor is a ``torch.from_numpy`` view of it (only transposed connected matrices,
which are rare and small, are copied again).
"""
from __future__ import annotations

import math
import os
import struct

import numpy as np

from ..._io import atomic_write
from ...errors import WeightsError

DEFAULT_HEADER = {"major": 0, "minor": 2, "revision": 5, "seen": 0}  # what Darknet's save_weights writes


def header_size(major: int, minor: int) -> int:
    return 12 + (8 if major * 10 + minor >= 2 else 4)


def is_transposed(header: dict) -> bool:
    return header["major"] > 1000 or header["minor"] > 1000


def read_header(f, path, file_size: int) -> dict:
    """Parse and sanity-check the header at the start of open binary file ``f``."""
    name = os.fspath(path)
    if file_size < 12:
        raise WeightsError(f"{name}: truncated header: the file has {file_size} bytes, a Darknet .weights "
                           f"header needs 16 or 20 (int32 major, minor, revision + 32/64-bit seen)")
    major, minor, revision = struct.unpack("<3i", f.read(12))
    if major < 0 or minor < 0 or revision < 0:
        raise WeightsError(f"{name}: bad header: version {major}.{minor}.{revision} has a negative field; "
                           f"not a Darknet .weights file?")
    seen_bytes = header_size(major, minor) - 12
    if file_size < 12 + seen_bytes:
        raise WeightsError(f"{name}: truncated header: version {major}.{minor} needs a {seen_bytes * 8}-bit "
                           f"'seen' field after byte 12, but the file has {file_size} bytes")
    (seen,) = struct.unpack("<Q" if seen_bytes == 8 else "<I", f.read(seen_bytes))
    return {"major": major, "minor": minor, "revision": revision, "seen": seen}


def pack_header(header: dict) -> bytes:
    h = {**DEFAULT_HEADER, **(header or {})}
    seen_fmt = "<Q" if h["major"] * 10 + h["minor"] >= 2 else "<I"
    return struct.pack("<3i", h["major"], h["minor"], h["revision"]) + struct.pack(seen_fmt, h["seen"])


def _layer_at(plan, float_index: int):
    """(layer plan, param name) containing float number ``float_index`` of the payload."""
    off = 0
    for lp in plan:
        for name, shape in lp.params:
            n = math.prod(shape)
            if float_index < off + n:
                return lp, name
            off += n
    return None, None


def _describe(lp, name) -> str:
    return f"layer {lp.index} [{lp.section.type}] (cfg line {lp.section.line}) tensor {name}"


def read_weights_buffer(path, plan) -> tuple[dict, np.ndarray]:
    """Header and the whole float32 payload of ``path``, checked against ``plan``'s exact size."""
    from ...parsers.darknet.plan import weights_float_count

    name = os.fspath(path)
    expected = weights_float_count(plan)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise WeightsError(f"{name}: cannot open weights file: {e.strerror}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        header = read_header(f, path, size)
        hsize = header_size(header["major"], header["minor"])
        payload = size - hsize
        found, rest = divmod(payload, 4)
        if payload != 4 * expected:
            ver = f"{header['major']}.{header['minor']}.{header['revision']}"
            if payload < 4 * expected:
                lp, pname = _layer_at(plan, found)
                where = f"; it runs out in {_describe(lp, pname)}" if lp is not None else ""
                msg = (f"{name}: truncated or does not match the cfg: expected {expected} floats after the "
                       f"{hsize}-byte header (version {ver}), found {found}" +
                       (f" and {rest} stray bytes" if rest else "") + where)
            else:
                msg = (f"{name}: trailing data or does not match the cfg: expected {expected} floats after "
                       f"the {hsize}-byte header (version {ver}), found {found}" +
                       (f" and {rest} stray bytes" if rest else "") +
                       f" ({payload - 4 * expected} bytes more than the last layer {plan[-1].index} needs)")
            other = 20 if hsize == 16 else 16
            if size - other == 4 * expected:
                msg += f"; the size would fit a {other}-byte header: is the version field wrong?"
            raise WeightsError(msg)
        buf = np.empty(expected, dtype="<f4")
        got = f.readinto(memoryview(buf).cast("B")) if expected else 0
        if got != 4 * expected:  # the file shrank while we read it
            raise WeightsError(f"{name}: read {got} of {4 * expected} payload bytes (file changed while reading?)")
    return header, buf


def buffer_to_state_dict(plan, buf: np.ndarray, *, transposed: bool = False) -> dict:
    """Split flat float32 ``buf`` into named tensors (views of ``buf``, no copies) in plan order.

    Keys are ``f"layers.{index}.{name}"``; shapes as in the plan. With ``transposed`` (header major or
    minor > 1000) connected ``fc.weight`` matrices are read as (in, out) and transposed (one copy each).
    """
    import torch

    from ...parsers.darknet.plan import weights_float_count

    expected = weights_float_count(plan)
    if buf.dtype != np.dtype("<f4"):
        raise WeightsError(f"buffer has dtype {buf.dtype}, expected little-endian float32")
    if buf.size != expected:
        raise WeightsError(f"buffer has {buf.size} floats, the plan needs {expected}")
    flat = torch.from_numpy(buf)
    sd = {}
    off = 0
    for lp in plan:
        for name, shape in lp.params:
            n = math.prod(shape)
            t = flat[off:off + n]
            if transposed and lp.type == "connected" and name == "fc.weight":
                t = t.view(shape[1], shape[0]).t().contiguous()
            else:
                t = t.view(shape)
            sd[f"layers.{lp.index}.{name}"] = t
            off += n
    return sd


def _check_keys(plan, state_dict) -> None:
    from ..strict import check_state_dict

    want = {f"layers.{lp.index}.{name}": shape for lp in plan for name, shape in lp.params}
    check_state_dict(want, state_dict, "the Darknet weights to write", subject="the cfg", error=WeightsError)


def _tensor_bytes(t, transpose: bool) -> np.ndarray:
    import torch

    t = t.detach().to("cpu", torch.float32)
    if transpose:
        t = t.t()
    return np.ascontiguousarray(t.numpy(), dtype="<f4").reshape(-1)


def iter_payload(plan, state_dict, *, transposed: bool = False):
    """Yield every tensor of ``state_dict`` as a flat little-endian float32 array, in file order."""
    _check_keys(plan, state_dict)
    for lp in plan:
        for name, _ in lp.params:
            yield _tensor_bytes(state_dict[f"layers.{lp.index}.{name}"],
                                transposed and lp.type == "connected" and name == "fc.weight")


def state_dict_to_buffer(plan, state_dict, *, transposed: bool = False) -> np.ndarray:
    """The flat float32 payload of a ``.weights`` file for ``state_dict`` (keys exactly the plan's)."""
    parts = list(iter_payload(plan, state_dict, transposed=transposed))
    return np.concatenate(parts) if parts else np.empty(0, dtype="<f4")


def write_weights(path, plan, state_dict, header: dict | None = None) -> None:
    """Write a ``.weights`` file atomically: header (kept byte-for-byte) then the payload tensor by tensor."""
    h = {**DEFAULT_HEADER, **(header or {})}
    blob = pack_header(h)
    chunks = iter_payload(plan, state_dict, transposed=is_transposed(h))
    with atomic_write(path, "wb") as f:
        f.write(blob)
        for a in chunks:
            f.write(memoryview(a).cast("B"))
