"""Metadata of a Darknet model (names, strides, anchors, preprocessing, source) and ``--classes`` rewriting.

Torch-free. Everything here derives from the parsed cfg and its plan, so a native checkpoint (which
stores the cfg text) reproduces it.
"""
from __future__ import annotations

import math
import os

from ..._io import sha256_file
from ...errors import ParseError, UnsupportedError
from ...parsers.darknet.cfg import DarknetCfg, parse_cfg
from ...parsers.names import read_names

# head type -> extra channels per anchor besides the classes
_HEAD_EXTRA = {"yolo": 5, "Gaussian_yolo": 9}


def num_classes_of(plan) -> int:
    """Classes of the first detection head, or the output size of a classifier."""
    for lp in plan:
        if lp.is_head:
            return int(lp.attrs["classes"])
    return math.prod(plan[-1].out_shape)


def resolve_names(names, plan) -> list[str]:
    """Names from a list, a ``.names`` file path, or defaults ``class0..``; checked against the heads."""
    nc = num_classes_of(plan)
    if names is None:
        return [f"class{i}" for i in range(nc)]
    src = None
    if isinstance(names, (str, os.PathLike)):
        src = names
        names = read_names(names)
    names = [str(n) for n in names]
    heads = [lp for lp in plan if lp.is_head]
    if heads and len(names) != nc:
        raise ParseError(f"has {len(names)} class names but the cfg's heads have classes={nc}", src or "<names>")
    return names


def model_metadata(cfg: DarknetCfg, plan) -> dict:
    """``stride``, ``anchors`` (pixels, per head), ``input_size`` [h, w] and ``preprocess`` of a cfg."""
    _, h, w = plan[0].in_shape
    strides, anchors = [], []
    for lp in plan:
        if not lp.is_head:
            continue
        s = h // lp.in_shape[1] if lp.in_shape[1] else 1
        strides.append(int(s))
        a = lp.attrs.get("anchors") or []
        if lp.type in ("yolo", "Gaussian_yolo"):
            anchors.append([[float(a[m][0]), float(a[m][1])] for m in lp.attrs["mask"] if m < len(a)])
        elif lp.type == "region":  # [region] anchors are in grid cells
            anchors.append([[float(x) * s, float(y) * s] for x, y in a])
        else:
            anchors.append([])
    letterbox = cfg.net.get_int("letter_box", 0) != 0
    preprocess = {"mode": "letterbox" if letterbox else "resize", "pad_value": 127 if letterbox else 0,
                  "color": "rgb", "scale": 1.0 / 255.0}
    return {"stride": strides or [1], "anchors": anchors or None, "input_size": [int(h), int(w)],
            "preprocess": preprocess}


class LazySource(dict):
    """``model.source`` whose ``sha256`` is computed on first use: hashing a 250 MB file costs more than
    loading it, and most loads never look at it. The file's size and mtime are recorded at load time;
    if the file changed before the hash is needed, ``sha256`` is None rather than a wrong value."""

    def __init__(self, base: dict, weights_path):
        super().__init__(base)
        self._path = os.fspath(weights_path)
        self._stat = self._fingerprint()

    def _fingerprint(self):
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns)

    def _resolve(self) -> None:
        if "sha256" in dict.keys(self):
            return
        sha = None
        if self._stat is not None and self._fingerprint() == self._stat:
            try:
                sha = sha256_file(self._path)
            except OSError:
                sha = None
        dict.__setitem__(self, "sha256", sha)

    def __getitem__(self, k):
        self._resolve()
        return dict.__getitem__(self, k)

    def get(self, k, default=None):
        self._resolve()
        return dict.get(self, k, default)

    def __contains__(self, k):
        self._resolve()
        return dict.__contains__(self, k)

    def __iter__(self):
        self._resolve()
        return dict.__iter__(self)

    def __len__(self):
        self._resolve()
        return dict.__len__(self)

    def keys(self):
        self._resolve()
        return dict.keys(self)

    def items(self):
        self._resolve()
        return dict.items(self)

    def values(self):
        self._resolve()
        return dict.values(self)

    def copy(self):
        self._resolve()
        return dict(dict.items(self))

    def __deepcopy__(self, memo):
        import copy

        self._resolve()
        return copy.deepcopy(dict(dict.items(self)), memo)

    def __reduce__(self):
        self._resolve()
        return (dict, (dict(dict.items(self)),))

    def __repr__(self):
        self._resolve()
        return dict.__repr__(self)

    def __eq__(self, other):
        self._resolve()
        return dict.__eq__(self, other)

    __hash__ = None


def _set_key(lines: list[str], inserts: list, sec, key: str, value) -> None:
    if key in sec.key_lines:
        i = sec.key_lines[key] - 1
        eol = "\r" if lines[i].endswith("\r") else ""
        lines[i] = f"{key}={value}{eol}"
    else:
        inserts.append((sec.line, f"{key}={value}"))


def with_num_classes(cfg: DarknetCfg, plan, n: int) -> DarknetCfg:
    """The same cfg with every head set to ``n`` classes and the conv feeding it resized:
    [yolo]: filters=(n+5)*len(mask); [Gaussian_yolo]: (n+9)*len(mask); [region]: num*(n+coords+1).
    Returns a re-parsed cfg whose ``text`` holds the edit (so checkpoints store the new cfg)."""
    if n < 1:
        raise UnsupportedError(f"--classes {n}: expected a positive number of classes")
    lines = cfg.text.split("\n")
    inserts: list = []
    heads = [lp for lp in plan if lp.is_head]
    if not heads:
        raise UnsupportedError(f"{cfg.name}: has no detection head ([yolo], [region], [Gaussian_yolo]); "
                               f"cannot change its number of classes")
    for lp in heads:
        sec = lp.section
        if lp.type == "detection":
            raise UnsupportedError(f"{cfg.name}:{sec.line}: changing the classes of a YOLOv1 [detection] head "
                                   f"is not supported")
        prev = plan[lp.index - 1] if lp.index > 0 else None
        if prev is None or prev.type != "convolutional" or prev.attrs.get("share_index") is not None:
            raise UnsupportedError(f"{cfg.name}:{sec.line}: [{sec.type}] (layer {lp.index}) is not fed by its own "
                                   f"[convolutional] layer; cannot resize it for {n} classes")
        if lp.type == "region":
            filters = lp.attrs["num"] * (n + lp.attrs["coords"] + 1)
        else:
            filters = (n + _HEAD_EXTRA[lp.type]) * len(lp.attrs["mask"])
        _set_key(lines, inserts, sec, "classes", n)
        _set_key(lines, inserts, prev.section, "filters", filters)
    for line_no, text in sorted(inserts, reverse=True):  # bottom-up keeps earlier line numbers valid
        lines.insert(line_no, text)
    return parse_cfg(cfg.path, text="\n".join(lines))


def file_source(weights_path, header: dict | None, cfg: DarknetCfg) -> dict:
    src = {"format": "darknet", "cfg_file": cfg.name}
    if weights_path is not None:
        src["file"] = os.path.basename(os.fspath(weights_path))
    if header is not None:
        src["darknet_header"] = dict(header)
    return src
