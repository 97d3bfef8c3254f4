"""One entry point that loads anything zooport reads, for the CLI verbs that take a MODEL.

MODEL forms (``spec`` is a list of command-line words):

* ``CFG WEIGHTS`` -> Darknet; ``load(cfg, weights)`` is the same as ``load([cfg, weights])``; ``CFG`` alone
  only with ``random_weights=True`` (seeded random parameters)
* ``FILE.safetensors`` or a ``.pt`` written by ``zooport convert`` -> native checkpoint
* a YOLOv5 ``.pt`` (pickled ``models.yolo`` modules, read without unpickling code)
* an Ultralytics YOLOv8 / YOLO11 ``.pt`` (pickled ``ultralytics.nn`` modules, read the same way)
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
    """Classify a ``.pt``/``.pth`` file as "native", "yolov5", "ultralytics", "mmdet", "torchscript" or "unknown".

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
    if any(g.startswith("ultralytics.") for g in globals_) or any(s.startswith("ultralytics.nn") for s in strings):
        return "ultralytics"
    if any(g.startswith(("models.yolo", "models.common")) for g in globals_) or {"models.yolo", "models.common"} & strings:
        return "yolov5"
    if "state_dict" in strings and "meta" in strings:
        return "mmdet"
    return "unknown"


MODEL_SUFFIXES = (".cfg", ".weights", ".pt", ".pth", ".safetensors", ".onnx")

# source -> the command that converts it, for "use `zooport convert ...`" hints
_CONVERT = {"yolov5": ("a YOLOv5 checkpoint", "zooport convert yolov5 CKPT"),
            "mmdet": ("an MMDetection checkpoint", "zooport convert mmdet CKPT"),
            "darknet": ("a Darknet file", "zooport convert darknet CFG WEIGHTS")}


def kind_of(path: str | os.PathLike) -> str:
    """What a file looks like: "cfg", "weights", "native", "yolov5", "mmdet", "torchscript" or "unknown"."""
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
    """A hint when ``path`` (given where a ``expected`` source is wanted: "darknet", "yolov5" or "mmdet")
    looks like another source, e.g. "looks like a YOLOv5 checkpoint: use `zooport convert yolov5`"."""
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
    what, cmd = _CONVERT[kind]
    return f"{path}: looks like {what}: use `{cmd}`"


def check_model_spec(words) -> None:
    """Order hints for a Darknet pair: ``WEIGHTS CFG`` swapped, or a lone ``.weights`` without its cfg."""
    suffixes = [Path(str(w)).suffix for w in words]
    if suffixes == [".weights", ".cfg"]:
        raise UsageError(f"{words[0]} {words[1]}: arguments swapped? the order is CFG WEIGHTS")
    if suffixes[0] == ".weights":
        raise UsageError(f"{words[0]}: a Darknet .weights file needs its cfg: the order is CFG WEIGHTS")
    if len(words) == 2 and suffixes[0] != ".cfg":
        raise UsageError(f"two words given for MODEL but the first is not a Darknet .cfg: {list(words)} "
                         "(the order is CFG WEIGHTS)")


def _names_list(names):
    """``names`` as a list (a names file is read by the one reader), or None."""
    if names is None or isinstance(names, (list, tuple)):
        return None if names is None else [str(n) for n in names]
    from .parsers.names import read_names

    return read_names(names)


def _set_names(model, names, where: str):
    if names is None:
        return model
    if len(names) != len(model.names):
        raise UsageError(f"{where}: {len(names)} class names given, the model has {len(model.names)} classes")
    model.names = list(names)
    if hasattr(model, "refresh_meta"):
        model.refresh_meta()
    return model


def load_model(spec, weights=None, *, names=None, config=None, num_classes: int | None = None,
               random_weights: bool = False, seed: int = 0):
    """Load a :class:`~zooport.model_defs.base.Detector` from a MODEL spec (see module doc).

    ``zooport.load("yolov4.cfg", "yolov4.weights")``, ``zooport.load(["CFG", "WEIGHTS"])``,
    ``zooport.load("yolov5s.pt")`` or ``zooport.load("yolov4")`` (zoo name). ``names``: a names file
    or a list overriding the model's class names. ``num_classes``: re-head a Darknet model for N
    classes (see :func:`~zooport.converters.darknet.load.load_darknet`). ``config``: MMDetection config.
    ``random_weights``/``seed``: a Darknet ``CFG`` alone gets seeded random parameters (the CLI's
    ``--random-weights``); without it a cfg alone is refused, never run on uninitialised memory.
    """
    if isinstance(spec, (str, os.PathLike)):
        spec = [spec]
    spec = [str(s) for s in spec] + ([str(weights)] if weights is not None else [])
    if not spec or len(spec) > 2:
        raise UsageError(f"MODEL must be one or two words (CFG WEIGHTS, a checkpoint or a zoo name), got {spec}")
    check_model_spec(spec)
    paths = [Path(s) for s in spec]
    for p in paths:
        if p.is_dir():
            raise UsageError(f"{p}: is a directory; expected a model file")
    if paths[0].suffix == ".cfg":
        from .converters.darknet.load import load_darknet

        return load_darknet(paths[0], paths[1] if len(paths) > 1 else None, names=names, num_classes=num_classes,
                            random_weights=random_weights, seed=seed)
    if random_weights:
        raise UsageError(f"{spec[0]}: random weights apply to a Darknet cfg alone, not to a checkpoint or zoo name")
    if num_classes is not None:
        raise UsageError("num_classes= re-heads Darknet models only (give CFG WEIGHTS)")
    names = _names_list(names)
    p = paths[0]
    if not p.exists():
        if os.sep in spec[0] or p.suffix in MODEL_SUFFIXES:
            raise CheckpointError(f"{p}: no such file")
        from .zoo.api import load_pretrained

        return _set_names(load_pretrained(spec[0]), names, spec[0])
    if p.suffix == ".safetensors":
        from .converters.native import load_native

        return _set_names(load_native(p), names, str(p))
    kind = sniff_checkpoint(p)
    if kind == "native":
        from .converters.native import load_native

        return _set_names(load_native(p), names, str(p))
    if kind == "yolov5":
        from .converters.yolov5.load import load_yolov5

        return load_yolov5(p, names=names)
    if kind == "ultralytics":
        from .converters.ultralytics.load import load_ultralytics

        return load_ultralytics(p, names=names)
    if kind == "mmdet":
        from .converters.mmdet.load import load_mmdet

        return load_mmdet(p, config, names=names)
    if kind == "torchscript":
        raise CheckpointError(f"{p}: TorchScript archives are not read (they carry code); export the weights instead")
    raise CheckpointError(f"{p}: not a checkpoint zooport recognises (expected a zooport, YOLOv5, Ultralytics or MMDetection file)")
