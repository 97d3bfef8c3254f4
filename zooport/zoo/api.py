"""``zooport.load_pretrained`` and ``zooport.list_models``: the zoo's Python API."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import CheckpointError, ManifestError
from ..parsers.names import read_names
from .manifest import ZooEntry, load_manifest


def list_models(*, aliases: bool = False) -> list[str]:
    """Full names of every zoo model (``yolov4.darknet_coco`` ...), in manifest order;
    with ``aliases=True`` the short aliases follow each name."""
    out = []
    for e in load_manifest():
        out.append(e.name)
        if aliases:
            out.extend(e.aliases)
    return out


def get_entry(name: str) -> ZooEntry:
    """The manifest entry of a zoo name or alias (:class:`ManifestError` with suggestions if unknown)."""
    return load_manifest().get(name)


def load_pretrained(name: str | os.PathLike, *, weights: str | os.PathLike | None = None, device="cpu",
                    fuse: bool = False, progress: bool | None = None):
    """A zoo model with its released weights, in eval mode, carrying its metadata.

    ``name``: a zoo name or alias (``"yolov4"``, ``"yolov5s.v7_coco"``), or the path of any
    checkpoint zooport reads (a native ``.pt``/``.safetensors`` written by ``zooport convert``, a
    YOLOv5 ``.pt`` ...). ``weights``: a local weights file standing in for the download (used as
    given, not hash-checked). Otherwise the weights come from the cache, downloaded and verified
    (full sha256) on first use; see :mod:`zooport.zoo.cache` for the environment variables.

    The model's ``names``, ``stride``, ``input_size``, ``preprocess`` and ``source`` (zoo name, file,
    sha256, URL, license) are set from the manifest; input (B, 3, H, W) RGB in [0, 1].
    """
    p = Path(name)
    if p.is_file():
        from ..loading import load_model

        model = load_model(str(p))
    else:
        if isinstance(name, os.PathLike) or os.sep in str(name) or p.suffix in (".pt", ".pth", ".safetensors"):
            raise CheckpointError(f"{p}: no such file")
        entry = get_entry(str(name))
        model = _build(entry, weights, progress)
    if fuse:
        model.fuse()
    return model.to(device).eval()


def _build(entry: ZooEntry, weights, progress):
    spec = entry.weights
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such file (weights= for zoo model {entry.name})")
        sha = None  # the caller's file: not the released one necessarily
    else:
        from .cache import fetch

        path = fetch(spec, progress=progress)
        sha = None if spec.sha256_is_prefix else spec.sha256  # a prefix: the loader records the full hash
    if entry.format == "darknet":
        from ..converters.darknet.load import load_darknet

        model = load_darknet(entry.cfg_path, path, names=entry.names_path)
    elif entry.format == "yolov5":
        from ..converters.yolov5.load import load_yolov5

        model = load_yolov5(path)
    elif entry.format == "mmdet":
        from ..converters.mmdet.load import load_mmdet

        model = load_mmdet(path)  # config from the checkpoint's meta
    else:  # pragma: no cover - the manifest schema allows only the formats above
        raise ManifestError(f"zoo model {entry.name}: unknown format {entry.format!r}")
    if model.num_classes != entry.num_classes:
        raise ManifestError(f"zoo model {entry.name}: {path} has {model.num_classes} classes, "
                            f"the manifest says {entry.num_classes}")
    if list(model.stride) != list(entry.stride):
        raise ManifestError(f"zoo model {entry.name}: {path} builds a model with strides {model.stride}, "
                            f"the manifest says {list(entry.stride)}")
    names = read_names(entry.names_path)
    if len(names) != model.num_classes:
        raise ManifestError(f"zoo model {entry.name}: {entry.names_path} has {len(names)} names, "
                            f"the model {model.num_classes} classes")
    model.names = names
    model.input_size = list(entry.input_size)
    model.preprocess = dict(entry.preprocessing)
    # update in place: a converter's source dict may compute its sha256 lazily, and the
    # manifest's (already verified) hash spares that second pass over the file
    extra = {"zoo": entry.name, "file": str(path), "license": entry.license_text, "url": spec.url}
    if sha is not None:
        extra["sha256"] = sha
    model.source.update(extra)
    return model
