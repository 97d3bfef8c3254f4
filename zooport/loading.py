"""One entry point that loads anything zooport reads, for the CLI verbs that take a MODEL.

MODEL forms (``spec`` is a list of command-line words):

* ``CFG WEIGHTS`` -> Darknet (``CFG`` alone only with ``random_weights=True``: seeded random parameters)
* ``FILE.safetensors`` or a ``.pt`` written by ``zooport convert`` -> native checkpoint
* a YOLOv5 ``.pt`` (pickled ``models.yolo`` modules, read without unpickling code)
* an MMDetection ``.pth`` (``{"meta", "state_dict"}``), config taken from its meta or ``config=``
* a zoo name or alias (``yolov4``, ``yolov5s.v7_coco``)

Nothing is unpickled to decide which: the pickle stream's opcodes are scanned.
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
    """Classify a ``.pt``/``.pth`` file as "native", "yolov5", "mmdet", "torchscript" or "unknown".

    Reads the pickle opcodes only (``pickletools.genops``); nothing is executed.
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
    if any(g.startswith(("models.yolo", "models.common")) for g in globals_) or {"models.yolo", "models.common"} & strings:
        return "yolov5"
    if "state_dict" in strings and "meta" in strings:
        return "mmdet"
    return "unknown"


def load_model(spec, *, names: str | None = None, config: str | None = None,
               random_weights: bool = False, seed: int = 0):
    """Load a :class:`~zooport.model_defs.base.Detector` from a MODEL spec (see module doc).

    ``random_weights``/``seed``: a Darknet ``CFG`` alone gets seeded random parameters (the CLI's
    ``--random-weights``); without it a cfg alone is refused, never run on uninitialised memory.
    """
    if isinstance(spec, (str, os.PathLike)):
        spec = [str(spec)]
    spec = [str(s) for s in spec]
    if not spec or len(spec) > 2:
        raise UsageError(f"MODEL must be one or two words (CFG WEIGHTS, a checkpoint or a zoo name), got {spec}")
    paths = [Path(s) for s in spec]
    if paths[0].suffix == ".cfg":
        from .converters.darknet import load_darknet

        return load_darknet(paths[0], paths[1] if len(paths) > 1 else None, names=names,
                            random_weights=random_weights, seed=seed)
    if random_weights:
        raise UsageError(f"{spec[0]}: random weights apply to a Darknet cfg alone, not to a checkpoint or zoo name")
    if len(spec) == 2:
        raise UsageError(f"two words given for MODEL but the first is not a Darknet .cfg: {spec}")
    p = paths[0]
    if not p.exists():
        if os.sep in spec[0] or p.suffix in (".pt", ".pth", ".safetensors", ".weights", ".onnx"):
            raise CheckpointError(f"{p}: no such file")
        from .zoo.api import load_pretrained

        return load_pretrained(spec[0])
    if p.suffix == ".weights":
        raise UsageError(f"{p}: a Darknet .weights file needs its cfg: give MODEL as 'CFG WEIGHTS'")
    if p.suffix == ".safetensors":
        from .converters.native import load_native

        return load_native(p)
    kind = sniff_checkpoint(p)
    if kind == "native":
        from .converters.native import load_native

        return load_native(p)
    if kind == "yolov5":
        from .converters.yolov5 import load_yolov5

        return load_yolov5(p)
    if kind == "mmdet":
        from .converters.mmdet import load_mmdet

        return load_mmdet(p, config)
    if kind == "torchscript":
        raise CheckpointError(f"{p}: TorchScript archives are not read (they carry code); export the weights instead")
    raise CheckpointError(f"{p}: not a checkpoint zooport recognises (expected a zooport, YOLOv5 or MMDetection file)")
