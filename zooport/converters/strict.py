"""The one strict state-dict check: the same keys, and the same shape for every key.

Every loader and converter runs it before tensors move (native checkpoints, Darknet weights
against the cfg plan, YOLOv5 / Ultralytics / MMDetection / mmdetection-mini state dicts, the
YOLOv5 -> Darknet export), so a wrong file fails with one message naming the file, the key and
what was expected, and never with torch's multi-line ``load_state_dict`` report.
"""
from __future__ import annotations

from ..errors import CheckpointError


def _keys(keys: list, show) -> str:
    shown = [show(k) for k in keys[:5]]
    if len(keys) == 1:
        return f"key {shown[0]!r}"
    return f"keys {shown}{f' ... ({len(keys)} in all)' if len(keys) > 5 else ''}"


def check_state_dict(expected: dict, got: dict, where: str, *, subject: str = "the model", show=str,
                     error=CheckpointError) -> None:
    """Raise ``error`` unless ``got`` has exactly the keys of ``expected`` with its shapes.

    ``expected``: key -> shape (a tuple / ``torch.Size``, or None to check the key only);
    ``got``: key -> tensor (anything with ``.shape``) or shape. ``show`` turns a key into the name
    the user knows (e.g. YOLOv5's ``model.N.`` key of a native key) in the message.
    """
    missing = [k for k in expected if k not in got]
    unused = [k for k in got if k not in expected]
    if missing or unused:
        parts = ([f"missing {_keys(missing, show)}"] if missing else []) + \
                ([f"unused {_keys(unused, show)} ({subject} has no such tensor)"] if unused else [])
        raise error(f"{where}: state dict does not match {subject}: " + "; ".join(parts))
    for k, shape in expected.items():
        if shape is None:
            continue
        v = got[k]
        have = tuple(getattr(v, "shape", v))
        if have != tuple(shape):
            raise error(f"{where}: key {show(k)!r} has shape {have}, {subject} expects {tuple(shape)}")
