"""Older YOLOv5 releases: generated checkpoints with each release's pickle structure
(class paths, Focus/BottleneckCSP/SPP/LeakyReLU of v1-v3, Hardswish of v3.1, C3 + SiLU of v4,
P6 of v5, 6x6 stem + SPPF of v6/v7, fp16 storages, v1.0's separate head convs and 'md'),
loaded by zooport and compared with the reference re-computation of yolov5_fakes."""
from __future__ import annotations

import pytest
import torch

from yolov5_fakes import RELEASES, build_release, globals_of, reference_raw, save_foreign


@pytest.mark.slow
@pytest.mark.parametrize("release", sorted(RELEASES))
def test_release_checkpoint_matches_reference(release, tmp_path):
    from zooport.converters.yolov5.load import load_yolov5

    ckpt, yaml = build_release(release, seed=7)
    p = tmp_path / f"yolov5_{release}.pt"
    save_foreign(ckpt, p)
    model = load_yolov5(p)
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    ref = reference_raw(ckpt, x)
    with torch.no_grad():
        ours = model.raw(x)
    assert len(ours) == len(ref)
    for o, r in zip(ours, ref):
        assert o.shape == r.shape
        err = (o - r).abs().max().item()
        assert err <= 1e-4 * max(1.0, r.abs().max().item()), (release, err)
    r = RELEASES[release]
    arch = model.native_arch()
    # attributes read from the pickled modules, not from the release tag
    assert arch["bn_eps"] == pytest.approx(r["eps"])
    assert arch["act"]["type"] == type(r["act"]()).__name__
    if arch["act"]["type"] == "LeakyReLU":
        assert arch["act"]["negative_slope"] == pytest.approx(0.1)
    # metadata
    assert model.names == ["cat", "dog", "bird"]
    strides = [8, 16, 32] if r["p6"] else [8, 16]
    if r["v1_head"]:
        strides = strides[::-1]
    assert model.stride == strides
    assert model.input_size == ([1280, 1280] if max(strides) >= 64 else [640, 640])
    anchors = [[[10, 13], [16, 30], [33, 23]], [[30, 61], [62, 45], [59, 119]],
               [[116, 90], [156, 198], [373, 326]]][:len(strides)]
    assert model.anchors == (anchors[::-1] if r["v1_head"] else anchors)
    # decode: YOLOv5's formula, computed here from the raw output
    with torch.no_grad():
        dec = model(x)
    o0 = ours[0]
    b, _, h, w = o0.shape
    y = o0.view(b, 3, 8, h, w).permute(0, 1, 3, 4, 2).sigmoid()
    gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    s = strides[0]
    cx = (y[..., 0] * 2 - 0.5 + gx) * s
    aw = torch.tensor([a[0] for a in model.anchors[0]]).view(1, 3, 1, 1)
    bw = (y[..., 2] * 2) ** 2 * aw
    n0 = 3 * h * w
    assert torch.allclose(dec[0, :n0, 0], cx.reshape(-1), atol=1e-3)
    assert torch.allclose(dec[0, :n0, 2], bw.reshape(-1), atol=1e-3)
    assert torch.allclose(dec[0, :n0, 4:], y[..., 4:].reshape(-1, 4), atol=1e-6)


@pytest.mark.parametrize("release", ["v1.0", "v3.1"])
def test_legacy_non_zip_checkpoint(release, tmp_path):
    """Releases saved with torch < 1.6 use the legacy (non-zip) torch.save format."""
    from yolov5_fakes import FOREIGN_PICKLE

    from zooport.converters.yolov5.load import load_yolov5

    ckpt, _ = build_release(release, seed=11)
    p = tmp_path / "legacy.pt"
    torch.save(ckpt, p, pickle_module=FOREIGN_PICKLE, pickle_protocol=2, _use_new_zipfile_serialization=False)
    assert not p.read_bytes().startswith(b"PK")
    model = load_yolov5(p)
    x = torch.rand(1, 3, 64, 64)
    ref = reference_raw(ckpt, x)
    with torch.no_grad():
        assert all((o - r).abs().max().item() <= 1e-4 for o, r in zip(model.raw(x), ref))


@pytest.mark.slow
def test_training_checkpoint_prefers_ema(tmp_path):
    from zooport.converters.yolov5.load import load_yolov5

    ckpt, _ = build_release("v5.0-p6", seed=3)
    ema, _ = build_release("v5.0-p6", seed=4)  # different weights
    ckpt["ema"] = ema["model"]
    ckpt["updates"] = 1000
    p = tmp_path / "train.pt"
    save_foreign(ckpt, p)
    model = load_yolov5(p)
    assert model.source["weights"] == "ema" and "EMA" in model.source["note"]
    x = torch.rand(1, 3, 64, 64)
    ref_ema = reference_raw(ema, x)
    with torch.no_grad():
        ours = model.raw(x)
    assert all(torch.allclose(o, r, atol=1e-4) for o, r in zip(ours, ref_ema))


@pytest.mark.slow
def test_per_module_attribute_override(tmp_path):
    """One block with another BN eps and activation than the rest: read from the pickle per module."""
    from torch import nn

    from zooport.converters.yolov5.load import load_yolov5
    from zooport.converters.native import load_native, save_native

    ckpt, _ = build_release("v4.0", seed=5)
    layer = ckpt["model"].model[1]
    layer.bn.eps = 0.01
    layer.act = nn.LeakyReLU(0.2)
    p = tmp_path / "odd.pt"
    save_foreign(ckpt, p)
    model = load_yolov5(p)
    ov = model.native_arch()["overrides"]
    assert ov["model.1.bn"] == {"eps": 0.01}
    assert ov["model.1.act"] == {"act_module": {"type": "LeakyReLU", "negative_slope": 0.2}}
    x = torch.rand(1, 3, 64, 64)
    ref = reference_raw(ckpt, x)
    with torch.no_grad():
        ours = model.raw(x)
    assert all(torch.allclose(o, r, atol=1e-4) for o, r in zip(ours, ref))
    # the override survives a native round trip
    save_native(model, tmp_path / "odd_native.pt")
    again = load_native(tmp_path / "odd_native.pt")
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(again.raw(x), ours))


def test_checkpoint_saved_fused(tmp_path):
    """YOLOv5's fuse() deletes each Conv's bn and gives its conv a bias; such files load too."""
    from torch import nn

    from zooport.converters.yolov5.load import load_yolov5

    ckpt, _ = build_release("v6.0", seed=9)
    ref_x = torch.rand(1, 3, 64, 64)
    ref = reference_raw(ckpt, ref_x)
    from yolov5_fakes import Conv

    for m in ckpt["model"].modules():
        if isinstance(m, Conv):
            c, bn = m.conv.float(), m.bn.float()
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, bias=True)
            with torch.no_grad():
                fused.weight.copy_(c.weight * scale.view(-1, 1, 1, 1))
                fused.bias.copy_(bn.bias - bn.running_mean * scale)
            m.conv = fused.half()
            del m.bn
    p = tmp_path / "fused.pt"
    save_foreign(ckpt, p)
    model = load_yolov5(p)
    assert model.native_arch()["fused"] is True
    with torch.no_grad():
        out = model.raw(ref_x)
    # the folded weights were rounded to fp16 once more: compare at fp16 precision
    errs = [(o - r).abs().max().item() for o, r in zip(out, ref)]
    assert max(errs) <= 5e-3, errs


def test_fake_checkpoints_have_yolov5_pickle_structure(tmp_path):
    expect = {
        "v1.0": {"models.common.Focus", "models.common.BottleneckCSP", "models.common.SPP",
                 "torch.nn.modules.activation.LeakyReLU", "torch.nn.modules.conv.Conv2d", "models.yolo.Model",
                 "torch.HalfStorage"},
        "v3.1": {"models.common.Focus", "torch.nn.modules.activation.Hardswish"},
        "v4.0": {"models.common.C3", "torch.nn.modules.activation.SiLU", "models.common.SPP"},
        "v7.0": {"models.common.SPPF", "models.yolo.DetectionModel", "models.yolo.Detect"},
    }
    import sys

    for rel, want in expect.items():
        ckpt, _ = build_release(rel)
        p = tmp_path / f"{rel}.pt"
        save_foreign(ckpt, p)
        got = globals_of(p)
        assert want <= got, (rel, want - got)
        assert "torch.HalfStorage" in got  # weights stored as fp16
    assert "models" not in sys.modules
