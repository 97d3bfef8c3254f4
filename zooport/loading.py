"""One entry point that loads anything zooport reads, for the CLI verbs that take a MODEL.

MODEL forms (``spec`` is a list of command-line words):

* ``CFG WEIGHTS`` -> Darknet; ``load(cfg, weights)`` is the same as ``load([cfg, weights])``; ``CFG`` alone
  only with ``random_weights=True`` (seeded random parameters)
* ``FILE.safetensors`` or a ``.pt`` written by ``zooport convert`` -> native checkpoint
* a YOLOv5 ``.pt`` (pickled ``models.yolo`` modules, read without unpickling code)
* an Ultralytics YOLOv8 / YOLO11 ``.pt`` (pickled ``ultralytics.nn`` modules, read the same way)
* an MMDetection ``.pth`` (``{"meta", "state_dict"}``), config taken from its meta or ``config=``
* a zoo name or alias (``yolov4``, ``yolov5s.v7_coco``)

Nothing is unpickled to decide which: the pickle stream's opcodes are scanned (:mod:`zooport.checkpoints`, with
the family rules of :mod:`zooport.families`).
"""
from __future__ import annotations

import os
from pathlib import Path

from .checkpoints import MODEL_SUFFIXES, load_checkpoint
from .errors import CheckpointError, UsageError


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
    p = paths[0]
    if p.exists():
        return load_checkpoint(p, names=names, config=config)
    if os.sep in spec[0] or p.suffix in MODEL_SUFFIXES:
        raise CheckpointError(f"{p}: no such file")
    from .parsers.names import resolve_names
    from .zoo.api import load_pretrained

    model, names = load_pretrained(spec[0]), resolve_names(names)
    return model if names is None else model.with_names(names, spec[0])


def as_model(model, names=None):
    """What the tools take as MODEL: a spec (path, ``[CFG, WEIGHTS]``, zoo name) is loaded with ``names``; a
    model object is used as is, or, with ``names`` (a list or a names file), as a shallow copy carrying those
    names (same parameters; the caller's model is not modified)."""
    if isinstance(model, (str, os.PathLike, list, tuple)):
        return load_model(model, names=names)
    from .parsers.names import resolve_names

    names = resolve_names(names)
    if names is None:
        return model
    import copy

    return copy.copy(model).with_names(names, "names")
