"""Two-stage configs and checkpoints that zooport cannot read fail with ZooportErrors naming the key;
the zoo's MMDetection entries (sha256 prefix). No assets needed."""
from __future__ import annotations

import copy

import pytest
import torch

from zooport.errors import CheckpointError, ConfigError, IntegrityError, ZooportError

FASTER = {
    "type": "FasterRCNN",
    "backbone": {"type": "ResNet", "depth": 18, "base_channels": 8, "num_stages": 4, "out_indices": [0, 1, 2, 3],
                 "frozen_stages": -1, "norm_cfg": {"type": "BN"}, "norm_eval": True, "style": "pytorch"},
    "neck": {"type": "FPN", "in_channels": [8, 16, 32, 64], "out_channels": 16, "num_outs": 5},
    "rpn_head": {"type": "RPNHead", "in_channels": 16, "feat_channels": 16,
                 "anchor_generator": {"type": "AnchorGenerator", "scales": [8], "ratios": [0.5, 1.0, 2.0],
                                      "strides": [4, 8, 16, 32, 64]},
                 "bbox_coder": {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0] * 4, "target_stds": [1.0] * 4}},
    "roi_head": {"type": "StandardRoIHead",
                 "bbox_roi_extractor": {"type": "SingleRoIExtractor", "roi_layer": {"type": "RoIAlign", "output_size": 7,
                                                                                    "sampling_ratio": 0},
                                        "out_channels": 16, "featmap_strides": [4, 8, 16, 32]},
                 "bbox_head": {"type": "Shared2FCBBoxHead", "in_channels": 16, "fc_out_channels": 32,
                               "roi_feat_size": 7, "num_classes": 3,
                               "bbox_coder": {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0] * 4,
                                              "target_stds": [0.1, 0.1, 0.2, 0.2]},
                               "reg_class_agnostic": False}},
    "train_cfg": {"rpn": {"sampler": {"type": "RandomSampler", "num": 256}}},
    "test_cfg": {"rpn": {"nms_pre": 200, "max_per_img": 100, "nms": {"type": "nms", "iou_threshold": 0.7},
                         "min_bbox_size": 0},
                 "rcnn": {"score_thr": 0.05, "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 20}},
}


def _build(cfg):
    from zooport.converters.mmdet.load import build_model

    return build_model(cfg)


def test_small_faster_rcnn_runs_end_to_end():
    torch.manual_seed(0)
    model = _build(FASTER).eval()
    for p in model.parameters():
        p.data.uniform_(-0.2, 0.2)
    x = torch.rand(1, 3, 64, 96)
    cls, reg, props, roi = model.raw(x)
    assert [tuple(c.shape) for c in cls][:2] == [(1, 3, 16, 24), (1, 3, 8, 12)]
    assert props[0].shape[1] == 5 and props[0].shape[0] <= 100
    assert roi[0].shape == (props[0].shape[0], 4) and roi[1].shape == (props[0].shape[0], 12)
    dets = model.predict(x)[0]
    assert dets.shape[1] == 6 and dets.shape[0] <= 20
    assert float(dets[:, :4].min()) >= 0 and float(dets[:, [0, 2]].max()) <= 96 and float(dets[:, [1, 3]].max()) <= 64
    out = model(x)
    assert out.shape == (1, 100, 4 + 1 + 3)
    assert model.preprocess["mode"] == "mmdet"


@pytest.mark.parametrize("path,value,needle", [
    (("roi_head", "type"), "HybridTaskCascadeRoIHead", "HybridTaskCascadeRoIHead"),
    (("roi_head", "bbox_head", "type"), "DoubleConvFCBBoxHead", "model.roi_head.bbox_head"),
    (("roi_head", "bbox_roi_extractor", "roi_layer", "type"), "RoIPool", "RoIPool"),
    (("roi_head", "bbox_roi_extractor", "roi_layer", "pool_mode"), "max", "pool_mode"),
    (("rpn_head", "bbox_coder", "type"), "TBLRBBoxCoder", "TBLRBBoxCoder"),
    (("roi_head", "mask_head"), {"type": "FCNMaskHead"}, "mask_head"),
    (("neck", "type"), "PAFPN", "PAFPN"),
    (("type",), "MaskRCNN", "MaskRCNN"),
])
def test_unsupported_config_names_the_key_or_op(path, value, needle):
    cfg = copy.deepcopy(FASTER)
    d = cfg
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value
    with pytest.raises(ConfigError, match=needle):
        _build(cfg)


def test_missing_test_cfg_and_missing_argument():
    cfg = copy.deepcopy(FASTER)
    del cfg["test_cfg"]["rcnn"]
    with pytest.raises(ConfigError, match="test_cfg"):
        _build(cfg)
    cfg = copy.deepcopy(FASTER)
    del cfg["roi_head"]["bbox_roi_extractor"]["featmap_strides"]
    with pytest.raises(ZooportError, match="featmap_strides"):
        _build(cfg)


@pytest.mark.parametrize("change", ["missing", "unused", "shape"])
def test_checkpoint_key_errors_name_the_key(change, tmp_path):
    from zooport.converters.mmdet.load import load_mmdet

    sd = {k: v.clone() for k, v in _build(FASTER).state_dict().items()}
    key = "roi_head.bbox_head.fc_reg.weight"
    if change == "missing":
        del sd[key]
    elif change == "unused":
        sd["roi_head.mask_head.conv_logits.weight"] = torch.zeros(1)
        key = "roi_head.mask_head.conv_logits.weight"
    else:
        sd[key] = torch.zeros(5, 32)
    path = tmp_path / "bad.pth"
    torch.save({"meta": {}, "state_dict": sd}, path)
    with pytest.raises(CheckpointError, match=key.replace(".", r"\.")):
        load_mmdet(path, FASTER)


def test_zoo_mmdet_entries_carry_hash_prefixes():
    from zooport.zoo.manifest import load_manifest

    m = load_manifest()
    want = {"faster-rcnn": 0.374, "cascade-rcnn": 0.403, "libra-rcnn": 0.383, "dynamic-rcnn": 0.389,
            "retinanet": 0.365, "fcos": 0.366, "atss": 0.394, "gfl": 0.402, "yolox-s": 0.405, "yolov3-d53-320": 0.279}
    for alias, ap in want.items():
        e = m.get(alias)
        assert e.format == "mmdet" and e.preprocessing["mode"] == "mmdet"
        spec = e.weights
        assert spec.sha256_is_prefix and len(spec.sha256) == 8
        assert spec.filename.rsplit("-", 1)[1] == spec.sha256 + ".pth"  # MMDetection's naming
        assert e.metrics["coco-val2017"]["AP"] == ap


def test_hash_prefix_is_checked_as_a_prefix(tmp_path, monkeypatch):
    import hashlib

    from zooport.zoo.cache import check_cached
    from zooport.zoo.manifest import FileSpec

    f = tmp_path / "w-00000000.pth"
    f.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    good = FileSpec(f.name, "https://x/" + f.name, None, digest[:8], True)
    assert good.matches(digest) and not good.matches("f" + digest[1:])
    assert check_cached(f, good)
    bad = FileSpec(f.name, "https://x/" + f.name, None, ("0" if digest[0] != "0" else "1") + digest[1:8], True)
    assert not check_cached(f, bad) and not f.exists()  # a mismatch is removed from the cache
    assert issubclass(IntegrityError, ZooportError)


def test_zoo_mmdet_entries_equal_the_release_table():
    """URL, box AP and hash prefix of every MMDetection entry are the rows of shared/zoo/MMDET_RELEASES.tsv."""
    from helpers import asset

    from zooport.zoo.manifest import load_manifest

    rows = {}
    for line in asset("zoo/MMDET_RELEASES.tsv").read_text().splitlines()[1:]:
        _cfg, url, ap, prefix = line.split("\t")
        rows[url] = (float(ap) / 100, prefix)
    entries = [e for e in load_manifest() if e.format == "mmdet"]
    assert len(entries) == 10
    for e in entries:
        ap, prefix = rows[e.weights.url]
        assert e.weights.sha256 == prefix and e.metrics["coco-val2017"]["AP"] == pytest.approx(ap, abs=1e-9)
