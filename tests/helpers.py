"""Helpers shared by the tests: locating ../shared assets and comparing tensors.

Assets are found through ``ZOOPORT_ASSETS``. Without it, asset tests skip (a
user's fresh clone still passes); with it set, a missing file FAILS the test.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest


def assets_root() -> Path | None:
    v = os.environ.get("ZOOPORT_ASSETS")
    return Path(v).resolve() if v else None


def asset(rel: str) -> Path:
    """Path of ``rel`` under ZOOPORT_ASSETS: skip when the variable is unset, fail when the file is missing."""
    root = assets_root()
    if root is None:
        pytest.skip("ZOOPORT_ASSETS is not set: real-asset test skipped")
    p = root / rel
    if not p.exists():
        pytest.fail(f"ZOOPORT_ASSETS is set but {p} is missing")
    return p


def read_f32(path: Path, shape) -> np.ndarray:
    """Raw little-endian float32, C order, no header (the goldens' format)."""
    a = np.fromfile(path, dtype="<f4")
    n = int(np.prod(shape))
    assert a.size == n, f"{path}: {a.size} floats, index says shape {tuple(shape)} = {n}"
    return a.reshape(shape)


def assert_close(ours, ref, rel: float = 1e-4, what: str = "") -> float:
    """max |ours - ref| <= rel * max(1, max |ref|); returns the max abs error."""
    ours = np.asarray(ours.detach().cpu().numpy() if hasattr(ours, "detach") else ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != reference {ref.shape}"
    err = float(np.max(np.abs(ours - ref))) if ref.size else 0.0
    tol = rel * max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
    assert err <= tol, f"{what}: max abs error {err:.3g} > tolerance {tol:.3g}"
    return err


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def formula_state_dict(keys_tsv: Path, seed: int) -> dict:
    """The weights of a ``golden/mmdet-more`` folder, regenerated from its ``keys.tsv`` (see that README):
    row k (``*.num_batches_tracked`` rows, ``a == '-'``, are int64 0 and not counted) is
    ``a * u + b`` with u = PCG64(seed + k) uniform in [-1, 1) (float64), cast to float32."""
    import torch

    sd, k = {}, 0
    for line in keys_tsv.read_text().splitlines():
        if not line.strip():
            continue
        key, shape, a, b = line.split("\t")
        dims = tuple(int(v) for v in shape.split("x")) if shape else ()
        if a == "-":
            sd[key] = torch.zeros(dims, dtype=torch.int64)
            continue
        u = np.random.Generator(np.random.PCG64(seed + k)).random(int(np.prod(dims))) * 2 - 1
        sd[key] = torch.from_numpy((float(a) * u + float(b)).astype(np.float32).reshape(dims))
        k += 1
    return sd


def formula_checkpoint(folder: Path, out_dir: Path) -> Path:
    """Write an MMDetection-style checkpoint (``{"meta", "state_dict"}``) of a formula-weights golden
    folder (seed from line 2 of its ``index.txt``) into ``out_dir``; returns its path."""
    import torch

    line2 = (folder / "index.txt").read_text().splitlines()[1].split()
    seed = int(line2[line2.index("seed") + 1])
    path = out_dir / f"{folder.name}.pth"
    torch.save({"meta": {"mmdet_version": "3.3.0"}, "state_dict": formula_state_dict(folder / "keys.tsv", seed)}, path)
    return path


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


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op thread count set to ``n`` for the block, then restored."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def contract_input(model, x):
    """The RGB [0, 1] input (zooport's contract) that ``model``'s own normalisation (its ``input_norm``)
    turns into exactly ``x``: the tensor a reference implementation fed its network directly (the
    MMDetection goldens store that tensor, taken by ``_forward`` without a data preprocessor).
    Asserts the round trip is bit-exact, so a parity test still compares the same network input."""
    import torch

    n = model.input_norm
    y = x * n.std + n.mean
    if n.bgr:
        y = y[:, [2, 1, 0]]
    y = y / n.scale
    assert torch.equal(n(y), x), "the golden input is not reachable exactly through the model's normalisation"
    return y
