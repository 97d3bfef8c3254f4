"""Weights of the ``golden/mmdet-more`` models, regenerated from ``keys.tsv`` and the seed.

The formula is the goldens' own (see ``golden/mmdet-more/README.md``): for the k-th counted key
``u = Generator(PCG64(SEED + k)).random(numel) * 2 - 1`` (float64), ``value = float32(a * u + b)``;
``num_batches_tracked`` rows (a == '-') are int64 0 and not counted.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np


def read_index(folder: Path) -> tuple[dict, str]:
    """(name -> (shape, path)) of the tensors listed in ``index.txt`` and its weights line."""
    lines = (folder / "index.txt").read_text().splitlines()
    out = {}
    for line in lines[2:]:
        parts = line.split()
        if len(parts) > 2 and parts[1] == "shape":
            if "file" in parts:
                i = parts.index("file")
                shape = tuple(int(v) for v in parts[2:i])
                rel = parts[i + 1]
                root = folder.parents[1]  # golden/mmdet-more/NAME -> the shared folder's golden/
                path = root.parent / rel
            else:
                shape = tuple(int(v) for v in parts[2:])
                path = folder / f"{parts[0]}.f32"
            out[parts[0]] = (shape, path)
    return out, lines[1]


def formula_state_dict(keys_tsv: Path, seed: int) -> dict:
    import torch

    sd = {}
    k = 0
    for row in keys_tsv.read_text().splitlines():
        if not row.strip():
            continue
        key, shape_s, a, b = row.split("\t")
        shape = tuple(int(v) for v in shape_s.split("x")) if shape_s else ()
        if a == "-":
            sd[key] = torch.zeros(shape, dtype=torch.int64)
            continue
        n = int(np.prod(shape)) if shape else 1
        u = np.random.Generator(np.random.PCG64(seed + k)).random(n) * 2 - 1
        sd[key] = torch.from_numpy((float(a) * u + float(b)).astype(np.float32).reshape(shape))
        k += 1
    return sd


def seed_of(folder: Path) -> int:
    m = re.search(r"seed (\d+)", (folder / "index.txt").read_text().splitlines()[1])
    assert m, f"{folder}/index.txt: no 'seed N' on line 2"
    return int(m.group(1))


def write_checkpoint(folder: Path, out: Path) -> Path:
    """An MMDetection-style checkpoint of the formula weights of ``folder``."""
    import torch

    sd = formula_state_dict(folder / "keys.tsv", seed_of(folder))
    torch.save({"meta": {"mmdet_version": "3.3.0"}, "state_dict": sd}, out)
    return out
