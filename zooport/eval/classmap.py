"""Mapping a model's class names onto a dataset's class names.

``resolve_class_map(spec, model_names, dataset_names)`` returns a list, one
entry per model class: the dataset class name it scores as, or None (dropped).

* ``None``: identity by name; every model name must be a dataset name, except
  that an 80-class COCO model on a COCO dataset is handled by the caller
  (80 -> 91 id map).
* ``"coco-voc"`` (built in): the 20 VOC classes from COCO names, accepting both
  the official COCO spellings (airplane, dining table, motorcycle, potted
  plant, couch, tv) and Darknet's coco.names spellings (aeroplane,
  diningtable, motorbike, pottedplant, sofa, tvmonitor); other classes dropped.
* a path to a YAML file holding a mapping ``model name: dataset name`` (a null
  value drops the class; model names not listed are dropped).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError, ParseError, UsageError

_VOC_SAME = ["bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "dog", "horse",
             "person", "sheep", "train"]
_VOC_ALIASES = {
    "aeroplane": ["airplane", "aeroplane"],
    "diningtable": ["dining table", "diningtable"],
    "motorbike": ["motorcycle", "motorbike"],
    "pottedplant": ["potted plant", "pottedplant"],
    "sofa": ["couch", "sofa"],
    "tvmonitor": ["tv", "tvmonitor", "tv monitor"],
}


def _coco_voc() -> dict:
    m = {n: n for n in _VOC_SAME}
    for voc, aliases in _VOC_ALIASES.items():
        for a in aliases:
            m[a] = voc
    return m


BUILTIN = {"coco-voc": _coco_voc}


def load_map(spec) -> dict:
    """A built-in name or a YAML file -> {model name: dataset name or None}."""
    if isinstance(spec, dict):
        return dict(spec)
    if str(spec) in BUILTIN:
        return BUILTIN[str(spec)]()
    p = Path(spec)
    if not p.is_file():
        raise UsageError(f"class map '{spec}': not a built-in map ({', '.join(BUILTIN)}) and no such YAML file")
    import yaml

    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise ParseError(f"invalid YAML ({getattr(e, 'problem', e)})", p, None if line is None else line + 1) from None
    if not isinstance(data, dict):
        raise ParseError("expected a mapping 'model class name: dataset class name'", p)
    out = {}
    for k, v in data.items():
        if not isinstance(k, str) or not (v is None or isinstance(v, str)):
            raise ParseError(f"entry {k!r}: {v!r}: keys and values must be class names (or null)", p)
        out[k] = v
    return out


def _unnamed(model_names: list) -> bool:
    """True for the placeholder names class0, class1, ... of a model loaded without a names file."""
    return all(n == f"class{i}" for i, n in enumerate(model_names))


def resolve_class_map(spec, model_names: list, dataset_names: list) -> list:
    """Per model class, the dataset class name it is scored as (None = dropped)."""
    ds = set(dataset_names)
    if _unnamed(model_names) and not ds >= set(model_names):
        raise DatasetError(f"the model has no class names (class0 .. class{len(model_names) - 1}), so "
                           + (f"class map '{spec}' cannot map them" if spec is not None else
                              "they cannot be matched with the dataset's") + ": pass --names FILE (names= in Python)")
    if spec is None:
        missing = [n for n in model_names if n not in ds]
        if missing:
            raise DatasetError(
                f"the model's class names do not match the dataset's ({len(missing)} unknown, e.g. "
                f"{missing[:3]}); pass a class map (--class-map coco-voc or a YAML file)"
            )
        return list(model_names)
    m = load_map(spec)
    out = [m.get(n) for n in model_names]
    if not any(v is not None and v in ds for v in out):
        raise DatasetError(f"class map '{spec}' maps none of the model's classes onto a dataset class")
    return out
