"""Reading tests/golden/mini (made by scripts/make_golden_mini.py with mmdetection-mini's own code).

The checkpoints that are not shipped are rebuilt from the documented per-key formula plus the calibrated
BN statistics (``bnstats.f32``), and every tensor is checked against the sha256 the oracle recorded in
``keys.tsv`` before use, so a test runs exactly the weights mini ran.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

GOLDEN = Path(__file__).resolve().parent / "golden" / "mini"


def index(name: str) -> dict:
    out = {}
    for line in (GOLDEN / name / "index.txt").read_text().splitlines():
        k, _, v = line.partition(" ")
        out[k] = v
    return out


def formula(k: int, shape, kind: str) -> np.ndarray:
    """README.md's weight formula for the k-th tensor."""
    n = int(np.prod(shape))
    u = np.random.Generator(np.random.PCG64(1000 + k)).random(n) * 2 - 1
    if kind == "conv":
        v = u * np.sqrt(3.0 / (shape[1] * shape[2] * shape[3]))
    elif kind == "bn_weight":
        v = 0.6 + 0.2 * u
    elif kind == "running_var":
        v = 1 + 0.5 * u
    else:
        v = 0.05 * u
    return v.astype(np.float32).reshape(shape)


def tensor_sha(t: torch.Tensor) -> str:
    a = t.detach().contiguous().numpy()
    return hashlib.sha256(a.astype(a.dtype.newbyteorder("<")).tobytes()).hexdigest()


def rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()[1:]]


def rebuilt_state_dict(name: str) -> "OrderedDict":
    d = GOLDEN / name
    stats = np.fromfile(d / "bnstats.f32", dtype="<f4")
    off, k, sd = 0, 0, OrderedDict()
    for key, shp, kind, sha in rows(d / "keys.tsv"):
        shape = tuple(int(s) for s in shp.split(",")) if shp else ()
        if kind == "count":
            sd[key] = torch.tensor(0, dtype=torch.int64)
        elif kind == "calibrated":
            n = int(np.prod(shape))
            sd[key] = torch.from_numpy(stats[off:off + n].copy()).reshape(shape)
            off += n
            k += 1
        else:
            sd[key] = torch.from_numpy(formula(k, shape, kind))
            k += 1
        assert tensor_sha(sd[key]) == sha, f"{name}: rebuilt {key} differs from the oracle's tensor"
    assert off == stats.size
    return sd


def checkpoint(name: str, tmp_path: Path) -> Path:
    """The shipped .pth, or the rebuilt one saved as mini's converters save theirs."""
    ck = index(name)["checkpoint"]
    if ck.endswith(".pth"):
        return GOLDEN / name / ck
    p = tmp_path / f"{name}.pth"
    torch.save({"state_dict": rebuilt_state_dict(name)}, p)
    return p


def model_input(name: str) -> torch.Tensor:
    fn, rest = index(name)["input"].split(" ", 1)
    shape = [int(s) for s in rest.split()[1:]]  # "u8 C H W"
    u8 = np.fromfile(GOLDEN / name / fn, dtype=np.uint8).reshape(shape)
    return torch.from_numpy(u8.astype(np.float32) * np.float32(1 / 255.0))[None]


def outputs(name: str) -> list[np.ndarray]:
    idx = index(name)
    out, i = [], 0
    while f"out{i}" in idx:
        shape = [int(s) for s in idx[f"out{i}"].split()[1:]]
        out.append(np.fromfile(GOLDEN / name / f"out{i}.f32", dtype="<f4").reshape(shape))
        i += 1
    return out


def meta(name: str) -> dict:
    idx = index(name)
    return {"scale_factor": [float(v) for v in idx["scale_factor"].split()],
            "pad_param": [float(v) for v in idx["pad_param"].split()] if "pad_param" in idx else None}


def assert_same_dets(dets, labels, ref_path: Path):
    """Same detections as mini: same count, order and labels; boxes within 1e-4 of each box's extent
    (mini's raw outputs are matched within 1e-4, and exp() in the decoder scales that by the box
    size), scores within 1e-4."""
    ref = np.loadtxt(ref_path, ndmin=2)
    d = dets.numpy().astype(np.float64)
    assert d.shape[0] == ref.shape[0], f"{ref_path}: {d.shape[0]} detections, mini has {ref.shape[0]}"
    assert np.array_equal(labels.numpy(), ref[:, 5].astype(np.int64)), f"{ref_path}: labels differ"
    scale = np.maximum(1.0, np.abs(ref[:, :4]).max(axis=1, keepdims=True))
    box_err = np.abs(d[:, :4] - ref[:, :4]) / scale
    assert box_err.max() <= 1e-4, f"{ref_path}: box error {box_err.max():.3g} of the box extent"
    assert np.abs(d[:, 4] - ref[:, 4]).max() <= 1e-4, f"{ref_path}: scores differ"
    return float(box_err.max())
