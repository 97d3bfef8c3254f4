"""Ultralytics 8.4 classification checkpoints (YOLO26-cls, YOLO11-cls, YOLOv8-cls; tests/golden/ultralytics, made by
scripts/make_golden_ultralytics.py with the ultralytics package): logits, softmax and top-5 as Ultralytics'
predictor gives them, native save/load and the Ultralytics state-dict round trip (strict)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import assert_close

GOLDEN = Path(__file__).resolve().parent / "golden" / "ultralytics"
MODELS = ["yolo26n-cls", "yolo11n-cls", "yolov8n-cls"]
_CACHE: dict = {}


def _model(name):
    if name not in _CACHE:
        from zooport.converters.ultralytics.load import load_ultralytics

        _CACHE[name] = load_ultralytics(GOLDEN / name / f"{name}.pt")
    return _CACHE[name]


def _golden(name, img):
    d = dict(np.load(GOLDEN / name / f"{img}.npz"))
    assert bool(d["input_exact"])
    u8 = np.load(GOLDEN / "inputs" / str(d["input_file"]))
    return d, torch.from_numpy(u8).permute(2, 0, 1).float().div(255)[None].contiguous()


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("img", ["bus", "zidane"])
def test_logits_probs_and_top5_match_ultralytics(name, img):
    from zooport.postprocess import classify_topk

    m = _model(name)
    info = json.loads((GOLDEN / name / "info.json").read_text())
    assert type(m).__name__ == "UltralyticsClsModel" and m.names == info["names"]
    assert sum(p.numel() for p in m.parameters()) == info["params"]
    d, x = _golden(name, img)
    with torch.no_grad():
        logits, probs = m.raw(x), m(x)
        grey = m.raw(torch.full_like(x, 114 / 255))
    assert_close(logits, d["raw"], 1e-4, f"{name} {img} logits")
    assert_close(probs, d["decoded"], 1e-4, f"{name} {img} probs")
    idx, conf = classify_topk(probs[0])
    assert idx.tolist() == d["nms.top5"].tolist()
    assert np.abs(conf.numpy() - d["nms.top5conf"]).max() < 1e-4
    assert float((logits - grey).abs().max()) > 100 * 1e-4 * max(1.0, float(logits.abs().max()))


@pytest.mark.parametrize("name", MODELS[:1])
def test_native_and_ultralytics_state_dict_round_trip(name, tmp_path):
    from zooport.converters.native import load_native, save_native
    from zooport.converters.ultralytics.load import from_ultralytics_state_dict, to_ultralytics_state_dict
    from zooport.errors import CheckpointError

    m = _model(name)
    _, x = _golden(name, "bus")
    p = save_native(m, tmp_path / "cls.pt")
    back = load_native(p)
    assert type(back).__name__ == "UltralyticsClsModel" and back.names == m.names
    with torch.no_grad():
        assert torch.equal(back(x), m(x))
    sd = to_ultralytics_state_dict(m)
    native = from_ultralytics_state_dict(m, sd)
    assert all(torch.equal(native[k], v) for k, v in m.state_dict().items())
    sd.pop(next(iter(sd)))
    with pytest.raises(CheckpointError, match="missing"):
        from_ultralytics_state_dict(m, sd)
