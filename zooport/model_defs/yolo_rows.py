"""What YOLOv5 and Ultralytics architectures share: the yaml row walk, the routing forward, the stride probe.

Both describe a network as ``backbone + head`` rows ``[from, number, module, args]``: ``from`` is -1
(the previous layer), a relative (negative) or absolute index, or a list of them; ``number`` repeats a
block, scaled by the depth multiple; the last row is the head. Each family's builder turns a row into
its own modules (``yolov5/parse.py``, ``ultralytics/build.py``); the walk, the ``from`` rules and the
forward that routes saved outputs to later layers are the same and live here once.
"""
from __future__ import annotations

from typing import Iterator

import torch

from ..errors import ConfigError


def yaml_rows(d: dict, depth: float, what: str) -> Iterator[tuple]:
    """``(i, from, repeats, module name, args, where)`` for each row of ``d["backbone"] + d["head"]``;
    ``repeats`` already scaled (``max(round(n * depth), 1)`` when n > 1, as both references do);
    ``where`` names the row for errors (``what`` = "YOLOv5 architecture" / "Ultralytics yaml")."""
    rows = list(d["backbone"]) + list(d["head"])
    for i, row in enumerate(rows):
        where = f"{what} layer {i}"
        try:
            f, n, mname, args = row
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected [from, number, module, args], got {row!r}") from None
        yield i, f, (max(round(n * depth), 1) if n > 1 else n), mname, list(args), where


def from_channels(ch: list, i: int, f, where: str, ch_in: int = 3) -> list:
    """Input channels of row ``i`` for its ``from`` entry ``f`` (int or list), given the output channels
    ``ch`` of rows 0..i-1; -1 on the first row is the image (``ch_in``)."""
    out = []
    for j in [f] if isinstance(f, int) else list(f):
        k = i + j if j < 0 else j
        if i == 0 and j == -1:
            out.append(ch_in)
        elif isinstance(j, int) and 0 <= k < i:
            out.append(ch[k])
        else:
            raise ConfigError(f"{where}: 'from' index {j} points outside layers 0..{i - 1}")
    return out


def route(layers, froms, save, head_index: int, x: torch.Tensor) -> list:
    """Run ``layers`` up to the head as YOLOv5's ``_forward_once`` / Ultralytics' ``_predict_once`` do
    (layer i takes the previous output, or the saved outputs its ``froms[i]`` names); returns the
    head's inputs as a list."""
    y: dict = {}
    for i, (m, f) in enumerate(zip(layers, froms)):
        if f != -1:
            x = y[f] if isinstance(f, int) else [x if j == -1 else y[j] for j in f]
        if i == head_index:
            return x if isinstance(x, list) else [x]
        x = m(x)
        if i in save:
            y[i] = x
    raise ConfigError("the architecture has no head layer")


def probe_strides(model, size: int = 256, ch: int = 3) -> list:
    """Strides of the head's inputs, from a shapes-only forward of ``model`` (built on the meta device)
    at ``size`` x ``size``: ``size // height`` per input, as both references compute them."""
    from torch.nn import functional as F
    from torch.overrides import TorchFunctionMode

    class _ShapesOnly(TorchFunctionMode):  # batch norm keeps shapes; on meta tensors it is slow Python
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return args[0] if func is F.batch_norm else func(*args, **(kwargs or {}))

    with _ShapesOnly():
        feats = model._detect_inputs(torch.zeros(1, ch, size, size, device="meta"))
    return [size // o.shape[-2] for o in feats]
