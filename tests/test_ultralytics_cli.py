"""``zooport convert ultralytics CKPT --to pt|safetensors|ultralytics`` on an Ultralytics-shaped checkpoint."""
from __future__ import annotations

import pytest
import torch

from ultralytics_fakes import checkpoint, save_ultralytics, tiny_model, ultralytics_shaped


@pytest.fixture
def ckpt(tmp_path):
    ref = tiny_model()
    p = tmp_path / "tiny.pt"
    save_ultralytics(checkpoint(ultralytics_shaped(ref)), p)
    return p, ref


@pytest.mark.parametrize("to", ["pt", "safetensors"])
def test_convert_to_native_and_back(to, ckpt, tmp_path, capsys):
    import zooport
    from zooport.cli.main import main

    src, ref = ckpt
    out = tmp_path / f"native.{to}"
    assert main(["convert", "ultralytics", str(src), "--to", to, "-o", str(out)]) == 0
    assert "v11 head, 3 classes" in capsys.readouterr().out
    m = zooport.load(str(out))
    assert type(m).__name__ == "UltralyticsModel" and m.names == ["a", "b", "c"]
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(m(x), ref(x))


def test_convert_to_ultralytics_state_dict(ckpt, tmp_path):
    from zooport.cli.main import main
    from zooport.parsers.ultralytics.ckpt import parse_ultralytics_checkpoint

    src, _ = ckpt
    out = tmp_path / "sd.pt"
    assert main(["convert", "ultralytics", str(src), "--to", "ultralytics", "-o", str(out)]) == 0
    sd = torch.load(out, weights_only=True)
    pickled = parse_ultralytics_checkpoint(src).state_dict
    assert list(sd) == list(pickled) and all(torch.equal(sd[k], pickled[k]) for k in sd)


def test_convert_errors(ckpt, tmp_path, capsys):
    from zooport.cli.main import main

    src, _ = ckpt
    assert main(["convert", "ultralytics", str(tmp_path / "none.pt")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["convert", "ultralytics", str(src), "-o", str(src)]) == 2
    assert "overwrite the input" in capsys.readouterr().err


def test_onnx_dynamic_decode_and_raw(tmp_path):
    """Anchors and strides come from the feature-map shapes in the graph: any H, W and batch."""
    import numpy as np
    import onnxruntime as ort

    from zooport.export.onnx import export_onnx

    m = tiny_model()
    sess = ort.InferenceSession(str(export_onnx(m, tmp_path / "dyn.onnx", dynamic=True)),
                                providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 64, 96), (2, 3, 128, 64)]:
        x = torch.rand(*shape)
        out = sess.run(None, {"images": x.numpy()})[0]
        with torch.no_grad():
            ref = m(x).numpy()
        assert out.shape == ref.shape and np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    raw = ort.InferenceSession(str(export_onnx(m, tmp_path / "raw.onnx", raw=True, imgsz=[64, 96])),
                               providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        ref = m.raw(x)
    for o, r in zip(raw.run(None, {"images": x.numpy()}), ref):
        assert o.shape == tuple(r.shape) and np.abs(o - r.numpy()).max() < 1e-4
