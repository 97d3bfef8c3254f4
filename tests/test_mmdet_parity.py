"""MMDetection parity: raw outputs and predict() of five detectors against MMDetection 3.3.0 goldens."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_close, asset, contract_input, read_f32

MODELS = ["retinanet_r18s_fpn", "fcos_r18s_fpn", "atss_r18s_fpn", "gfl_r18s_fpn", "yolox_nano_s"]


def _index(folder):
    shapes = {}
    for line in (folder / "index.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[1] == "shape":
            shapes[parts[0]] = tuple(int(v) for v in parts[2:])
    return shapes


def _load(name):
    from zooport.converters.mmdet.load import load_mmdet

    folder = asset(f"golden/mmdet/{name}")
    model = load_mmdet(folder / f"{name}.pth", folder / "config.json")
    x = contract_input(model, torch.from_numpy(read_f32(asset("golden/mmdet/input_bus_256.f32"), (1, 3, 256, 256)).copy()))
    return folder, model, x


def match_dets(ours: np.ndarray, ref: np.ndarray, box_tol=0.01, score_tol=1e-4) -> list:
    """One-to-one matching of reference rows to ours (same label, box and score within tolerance);
    order among exactly tied scores is free. Returns the unmatched reference rows."""
    used = np.zeros(len(ours), bool)
    missing = []
    for r in ref:
        ok = (~used) & (ours[:, 5] == r[5]) & (np.abs(ours[:, 4] - r[4]) <= score_tol) \
            & (np.abs(ours[:, :4] - r[:4]).max(1) <= box_tol)
        hit = np.nonzero(ok)[0]
        if hit.size == 0:
            missing.append(r)
        else:
            used[hit[0]] = True
    return missing


@pytest.mark.parametrize("name", MODELS)
def test_raw_matches_mmdetection(name):
    folder, model, x = _load(name)
    shapes = _index(folder)
    with torch.no_grad():
        groups = model.raw(x)
    n = 0
    for g, grp in enumerate(groups):
        for lvl, t in enumerate(grp):
            key = f"out{g}_{lvl}"
            assert key in shapes, f"{name}: we produce {key} but the golden index has no such output"
            assert_close(t, read_f32(folder / f"{key}.f32", shapes[key]), what=f"{name} {key}")
            n += 1
    assert n == len(shapes), f"{name}: {n} outputs, golden has {len(shapes)}"


@pytest.mark.parametrize("name", MODELS)
def test_predict_matches_mmdetection(name):
    folder, model, x = _load(name)
    ref = np.loadtxt(folder / "dets.txt", ndmin=2)
    dets = model.predict(x)
    assert len(dets) == 1
    ours = dets[0].numpy().astype(np.float64)
    assert ours.shape == ref.shape, f"{name}: {ours.shape[0]} detections, MMDetection {ref.shape[0]}"
    # MMDetection returns detections best first
    assert np.all(np.diff(ours[:, 4]) <= 0)
    missing = match_dets(ours, ref)
    assert not missing, f"{name}: {len(missing)} reference detections unmatched, first {missing[0]}"


@pytest.mark.parametrize("name", ["retinanet_r18s_fpn", "fcos_r18s_fpn", "gfl_r18s_fpn", "yolox_nano_s"])
def test_forward_decoded_contains_reference_dets(name):
    """forward(x): (B, N, 4+1+nc) xywh + score factor + probabilities; every one of MMDetection's top
    detections is a row of it (box within 0.01 px, factor * probability within 1e-4)."""
    folder, model, x = _load(name)
    with torch.no_grad():
        out = model(x)[0].double().numpy()
    nc = len(model.names)
    assert out.shape[1] == 5 + nc
    xyxy = np.concatenate([out[:, :2] - out[:, 2:4] / 2, out[:, :2] + out[:, 2:4] / 2], 1)
    for r in np.loadtxt(folder / "dets.txt", ndmin=2)[:10]:
        score = out[:, 4] * out[:, 5 + int(r[5])]
        ok = (np.abs(xyxy - r[:4]).max(1) <= 0.01) & (np.abs(score - r[4]) <= 1e-4)
        assert ok.any(), f"{name}: reference detection {r} is not among forward() rows"
