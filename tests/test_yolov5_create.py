"""Bundled YOLOv5 architectures (create_yolov5) and ONNX traceability of the decode."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import asset


@pytest.fixture(scope="module")
def yolov5n():
    import zooport

    return zooport.load_yolov5(asset("zoo/yolov5/yolov5n.pt"))


@pytest.mark.slow
def test_create_yolov5s_parameter_count():
    import zooport

    m = zooport.create_yolov5("yolov5s", num_classes=80)
    assert sum(p.numel() for p in m.parameters()) == 7235389  # YOLOv5 v7.0 yolov5s summary (nc=80)
    assert m.stride == [8, 16, 32] and m.input_size == [640, 640] and len(m.names) == 80


@pytest.mark.parametrize("name,params", [
    ("yolov5n", 1872157),   # equals the released yolov5n.pt (test_metadata in test_yolov5_real)
    ("yolov5m", 21190557),  # YOLOv5 v7.0 model summary
    ("yolov5l", 46563709),  # YOLOv5 v7.0 model summary
    ("yolov5x", 86749405),  # YOLOv5 v7.0 model summary
])
def test_bundled_architecture_parameter_counts(name, params):
    """Counted on the meta device (no memory, no init): the architecture alone fixes the count."""
    from zooport.model_defs.yolov5.create import build_uninitialised, compute_stride, load_cfg

    d = load_cfg(name)
    base = {"act": {"type": "SiLU"}, "bn_eps": 1e-3, "bn_momentum": 0.03}
    m = build_uninitialised(dict(base, yaml=d, stride=compute_stride(d, base)))
    assert sum(p.numel() for p in m.parameters()) == params


def test_create_variants_and_architecture_matches_release(yolov5n):
    import zooport

    n6 = zooport.create_yolov5("yolov5n6", num_classes=3)
    assert n6.stride == [8, 16, 32, 64] and n6.input_size == [1280, 1280]
    with torch.no_grad():
        assert n6(torch.zeros(1, 3, 128, 128)).shape == (1, 3 * (256 + 64 + 16 + 4), 8)
    p2 = zooport.create_yolov5("yolov5n-p2", num_classes=1)
    assert p2.stride == [4, 8, 16, 32]
    p7 = zooport.create_yolov5("yolov5n-p7", num_classes=1)
    assert p7.stride == [8, 16, 32, 64, 128]
    # the bundled P5 yaml at n size is exactly the released yolov5n architecture
    n = zooport.create_yolov5("yolov5n", num_classes=80)
    assert {k: v.shape for k, v in n.state_dict().items()} == {k: v.shape for k, v in yolov5n.state_dict().items()}


@pytest.mark.slow
def test_onnx_trace_dynamic_hw(tmp_path):
    """The decode traces with dynamic H/W: one export, two input sizes, same as eager."""
    import onnxruntime as ort

    import zooport

    m = zooport.create_yolov5("yolov5n", num_classes=2).eval()
    p = tmp_path / "m.onnx"
    x = torch.rand(1, 3, 64, 64)
    torch.onnx.export(m, x, str(p), dynamo=False, opset_version=17, input_names=["images"], output_names=["out"],
                      dynamic_axes={"images": {0: "b", 2: "h", 3: "w"}, "out": {0: "b", 1: "n"}})
    sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    for h, w in ((64, 64), (96, 160)):
        xi = torch.rand(1, 3, h, w)
        with torch.no_grad():
            ref = m(xi).numpy()
        got = sess.run(None, {"images": xi.numpy()})[0]
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1e-3 * max(1.0, np.abs(ref).max())


_ALL_BLOCKS_YAML = """
nc: 2
depth_multiple: 1.0
width_multiple: 1.0
activation: nn.LeakyReLU(0.1)
anchors:
  - [10,13, 16,30, 33,23]
  - [30,61, 62,45, 59,119]
backbone:
  [[-1, 1, Focus, [16, 3]],            # 0 /2
   [-1, 1, GhostConv, [32, 3, 2]],     # 1 /4
   [-1, 2, C3Ghost, [32]],             # 2
   [-1, 1, DWConv, [32, 3, 1]],        # 3
   [-1, 1, Conv, [32, 3, 2]],          # 4 /8
   [-1, 2, C3x, [32]],                 # 5
   [-1, 1, nn.ZeroPad2d, [1]],         # 6
   [-1, 1, nn.MaxPool2d, [3, 1, 0]],   # 7
   [-1, 1, Conv, [64, 3, 2]],          # 8 /16
   [-1, 1, C3TR, [64]],                # 9
   [-1, 1, C3SPP, [64, [3, 5]]],       # 10
   [-1, 1, SPP, [64, [5, 9, 13]]],     # 11
  ]
head:
  [[-1, 1, BottleneckCSP, [64, False]], # 12
   [-1, 1, Contract, [2]],              # 13 /32, 256 ch
   [-1, 1, Expand, [2]],                # 14 /16, 64 ch
   [-1, 1, GhostBottleneck, [64, 3, 1]],# 15
   [-1, 1, nn.Upsample, [None, 2, 'nearest']],
   [[-1, 5], 1, Concat, [1]],           # 17 /8
   [-1, 1, C3, [32, False]],            # 18
   [[18, 15], 1, Detect, [nc, anchors]],
  ]
"""


@pytest.mark.slow
def test_every_block_builds_from_yaml_with_activation(tmp_path):
    from torch import nn

    import zooport

    p = tmp_path / "all.yaml"
    p.write_text(_ALL_BLOCKS_YAML)
    m = zooport.create_yolov5(str(p), num_classes=2).eval()
    assert m.stride == [8, 16]
    acts = [mod.act for mod in m.modules() if type(mod).__name__ == "Conv" and not isinstance(mod.act, nn.Identity)]
    assert acts and all(isinstance(a, nn.LeakyReLU) and a.negative_slope == 0.1 for a in acts)
    keys = set(m.state_dict())
    assert "model.9.m.tr.0.ma.in_proj_weight" in keys and "model.9.m.linear.weight" in keys
    assert "model.5.m.0.cv1.conv.weight" in keys and m.state_dict()["model.5.m.0.cv1.conv.weight"].shape == (16, 16, 1, 3)
    assert "model.2.m.1.conv.2.cv2.conv.weight" in keys
    with torch.no_grad():
        for h, w in ((64, 64), (64, 96)):
            out = m(torch.rand(1, 3, h, w))
            assert out.shape == (1, 3 * (h // 8 * w // 8 + h // 16 * w // 16), 7)
            assert torch.isfinite(out).all()


def test_block_properties():
    from zooport.model_defs.yolov5 import blocks as B

    opt = B.BuildOptions()
    x = torch.rand(2, 8, 12, 16)
    assert torch.equal(B.Expand(2)(B.Contract(2)(x)), x)
    assert B.Contract(2)(x).shape == (2, 32, 6, 8)
    # SPPF(5) == SPP(5, 9, 13) with the same convs
    spp, sppf = B.SPP(8, 8, (5, 9, 13), opt=opt).eval(), B.SPPF(8, 8, 5, opt=opt).eval()
    sppf.load_state_dict(spp.state_dict())
    with torch.no_grad():
        assert torch.allclose(spp(x), sppf(x), atol=1e-6)
    g = B.GhostConv(8, 16, 1, opt=opt)
    assert sum(p.numel() for p in g.parameters()) == (8 * 8 + 16) + (8 * 25 + 16)
    # Focus: output pixel (i, j) sees input pixels (2i..2i+1, 2j..2j+1) in YOLOv5's channel order
    f = B.Focus(1, 8, 1, opt=opt)
    xi = torch.arange(16.0).view(1, 1, 4, 4)
    cat = torch.cat((xi[..., ::2, ::2], xi[..., 1::2, ::2], xi[..., ::2, 1::2], xi[..., 1::2, 1::2]), 1)
    assert cat[0, :, 0, 0].tolist() == [0.0, 4.0, 1.0, 5.0]
    assert f.conv.conv.in_channels == 4


def test_architecture_strings_are_never_evaluated(tmp_path):
    import zooport
    from zooport.errors import ConfigError

    bad = _ALL_BLOCKS_YAML.replace("[16, 3]", "[\"__import__('os').system('touch x')\", 3]")
    p = tmp_path / "bad.yaml"
    p.write_text(bad)
    with pytest.raises(ConfigError, match="unsupported string argument"):
        zooport.create_yolov5(str(p))
    p.write_text(_ALL_BLOCKS_YAML.replace("nn.LeakyReLU(0.1)", "os.system('x')"))
    with pytest.raises(ConfigError, match="activation"):
        zooport.create_yolov5(str(p))
    p.write_text(_ALL_BLOCKS_YAML.replace("C3TR", "EvilBlock"))
    with pytest.raises(ConfigError, match="unknown module 'EvilBlock'"):
        zooport.create_yolov5(str(p))
