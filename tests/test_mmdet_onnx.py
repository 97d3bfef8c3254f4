"""ONNX export of the MMDetection models: onnxruntime output equals PyTorch's forward within 1e-4."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_close, asset, contract_input, read_f32

from test_mmdet_parity import MODELS
from zooport.export.onnx import export_onnx  # no fallback: a broken exporter must fail these tests


def _export(model, path, size):
    return export_onnx(model, path, imgsz=size, opset=17)


@pytest.mark.parametrize("name", MODELS)
def test_onnx_matches_pytorch(name, tmp_path):
    import onnxruntime as ort

    from zooport.converters.mmdet.load import load_mmdet

    folder = asset(f"golden/mmdet/{name}")
    model = load_mmdet(folder / f"{name}.pth", folder / "config.json")
    # the bus photo subsampled to 128x128 keeps the export small and quick
    x = contract_input(model, torch.from_numpy(read_f32(asset("golden/mmdet/input_bus_256.f32"),
                                                       (1, 3, 256, 256))[:, :, ::2, ::2].copy()))
    with torch.no_grad():
        ref = model(x)
    path = _export(model, tmp_path / f"{name}.onnx", 128)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    assert out.shape == tuple(ref.shape)
    assert_close(out, ref, what=f"{name} onnx")
    # the exported decoded output is the same unfused model's: also check the box columns tightly
    assert np.abs(out[..., :4] - ref[..., :4].numpy()).max() <= 1e-4 * max(1.0, float(ref[..., :4].abs().max()))


def test_onnx_dynamic_shapes(tmp_path):
    """A dynamic export computes priors and the clip bounds from the actual input size."""
    import onnxruntime as ort

    from zooport.converters.mmdet.load import load_mmdet

    folder = asset("golden/mmdet/atss_r18s_fpn")
    model = load_mmdet(folder / "atss_r18s_fpn.pth", folder / "config.json")
    path = export_onnx(model, tmp_path / "atss_dyn.onnx", imgsz=128, dynamic=True, opset=17)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = contract_input(model, torch.from_numpy(read_f32(asset("golden/mmdet/input_bus_256.f32"),
                                                       (1, 3, 256, 256))[:, :, :128, :256].copy()))
    x = torch.cat([x, x.flip(-1)])
    with torch.no_grad():
        ref = model(x)
    (out,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    assert_close(out, ref, what="atss dynamic onnx (2, 3, 128, 256)")
pytestmark = pytest.mark.slow  # exports and onnxruntime runs of whole models
