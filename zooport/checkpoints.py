"""What a model file is, decided without unpickling it, and reading it with its family's loader.

:func:`sniff_checkpoint` scans a torch zip checkpoint's pickle opcodes (``pickletools.genops``) for the
globals and short strings it names and asks :func:`zooport.families.sniff` which family that is;
:func:`load_checkpoint` reads an existing file (native ``.pt``/``.safetensors`` or a family's checkpoint)
into a native model. Zoo names and Darknet ``CFG WEIGHTS`` pairs are :mod:`zooport.loading`'s business.
Torch-free at import.
"""
from __future__ import annotations

import os
import pickletools
import zipfile
from pathlib import Path

from .errors import CheckpointError, UsageError


def _pickle_bytes(path: Path) -> bytes | None:
    """The top-level pickle of a torch zip checkpoint (``*/data.pkl``), or None if not a zip."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not pkls:
                return b""
            from .parsers.torch_zip import read_member

            return read_member(zf, pkls[0], path, what="data.pkl")  # stored only: no zip bomb
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CheckpointError(f"{path}: broken zip archive ({e})") from None


def sniff_checkpoint(path: str | os.PathLike) -> str:
    """Classify a ``.pt``/``.pth`` file as "native", a family name of :mod:`zooport.families` ("yolov5",
    "ultralytics", "mmdet" ...), "torchscript" or "unknown".

    Reads the pickle opcodes only (``pickletools.genops``); nothing is executed. The family rules are the
    records' ``pickle_globals`` / ``pickle_strings`` / ``sniff_strings``.
    """
    path = Path(path)
    data = _pickle_bytes(path)
    if data is None:
        return "unknown"
    try:
        with zipfile.ZipFile(path) as zf:
            if any(n.endswith("/constants.pkl") or n.endswith("/code/") or "/code/" in n for n in zf.namelist()):
                return "torchscript"
    except zipfile.BadZipFile:
        return "unknown"
    strings: set[str] = set()
    globals_: set[str] = set()
    try:
        for op, arg, _pos in pickletools.genops(data):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE") and isinstance(arg, str) and len(arg) < 64:
                strings.add(arg)
            elif op.name == "GLOBAL" and isinstance(arg, str):
                globals_.add(arg.replace(" ", "."))
    except Exception:
        return "unknown"
    if "zooport_format" in strings:
        return "native"
    from . import families

    return families.sniff(globals_, strings) or "unknown"


MODEL_SUFFIXES = (".cfg", ".weights", ".pt", ".pth", ".safetensors", ".onnx")

def kind_of(path: str | os.PathLike) -> str:
    """What a file looks like: "cfg", "weights", "native", a family name, "torchscript" or "unknown"."""
    p = Path(path)
    if p.suffix == ".cfg":
        return "cfg"
    if p.suffix == ".weights":
        return "weights"
    if p.suffix == ".safetensors":
        return "native"
    try:
        return sniff_checkpoint(p) if p.is_file() else "unknown"
    except CheckpointError:
        return "unknown"


def source_hint(path: str | os.PathLike, expected: str) -> str | None:
    """A hint when ``path`` (given where a ``expected`` source is wanted: a family name) looks like another
    source, e.g. "looks like a YOLOv5 checkpoint: use `zooport convert yolov5 CKPT`"."""
    kind = kind_of(path)
    if kind in ("cfg", "weights"):
        kind = "darknet"
    if kind == expected or kind == "unknown":
        return None
    if kind == "native":
        return (f"{path}: looks like a zooport checkpoint (already converted): load it directly "
                "(zooport.load, zooport export onnx, zooport verify)")
    if kind == "torchscript":
        return f"{path}: a TorchScript archive (it carries code): zooport does not read those"
    from . import families

    fam = families.FAMILIES.get(kind)
    if fam is None:  # pragma: no cover - sniff_checkpoint returns family names only
        return None
    return f"{path}: looks like {fam.what}: use `{fam.convert}`"


def load_checkpoint(path: str | os.PathLike, *, names=None, config=None):
    """A native model, in eval mode, from an existing checkpoint file of any family zooport reads.

    ``names``: a names file or a list overriding the model's class names (same count). ``config``: an
    MMDetection config (families whose record ``takes_config``); refused for the others.
    """
    from . import families
    from .parsers.names import resolve_names

    p = Path(path)
    names = resolve_names(names)
    if p.suffix == ".safetensors":
        kind = "native"
    else:
        kind = sniff_checkpoint(p)
    if kind == "torchscript":
        raise CheckpointError(f"{p}: TorchScript archives are not read (they carry code); export the weights instead")
    if kind == "native":
        if config is not None:
            raise UsageError(f"{p}: a zooport checkpoint carries its architecture; config= is not used")
        from .converters.native import load_native

        return load_native(p).with_names(names, str(p))
    fam = families.FAMILIES.get(kind)
    if fam is None or fam.name == "darknet":
        known = ", ".join(f.what for f in families.FAMILIES.values() if f.name != "darknet")
        raise CheckpointError(f"{p}: not a checkpoint zooport recognises (expected a zooport checkpoint, {known})")
    if config is not None and not fam.takes_config:
        raise UsageError(f"{p}: {fam.what} carries its architecture; config= is for MMDetection checkpoints")
    kwargs = {"config": config} if fam.takes_config else {}
    return fam.load_fn()(p, names=names, **kwargs)
