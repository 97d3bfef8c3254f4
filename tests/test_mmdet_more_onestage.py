"""More MMDetection one-stage detectors against MMDetection 3.3.0 (``golden/mmdet-more``): SSD300,
SSDLite (MobileNetV2), PAA, SABL RetinaNet, GHM and PISA RetinaNet, VFNet, RepPoints and guided-anchoring RetinaNet (deformable convolution), CornerNet and
CentripetalNet (HourglassNet, corner pooling, soft-NMS).

For each: ``raw(x)`` equals every stored ``_forward`` output within 1e-4 * max(1, max|ref|), ``predict``
reproduces ``dets.txt`` (same labels, boxes within 0.01 px, scores within 1e-4), native save/load and
the MMDetection-layout state dict round-trip exactly, and the ONNX export runs in onnxruntime equal
to PyTorch (the decoded output within 1e-4; ``--nms`` detections equal).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_close, asset, contract_input, formula_checkpoint, read_f32, read_index

from test_mmdet_parity import match_dets

# folder -> (input file, side); weights: formula (keys.tsv) unless a checkpoint is named
MODELS = {
    "ssd300": ("golden/mmdet-more/ssd300/input_bus_300.f32", 300, None),
    "ssdlite_mobilenetv2": ("golden/mmdet/yolov3_d53/input_bus_320.f32", 320, None),
    "paa_r18s_fpn": ("golden/mmdet/input_bus_256.f32", 256, None),
    "sabl_retinanet_r18s_fpn": ("golden/mmdet/input_bus_256.f32", 256, None),
    "vfnet_r18s_fpn": ("golden/mmdet/input_bus_256.f32", 256, None),
    "reppoints_moment_r18s_fpn": ("golden/mmdet/input_bus_256.f32", 256, None),
    "ga_retinanet_r18s_fpn": ("golden/mmdet/input_bus_256.f32", 256, None),
    "cornernet_hg_s": ("golden/mmdet/input_bus_256.f32", 256, None),
    "centripetalnet_hg_s": ("golden/mmdet/input_bus_256.f32", 256, None),
    "ghm_retinanet_r18s_fpn": ("golden/mmdet/input_bus_256.f32", 256,
                               "golden/mmdet/retinanet_r18s_fpn/retinanet_r18s_fpn.pth"),
    "pisa_retinanet_r18s_fpn": ("golden/mmdet/input_bus_256.f32", 256,
                                "golden/mmdet/retinanet_r18s_fpn/retinanet_r18s_fpn.pth"),
}
SLOW = {"ssd300"}  # 34 M parameters: formula weights, a 137 MB ONNX file
PARAMS = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in MODELS]


def _load(name, tmp_path):
    from zooport.converters.mmdet.load import load_mmdet

    folder = asset(f"golden/mmdet-more/{name}")
    inp, side, ckpt = MODELS[name]
    path = asset(ckpt) if ckpt else formula_checkpoint(folder, tmp_path)
    model = load_mmdet(path, folder / "config.json")
    x = contract_input(model, torch.from_numpy(read_f32(asset(inp), (1, 3, side, side)).copy()))
    return folder, model, x, path


def _flatten(groups, prefix=""):
    """MMDetection ``_forward`` output -> {golden name: tensor}; pairs inside a level become ``_0``/``_1``."""
    out = {}
    for g, grp in enumerate(groups):
        for lvl, t in enumerate(grp):
            if isinstance(t, (list, tuple)):
                for j, e in enumerate(t):
                    out[f"out{g}_{lvl}_{j}"] = e
            else:
                out[f"out{g}_{lvl}"] = t
    return out


@pytest.mark.parametrize("name", PARAMS)
def test_raw_and_predict_match_mmdetection(name, tmp_path):
    folder, model, x, _ = _load(name, tmp_path)
    index, _ = read_index(folder)
    golden = {k: v for k, v in index.items() if k.startswith("out")}
    with torch.no_grad():
        ours = _flatten(model.raw(x))
    assert sorted(ours) == sorted(golden), f"{name}: outputs {sorted(ours)} vs golden {sorted(golden)}"
    for key, (shape, path) in golden.items():
        assert_close(ours[key], read_f32(path, shape), what=f"{name} {key}")
    ref = np.loadtxt(folder / "dets.txt", ndmin=2)
    dets = model.predict(x)[0].numpy().astype(np.float64)
    assert dets.shape == ref.shape, f"{name}: {len(dets)} detections, MMDetection {len(ref)}"
    missing = match_dets(dets, ref)
    assert not missing, f"{name}: {len(missing)} reference detections unmatched, first {missing[0]}"


@pytest.mark.parametrize("name", PARAMS)
def test_native_and_mmdet_state_dict_round_trip(name, tmp_path):
    from zooport.converters.mmdet.load import load_mmdet
    from zooport.converters.native import load_native, save_native

    folder, model, x, path = _load(name, tmp_path)
    original = torch.load(path, weights_only=True)["state_dict"]
    native = load_native(save_native(model, tmp_path / "native.pt"))
    # native -> MMDetection layout: the native model's own state dict, saved as MMDetection saves it
    sd = native.state_dict()
    assert list(sd) == list(original), f"{name}: key order differs from MMDetection's"
    torch.save({"meta": {}, "state_dict": sd}, tmp_path / "back.pth")
    again = load_mmdet(tmp_path / "back.pth", folder / "config.json")
    for k, v in original.items():
        assert torch.equal(again.state_dict()[k], v), f"{name}: {k} changed in the round trip"
    with torch.no_grad():
        a, b = _flatten(model.raw(x)), _flatten(again.raw(x))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("name", PARAMS)
def test_onnx_matches_pytorch(name, tmp_path):
    from zooport.export.checks import compare, compare_nms, ort_session, run_ort, torch_reference
    from zooport.export.onnx import export_onnx

    _, model, x, _ = _load(name, tmp_path)
    side = x.shape[-1]
    path = export_onnx(model, tmp_path / f"{name}.onnx", imgsz=side, opset=17)
    res = compare(run_ort(ort_session(path), x.numpy()), torch_reference(model, x.numpy(), "default"))
    assert all(r.ok for r in res), f"{name}: {res}"
    nms = export_onnx(model, tmp_path / f"{name}_nms.onnx", imgsz=side, opset=17, nms=True, conf=0.05, iou=0.5)
    out = run_ort(ort_session(nms), x.numpy())
    ref = torch_reference(model, x.numpy(), "nms", 0.05, 0.5, 300)
    assert int(out["num_dets"][0, 0]) > 0, f"{name}: no detections with --nms, a meaningless comparison"
    res = compare_nms(out, ref)  # order-free among near-tied scores (fused vs unfused rounding)
    assert all(r.ok for r in res), f"{name} --nms: {res}"


def test_ssd_anchor_rule_matches_mmdetection_hard_coded_sizes():
    """SSD300 COCO without min/max sizes: MMDetection's rule gives min sizes 21, 45, 99, 153, 207, 261 and
    max sizes 45, 99, 153, 207, 261, 315 (percent steps of 18 from 15 to 87, plus 7-15 % first)."""
    from zooport.model_defs.mmdet.anchors import SSDAnchorGenerator

    gen = SSDAnchorGenerator({"strides": [8, 16, 32, 64, 100, 300], "ratios": [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
                              "input_size": 300, "basesize_ratio_range": [0.15, 0.9], "scale_major": False}, "t")
    assert gen.num_base_priors_per_level == [4, 6, 6, 6, 4, 4]
    mins = [21, 45, 99, 153, 207, 261]
    maxs = [45, 99, 153, 207, 261, 315]
    for lvl, base in enumerate(gen.base):
        w = base[:, 2] - base[:, 0]
        h = base[:, 3] - base[:, 1]
        assert torch.allclose(w[0], torch.tensor(float(mins[lvl])))             # ratio 1, min size
        assert torch.allclose(w[1], torch.tensor((mins[lvl] * maxs[lvl]) ** 0.5))  # ratio 1, sqrt(min * max)
        assert torch.allclose(h[2] / w[2], torch.tensor(0.5))                      # ratio 1/2 (h / w)
        centre = (base[:, :2] + base[:, 2:]) / 2
        s = gen.strides[lvl][0]
        assert torch.allclose(centre, torch.full_like(centre, s / 2))


def test_bucket_decode_by_hand():
    """One proposal, 2 buckets per side (num_buckets 4), scale 1: the box sides land in the centres of
    the arg-max buckets minus the offsets; confidence adds the neighbour's probability."""
    from zooport.model_defs.mmdet.coders import bucket_decode

    prop = torch.tensor([[0.0, 0.0, 40.0, 80.0]])  # bucket w = 10, h = 20
    cls = torch.tensor([[3.0, 0.0, 0.0, 3.0, 3.0, 0.0, 0.0, 3.0]])  # l: bucket 0, r: 1, t: 0, b: 1
    off = torch.tensor([[0.5, 0.0, 0.0, -0.5, 0.25, 0.0, 0.0, 0.0]])
    boxes, conf = bucket_decode(prop, cls, off, 4, 1.0)
    # l = 0 + 0.5*10 - 0.5*10 = 0; r = 40 - 1.5*10 - (-0.5)*10 = 30; t = 0 + 0.5*20 - 0.25*20 = 5; b = 80 - 1.5*20 = 50
    assert torch.allclose(boxes, torch.tensor([[0.0, 5.0, 30.0, 50.0]]))
    p = torch.softmax(torch.tensor([3.0, 0.0]), 0)
    assert torch.allclose(conf, (p[0] + p[1]).reshape(1))  # the two buckets are neighbours


def test_ghm_training_buffers_are_read_and_ignored(tmp_path):
    """A checkpoint trained with GHMC / GHMR carries their ``edges`` / ``acc_sum`` buffers: accepted (they
    are training state), recorded in ``model.source``, and the outputs are RetinaNet's golden ones."""
    from zooport.converters.mmdet.load import load_mmdet

    folder = asset("golden/mmdet-more/ghm_retinanet_r18s_fpn")
    ckpt = torch.load(asset("golden/mmdet/retinanet_r18s_fpn/retinanet_r18s_fpn.pth"), weights_only=True)
    extra = {"bbox_head.loss_cls.edges": torch.arange(31) / 30.0, "bbox_head.loss_cls.acc_sum": torch.zeros(30),
             "bbox_head.loss_bbox.edges": torch.arange(11) / 10.0, "bbox_head.loss_bbox.acc_sum": torch.zeros(10)}
    ckpt["state_dict"] = {**ckpt["state_dict"], **extra}
    torch.save(ckpt, tmp_path / "ghm.pth")
    model = load_mmdet(tmp_path / "ghm.pth", folder / "config.json")
    assert model.source["ignored_training_keys"] == sorted(extra)
    x = contract_input(model, torch.from_numpy(read_f32(asset("golden/mmdet/input_bus_256.f32"), (1, 3, 256, 256)).copy()))
    shape, path = read_index(folder)[0]["out1_2"]
    with torch.no_grad():
        assert_close(model.raw(x)[1][2], read_f32(path, shape), what="ghm out1_2")


def test_unknown_head_is_named(tmp_path):
    """A head type zooport does not build: a clear error naming the type."""
    import json

    from zooport.converters.mmdet.load import build_model
    from zooport.errors import ConfigError

    cfg = json.loads(asset("golden/mmdet-more/paa_r18s_fpn/config.json").read_text())
    cfg["bbox_head"]["type"] = "NoSuchHead"
    with pytest.raises(ConfigError, match="NoSuchHead"):
        build_model({"model": cfg})


def test_vfnet_initial_boxes_match_mmdetection(tmp_path):
    """The star offsets come from the initial boxes: ``bbox_init_L`` checked on its own."""
    folder, model, x, _ = _load("vfnet_r18s_fpn", tmp_path)
    index, _ = read_index(folder)
    with torch.no_grad():
        feats = model.neck(model.backbone(model.input_norm(x)))
        init = model.bbox_head.init_boxes(list(feats))
    for lvl, t in enumerate(init):
        shape, path = index[f"bbox_init_{lvl}"]
        assert_close(t, read_f32(path, shape), what=f"vfnet bbox_init_{lvl}")


def test_reppoints_point_sets_match_mmdetection(tmp_path):
    """The initial and refined point sets (what the deformable convs and ``points2bbox`` consume)."""
    folder, model, x, _ = _load("reppoints_moment_r18s_fpn", tmp_path)
    index, _ = read_index(folder)
    with torch.no_grad():
        sets = model.bbox_head.point_sets(list(model.neck(model.backbone(model.input_norm(x)))))
    for lvl, (init, refine) in enumerate(sets):
        for name, t in (("pts_init", init), ("pts_refine", refine)):
            shape, path = index[f"{name}_{lvl}"]
            assert_close(t, read_f32(path, shape), what=f"reppoints {name}_{lvl}")


@pytest.mark.parametrize("method,expected", [("minmax", [-2.0, -1.0, 3.0, 4.0]), ("partial_minmax", [-2.0, -1.0, 1.0, 2.0])])
def test_reppoints_minmax_transforms_by_hand(method, expected):
    """points2bbox: min/max over all points, or over the first four for partial_minmax."""
    from zooport.model_defs.mmdet.reppoints import RepPointsHead

    cfg = {"num_classes": 2, "in_channels": 4, "feat_channels": 4, "point_feat_channels": 4, "stacked_convs": 0,
           "transform_method": method}
    head = RepPointsHead(cfg)
    ys = [-1.0, 0.0, 1.0, 2.0, 4.0, 0.0, 0.0, 0.0, 0.0]
    xs = [0.0, -2.0, 1.0, 0.5, 3.0, 0.0, 0.0, 0.0, 0.0]
    pts = torch.tensor([v for pair in zip(ys, xs) for v in pair]).view(1, 18, 1, 1)
    assert head.points2bbox(pts).flatten().tolist() == expected


@pytest.mark.parametrize("direction", ["top", "left", "bottom", "right"])
def test_corner_pool_is_a_running_max(direction):
    """Corner pooling against a direct loop: 'top' = max over this row and every row below, etc."""
    from zooport.model_defs.mmdet.corner import corner_pool

    x = torch.randn(1, 2, 5, 6, generator=torch.Generator().manual_seed(1))
    y = corner_pool(x, direction)
    ref = torch.empty_like(x)
    for i in range(5):
        for j in range(6):
            region = {"top": x[..., i:, j], "bottom": x[..., :i + 1, j], "left": x[..., i, j:],
                      "right": x[..., i, :j + 1]}[direction]
            ref[..., i, j] = region.max(-1).values
    assert torch.equal(y, ref)
    from zooport.model_defs.mmdet.corner import _scan_max  # the form an ONNX export traces

    dim = 2 if direction in ("top", "bottom") else 3
    flip = direction in ("top", "left")
    xs = x.flip(dim) if flip else x
    scan = _scan_max(xs, dim)
    assert torch.equal(scan.flip(dim) if flip else scan, ref)


def test_soft_nms_gaussian_by_hand():
    """Three boxes: the best is kept; the second overlaps it with IoU 1/3 and decays to
    s * exp(-(1/3)^2 / 0.5); the third, disjoint, keeps its score and is selected before the decayed one."""
    import math

    from zooport.postprocess.soft_nms import soft_nms

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    keep, decayed = soft_nms(boxes, scores, 0.5, 0.5, 1e-3, "gaussian")
    assert keep.tolist() == [0, 2, 1]
    assert torch.allclose(decayed, torch.tensor([0.9, 0.7, 0.8 * math.exp(-(1 / 3) ** 2 / 0.5)]))
    keep, decayed = soft_nms(boxes, scores, 0.3, 0.5, 0.6, "linear")  # 0.8 * (1 - 1/3) = 0.53 < 0.6: dropped
    assert keep.tolist() == [0, 2]


@pytest.mark.parametrize("name", PARAMS)
def test_fuse_keeps_outputs(name, tmp_path):
    """``fuse()`` folds every BN into its conv; the raw outputs stay within 1e-4 * max(1, max|ref|)."""
    import copy

    _, model, x, _ = _load(name, tmp_path)
    with torch.no_grad():
        ref = _flatten(model.raw(x))
        fused = copy.deepcopy(model).fuse()
        out = _flatten(fused.raw(x))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules()), f"{name}: a BN was not folded"
    for k, v in ref.items():
        assert_close(out[k], v.numpy(), what=f"{name} fused {k}")
