"""YOLOv5 v7.0 checkpoints beyond the official detection yamls, against YOLOv5's own outputs
(golden/yolov5-more): blocks.pt (DWConvTranspose2d, nn.ConvTranspose2d, MixConv2d, CrossConv, C3x, C3TR,
C3Ghost, GhostConv, SPP) and yolov5n-seg.pt (Segment + Proto, NMS with mask coefficients, masks)."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from helpers import assert_close, asset, read_f32

MORE = "golden/yolov5-more"


def _gz(rel, shape):
    return np.frombuffer(gzip.decompress(asset(f"{MORE}/{rel}").read_bytes()), "<f4").reshape(shape)


def _raw_ref(ref5d):
    """(1, na, H, W, no) golden layout -> our (1, na*no, H, W)."""
    b, na, h, w, no = ref5d.shape
    return ref5d.transpose(0, 1, 4, 2, 3).reshape(b, na * no, h, w)


def _dets_txt(rel):
    rows = [list(map(float, ln.split())) for ln in asset(f"{MORE}/{rel}").read_text().splitlines() if ln.strip()]
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


@pytest.fixture(scope="module")
def blocks():
    import zooport

    return zooport.load_yolov5(asset(f"{MORE}/blocks/blocks.pt"))


@pytest.fixture(scope="module")
def seg():
    import zooport

    return zooport.load_yolov5(asset(f"{MORE}/yolov5n-seg/yolov5n-seg.pt"))


def _bus640():
    return torch.from_numpy(read_f32(asset("golden/real/yolov5n_bus/input_640.f32"), (1, 3, 640, 640)).copy())


def _bus320():
    return torch.from_numpy(read_f32(asset(f"{MORE}/yolov5n-seg/input_bus_320.f32"), (1, 3, 320, 320)).copy())


def test_blocks_raw_decoded_and_nms_match_yolov5(blocks):
    from zooport.model_defs.yolov5 import conv_variants as X
    from zooport.postprocess import non_max_suppression

    kinds = {type(m).__name__ for m in blocks.model}
    assert {"DWConvTranspose2d", "ConvTranspose2d", "MixConv2d", "CrossConv", "GhostConv", "SPP"} <= kinds
    assert isinstance(blocks.model[18], X.MixConv2d) and blocks.model[18].bn.eps == pytest.approx(1e-3)
    assert sum(p.numel() for p in blocks.parameters()) == 1866004
    x = _bus640()
    with torch.no_grad():
        raw = blocks.raw(x)
        dec = blocks(x)
    for k, h in enumerate((80, 40, 20)):
        ref = read_f32(asset(f"{MORE}/blocks/raw{k}.f32"), (1, 3, h, h, 8))
        assert_close(raw[k], _raw_ref(ref), rel=1e-4, what=f"blocks raw{k}")
    assert_close(dec, read_f32(asset(f"{MORE}/blocks/decoded.f32"), (1, 25200, 8)), rel=1e-4, what="decoded")
    dets = non_max_suppression(dec, 0.25, 0.45)[0].numpy().astype(np.float64)
    ref = _dets_txt("blocks/dets.txt")
    assert dets.shape == ref.shape == (20, 6)
    assert np.array_equal(dets[:, 5], ref[:, 5])
    assert np.abs(dets[:, :5] - ref[:, :5]).max() <= 1e-3


def test_seg_raw_and_protos_match_yolov5(seg):
    assert type(seg).__name__ == "YOLOv5SegModel" and seg.family == "yolov5-seg" and seg.num_masks == 32
    assert seg.stride == [8, 16, 32] and len(seg.names) == 80
    assert sum(p.numel() for p in seg.parameters()) == 1991549
    with torch.no_grad():
        raw = seg.raw(_bus320())
    assert len(raw) == 4
    for k, h in enumerate((40, 20, 10)):
        assert_close(raw[k], _raw_ref(_gz(f"yolov5n-seg/raw{k}.f32.gz", (1, 3, h, h, 117))), rel=1e-4,
                     what=f"seg raw{k}")
    assert_close(raw[3], _gz("yolov5n-seg/proto.f32.gz", (1, 32, 80, 80)), rel=1e-4, what="proto")


def test_seg_decoded_nms_and_masks_match_yolov5(seg):
    from zooport.postprocess.yolov5_seg import non_max_suppression_seg, process_mask

    with torch.no_grad():
        pred, proto = seg(_bus320())
    assert pred.shape == (1, 6300, 117) and proto.shape == (1, 32, 80, 80)
    assert_close(pred[..., :85], _gz("yolov5n-seg/decoded.f32.gz", (1, 6300, 85)), rel=1e-4, what="decoded")
    # columns 85..116 are the raw mask coefficients, level by level
    with torch.no_grad():
        raw = seg.raw(_bus320())
    coeffs = torch.cat([r.view(1, 3, 117, r.shape[2], r.shape[3]).permute(0, 1, 3, 4, 2)[..., 85:].reshape(1, -1, 32)
                        for r in raw[:3]], 1)
    assert torch.equal(pred[..., 85:], coeffs)
    det = non_max_suppression_seg(pred, 0.01, 0.45, nm=32)[0]
    ref = _dets_txt("yolov5n-seg/dets.txt")
    full = _gz("yolov5n-seg/dets.f32.gz", (12, 38))
    assert det.shape == (12, 38)
    assert np.array_equal(det[:, 5].numpy(), ref[:, 5])
    assert np.abs(det[:, :5].numpy() - ref[:, :5]).max() <= 2e-3  # 4-decimal text; boxes in pixels
    # objectness-scaled mask coefficients (YOLOv5 v7.0 multiplies them too)
    assert_close(det[:, 6:], full[:, 6:], rel=1e-3, what="mask coefficients")
    for up, size, name in ((True, 320, "masks320.u8"), (False, 80, "masks80.u8")):
        ours = process_mask(proto[0], det[:, 6:], det[:, :4], (320, 320), upsample=up).numpy().astype(np.uint8)
        ref_m = np.fromfile(asset(f"{MORE}/yolov5n-seg/{name}"), np.uint8).reshape(12, size, size)
        agree = (ours == ref_m).reshape(12, -1).mean(1)
        assert agree.min() >= 0.999, (name, agree)
        assert ours.reshape(12, -1).sum(1).tolist()[:3] == ref_m.reshape(12, -1).sum(1).tolist()[:3]


def test_seg_nms_scales_mask_coefficients_by_objectness():
    """Independent of the goldens: one candidate, objectness 0.5 -> coefficients halved, class score 0.5*0.8."""
    from zooport.postprocess.yolov5_seg import non_max_suppression_seg

    p = torch.zeros(1, 2, 5 + 2 + 3)
    p[0, 0, :7] = torch.tensor([50.0, 50.0, 20.0, 10.0, 0.5, 0.8, 0.1])
    p[0, 0, 7:] = torch.tensor([2.0, -4.0, 1.0])
    p[0, 1, 4] = 0.001  # below conf
    d = non_max_suppression_seg(p, 0.25, 0.45, nm=3)[0]
    assert d.shape == (1, 9)
    assert d[0, :6].tolist() == pytest.approx([40.0, 45.0, 60.0, 55.0, 0.4, 0.0])
    assert d[0, 6:].tolist() == pytest.approx([1.0, -2.0, 0.5])


def test_create_seg_matches_checkpoint_structure():
    """create_yolov5('yolov5n-seg') has the v7.0 SegmentationModel's keys, shapes and parameter count (README:
    1,991,549) and YOLOv5's bias priors on the detection columns only."""
    import math

    import zooport
    from zooport.parsers.yolov5.ckpt import parse_yolov5_checkpoint

    m = zooport.create_yolov5("yolov5n-seg")
    assert type(m).__name__ == "YOLOv5SegModel" and m.stride == [8, 16, 32]
    assert sum(p.numel() for p in m.parameters()) == 1991549
    ck = parse_yolov5_checkpoint(asset(f"{MORE}/yolov5n-seg/yolov5n-seg.pt"))
    sd = m.state_dict()
    assert set(sd) == set(ck.state_dict)
    assert all(tuple(sd[k].shape) == tuple(v.shape) for k, v in ck.state_dict.items())
    seg = m.model[m.detect_index]
    m2 = torch.nn.Conv2d(seg.m[0].in_channels, seg.m[0].out_channels, 1)  # default init bound for the bias
    bound = float(m2.weight.shape[1]) ** -0.5
    b = seg.m[0].bias.detach().view(3, -1)
    assert (b[:, 4] - math.log(8 / (640 / 8) ** 2)).abs().max() <= bound
    assert (b[:, 5:85] - math.log(0.6 / (80 - 0.99999))).abs().max() <= bound
    assert b[:, 85:].abs().max() <= bound  # mask columns keep the default initialisation
    with torch.no_grad():
        pred, proto = m.eval()(torch.rand(1, 3, 128, 96))
    assert pred.shape == (1, 3 * (16 * 12 + 8 * 6 + 4 * 3), 117) and proto.shape == (1, 32, 32, 24)


def test_every_v7_module_builds_from_yaml(tmp_path):
    """Sum (weighted), nn.BatchNorm2d, MixConv2d (both channel strategies), both transposed convs from a yaml."""
    import yaml as _yaml

    import zooport

    d = {"nc": 2, "depth_multiple": 1.0, "width_multiple": 1.0, "anchors": [[10, 13, 16, 30]],
         "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "MixConv2d", [16, [1, 3], 1, False]],
                      [-1, 1, "nn.BatchNorm2d", []], [-1, 1, "DWConvTranspose2d", [16, 2, 2]],
                      [-1, 1, "Conv", [16, 3, 2]], [[-1, 2], 1, "Sum", [2, True]],
                      [-1, 1, "nn.ConvTranspose2d", [16, 1, 1]], [-1, 1, "MixConv2d", [24, [3, 5], 2]]],
         "head": [[[-1], 1, "Detect", ["nc", "anchors"]]]}
    p = tmp_path / "m.yaml"
    p.write_text(_yaml.safe_dump(d))
    m = zooport.create_yolov5(str(p), num_classes=2).eval()
    sd = m.state_dict()
    assert sd["model.1.m.0.weight"].shape[0] + sd["model.1.m.1.weight"].shape[0] == 16
    assert sd["model.5.w"].tolist() == [-0.5]
    assert sd["model.3.weight"].shape == (16, 1, 2, 2) and "model.3.bias" in sd  # depth-wise, with bias
    assert [sd[f"model.7.m.{i}.weight"].shape[0] for i in range(2)] == [12, 12]
    assert m.stride == [4]
    with torch.no_grad():
        out = m(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 2 * 8 * 8, 7) and torch.isfinite(out).all()


def test_predict_segments_matches_golden(seg):
    import zooport

    out = zooport.predict_segments(seg, _bus320(), conf_thres=0.01, iou_thres=0.45)
    assert len(out) == 1 and out[0]["masks"].shape == (12, 320, 320) and out[0]["masks"].dtype == torch.bool
    ref = np.fromfile(asset(f"{MORE}/yolov5n-seg/masks320.u8"), np.uint8).reshape(12, 320, 320)
    assert (out[0]["masks"].numpy() == ref.astype(bool)).mean() >= 0.999
    assert out[0]["classes"].tolist() == [22, 40, 40, 24, 47, 9, 9, 6, 78, 40, 2, 40]  # README order
