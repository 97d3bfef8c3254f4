"""zooport's own checkpoint format, written by ``zooport convert``.

``.pt`` form: a plain dict, loadable with ``torch.load(weights_only=True)``::

    {"zooport_format": 1, "family": "darknet" | "yolov5" | "mmdet" | "ultralytics",
     "arch": {...JSON-serialisable, from model.native_arch()...},
     "meta": {...model.meta...}, "state_dict": {name: float32 tensor}}

``.safetensors`` form: the state dict as tensors; the header's ``__metadata__``
holds ``zooport_format``, ``family``, ``arch`` (JSON) and ``meta`` (JSON).

Loading is strict: a missing or unused key is a :class:`CheckpointError`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .._io import atomic_write, save_torch
from ..errors import CheckpointError, UnsafeCheckpointError

FORMAT_VERSION = 1

def to_native_dict(model) -> dict:
    """The native checkpoint dict of a :class:`~zooport.model_defs.base.Detector`."""
    sd = {k: v.detach().to(torch.float32).contiguous().clone() if v.is_floating_point() else v.detach().clone()
          for k, v in model.state_dict().items()}
    return {
        "zooport_format": FORMAT_VERSION,
        "family": model.family,
        "arch": model.native_arch(),
        "meta": model.meta,
        "state_dict": sd,
    }


def save_native(model, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Write ``model`` atomically as a native checkpoint (``fmt`` "pt" or "safetensors";
    by default from the file suffix, else "pt")."""
    path = Path(path)
    if fmt is None:
        fmt = "safetensors" if path.suffix == ".safetensors" else "pt"
    if fmt not in ("pt", "safetensors"):
        raise CheckpointError(f"unknown output format {fmt!r}; expected 'pt' or 'safetensors'")
    ckpt = to_native_dict(model)
    if fmt == "pt":
        save_torch(ckpt, path)
        return path
    from safetensors.torch import save

    meta = {
        "zooport_format": str(FORMAT_VERSION),
        "family": ckpt["family"],
        "arch": json.dumps(ckpt["arch"]),
        "meta": json.dumps(ckpt["meta"]),
    }
    blob = save(ckpt["state_dict"], metadata=meta)  # bytes, so the write itself is ours (errors map to WriteError)
    with atomic_write(path, "wb") as f:
        f.write(blob)
    return path


def is_native_dict(obj) -> bool:
    return isinstance(obj, dict) and "zooport_format" in obj and "state_dict" in obj


def read_native(path: str | os.PathLike) -> dict:
    """Read a native checkpoint (either form) into the dict form, without building a model."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                md = f.metadata() or {}
                sd = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
        if "zooport_format" not in md:
            raise CheckpointError(f"{path}: safetensors header has no zooport metadata (key 'zooport_format')")
        try:
            return {
                "zooport_format": int(md["zooport_format"]),
                "family": md["family"],
                "arch": json.loads(md["arch"]),
                "meta": json.loads(md["meta"]),
                "state_dict": sd,
            }
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{path}: bad zooport metadata in safetensors header ({e})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        unsafe, reason = torch_load_reason(e)
        raise (UnsafeCheckpointError if unsafe else CheckpointError)(
            f"{path}: not a zooport checkpoint: {reason}") from None
    if not is_native_dict(obj):
        raise CheckpointError(f"{path}: not a zooport native checkpoint (no 'zooport_format' key)")
    return obj


def torch_load_reason(e: BaseException) -> tuple[bool, str]:
    """``(unsafe, reason)`` for a failed ``torch.load(weights_only=True)``, in zooport's words.

    torch's message advises ``weights_only=False`` or ``add_safe_globals``, i.e. running code from an
    untrusted file; that advice is never passed on: only the refused global's name is kept.
    """
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    m = re.search(r"GLOBAL ([\w.]+)", text)
    if m:
        return True, f"it pickles {m.group(1)}, outside the safe allowlist (refused; nothing was executed)"
    if "weights_only" in text or "Unsupported" in text:
        return True, "it pickles objects outside the safe allowlist (refused; nothing was executed)"
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(e).__name__)
    return False, first[:200]


def model_from_native_dict(ckpt: dict, source: str = "<checkpoint>"):
    """Build the model of a native checkpoint dict and load its state dict strictly."""
    if ckpt.get("zooport_format") != FORMAT_VERSION:
        raise CheckpointError(f"{source}: zooport_format {ckpt.get('zooport_format')!r} is not supported "
                              f"(this zooport reads {FORMAT_VERSION})")
    from .. import families

    model = families.native_builder(ckpt.get("family"))(ckpt["arch"], ckpt["meta"])
    load_state_dict_strict(model, ckpt["state_dict"], source)
    return model.eval()


def load_native(path: str | os.PathLike):
    """Load a native checkpoint (``.pt`` or ``.safetensors``) into its model, in eval mode."""
    return model_from_native_dict(read_native(path), str(path))


def load_state_dict_strict(model: torch.nn.Module, state_dict: dict, source: str, *, assign: bool = False) -> None:
    """``load_state_dict(strict=True)`` with a :class:`CheckpointError` that names the keys (the one strict
    check). ``assign=True``: the model's tensors become ``state_dict``'s (no copy)."""
    from .strict import check_state_dict

    check_state_dict({k: v.shape for k, v in model.state_dict().items()}, state_dict, source)
    model.load_state_dict(state_dict, strict=True, assign=assign)
