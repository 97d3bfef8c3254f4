"""Round trips (native -> YOLOv5 state dict -> native, native save/load) and ONNX parity for the
blocks, segmentation and classification checkpoints of golden/yolov5-more."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import asset, read_f32

MORE = "golden/yolov5-more"
CASES = {  # name -> (checkpoint, input file, input size)
    "blocks": ("blocks/blocks.pt", "golden/real/yolov5n_bus/input_640.f32", 640),
    "seg": ("yolov5n-seg/yolov5n-seg.pt", f"{MORE}/yolov5n-seg/input_bus_320.f32", 320),
    "cls": ("yolov5n-cls/yolov5n-cls.pt", f"{MORE}/yolov5n-cls/input_224.f32", 224),
}


def _load(name):
    import zooport

    return zooport.load_yolov5(asset(f"{MORE}/{CASES[name][0]}"))


def _input(name):
    s = CASES[name][2]
    return torch.from_numpy(read_f32(asset(CASES[name][1]), (1, 3, s, s)).copy())


def _outs(model, x):
    with torch.no_grad():
        out = model(x)
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trips_exact(name, tmp_path):
    from zooport.converters.native import load_native, save_native
    from zooport.converters.yolov5.load import from_yolov5_state_dict, to_yolov5_state_dict
    from zooport.model_defs.yolov5.create import build_uninitialised

    m = _load(name)
    sd = to_yolov5_state_dict(m)
    assert all(k.startswith("model.") for k in sd)
    m2 = build_uninitialised(m.native_arch(), m.meta, type(m))
    m2.load_state_dict(from_yolov5_state_dict(m2, sd, "rt"), strict=True, assign=True)
    m2.refresh_meta()
    m2.eval()
    own = m.state_dict()
    assert set(own) == set(m2.state_dict())
    assert all(torch.equal(own[k], v) for k, v in m2.state_dict().items())
    x = _input(name)
    for fmt in ("pt", "safetensors"):
        p = save_native(m, tmp_path / f"{name}.{fmt}")
        m3 = load_native(p)
        assert type(m3) is type(m) and m3.family == m.family and m3.meta == m.meta
        for a, b in zip(_outs(m, x), _outs(m3, x)):
            assert np.array_equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_onnx_matches_pytorch(name, tmp_path):
    import onnx

    from zooport.export.checks import ort_session, run_ort
    from zooport.export.onnx import export_onnx

    m = _load(name)
    s = CASES[name][2]
    p = export_onnx(m, tmp_path / f"{name}.onnx", imgsz=s)
    names = [o.name for o in onnx.load(str(p)).graph.output]
    x = _input(name)
    refs = _outs(m, x)
    got = run_ort(ort_session(p, threads=1), x.numpy())
    expect = {"blocks": ["output"], "seg": ["output0", "output1"], "cls": ["logits"]}[name]
    assert names == expect
    for n, r in zip(names, refs):
        err = float(np.abs(got[n].astype(np.float64) - r).max())
        assert got[n].shape == r.shape and err <= 1e-4 * max(1.0, float(np.abs(r).max())), (n, err)
    if name == "cls":  # optional softmax output
        m.output_softmax = True
        p2 = export_onnx(m, tmp_path / "cls_prob.onnx", imgsz=s)
        got2 = run_ort(ort_session(p2, threads=1), x.numpy())
        assert list(got2) == ["probs"]
        ref = torch.from_numpy(refs[0]).softmax(1).numpy()
        assert np.abs(got2["probs"] - ref).max() <= 1e-6 and abs(got2["probs"].sum() - 1) < 1e-4
