"""The input contract, per family: every model (``raw``, ``forward``, ONNX) takes RGB in [0, 1].

Families whose networks were trained on other inputs (MMDetection: pixels 0-255, BGR or RGB, minus
mean over std; YOLOv5's classifiers: ImageNet mean / std) normalise inside, so for each family:

* the model's ``preprocess`` asks the pipeline for RGB ``u8 / 255`` only (no ``mean`` / ``std``), and
  what the model does instead is stated in ``preprocess["model_normalises"]``, also in the ONNX file;
* feeding the contract input equals feeding the hand-normalised tensor to the network behind the
  normalisation (so the normalisation really is inside, with MMDetection's channel order);
* the ONNX export of the same model, fed the same [0, 1] input, gives the same output.

No assets: small random models of every family.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from zooport.transforms import from_meta


def _darknet():
    import zooport

    return zooport.load(str(__import__("zooport").__path__[0] + "/cfgs/darknet/yolov3-tiny.cfg"), random_weights=True,
                        seed=0)


def _yolov5():
    from zooport.model_defs.yolov5.create import create_yolov5

    return create_yolov5("yolov5n", num_classes=3)


def _yolov5_cls():
    from zooport.model_defs.yolov5.create import create_yolov5

    return create_yolov5("yolov5n-cls", num_classes=3)


def _ultralytics():
    from zooport.model_defs.ultralytics.build import create_ultralytics

    return create_ultralytics("yolov8n", num_classes=3)


def _mmdet_one_stage(bgr_to_rgb):
    from zooport.converters.mmdet.load import build_model

    cfg = {"type": "RetinaNet",
           "data_preprocessor": {"type": "DetDataPreprocessor", "mean": [123.675, 116.28, 103.53],
                                 "std": [58.395, 57.12, 57.375], "bgr_to_rgb": bgr_to_rgb, "pad_size_divisor": 32},
           "backbone": {"type": "ResNet", "depth": 18, "base_channels": 8, "num_stages": 4, "out_indices": [1, 2, 3],
                        "frozen_stages": -1, "norm_cfg": {"type": "BN"}, "norm_eval": True, "style": "pytorch"},
           "neck": {"type": "FPN", "in_channels": [16, 32, 64], "out_channels": 16, "start_level": 0,
                    "add_extra_convs": "on_input", "num_outs": 5},
           "bbox_head": {"type": "RetinaHead", "num_classes": 3, "in_channels": 16, "stacked_convs": 1,
                         "feat_channels": 16,
                         "anchor_generator": {"type": "AnchorGenerator", "octave_base_scale": 4,
                                              "scales_per_octave": 3, "ratios": [0.5, 1.0, 2.0],
                                              "strides": [8, 16, 32, 64, 128]},
                         "bbox_coder": {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0, 0.0, 0.0, 0.0],
                                        "target_stds": [1.0, 1.0, 1.0, 1.0]}},
           "test_cfg": {"nms_pre": 100, "min_bbox_size": 0, "score_thr": 0.05,
                        "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 50}}
    return build_model({"model": cfg}).eval()


def _mmdet_two_stage():
    from test_mmdet_rcnn_errors import FASTER
    from zooport.converters.mmdet.load import build_model

    cfg = dict(FASTER, data_preprocessor={"type": "DetDataPreprocessor", "mean": [103.53, 116.28, 123.675],
                                          "std": [1.0, 1.0, 1.0], "bgr_to_rgb": False})  # caffe style: BGR
    return build_model(cfg).eval()


FAMILIES = {"darknet": _darknet, "yolov5": _yolov5, "yolov5-cls": _yolov5_cls, "ultralytics": _ultralytics,
            "mmdet-rgb": lambda: _mmdet_one_stage(True), "mmdet-bgr": lambda: _mmdet_one_stage(False),
            "mmdet-two-stage": _mmdet_two_stage}
NORMALISING = {"yolov5-cls", "mmdet-rgb", "mmdet-bgr", "mmdet-two-stage"}


def _randomise(model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.rand(p.shape, generator=g) * 0.2 - 0.1)
    return model.eval()


def _image(h=64, w=96):
    """An image as every zooport pipeline hands it to a model: RGB u8 / 255."""
    u8 = torch.randint(0, 256, (1, 3, h, w), generator=torch.Generator().manual_seed(1))
    return u8.float() / 255, u8


@pytest.mark.parametrize("family", list(FAMILIES))
def test_pipeline_hands_rgb_unit_range_only(family):
    m = FAMILIES[family]()
    pre = m.preprocess
    assert "mean" not in pre and "std" not in pre, pre
    # an image already at the model's input size: the pipeline (zooport.transforms) hands exactly u8 / 255
    h, w = (224, 224) if pre["mode"] == "center_crop" else (64, 96)
    x, u8 = _image(h, w)
    img = np.ascontiguousarray(u8[0].numpy().astype(np.uint8)[::-1].transpose(1, 2, 0))  # BGR HWC
    spec = {**pre, "resize_scale": [w, h], "pad_size_divisor": 32, "size": [h, w]}
    got, _ = from_meta(spec, purpose="val", imgsz=max(h, w), shape=(h, w))(img)
    assert np.array_equal(got, x[0].numpy())
    assert ("model_normalises" in pre) == (family in NORMALISING)


@pytest.mark.parametrize("family", sorted(NORMALISING))
def test_normalisation_is_inside_the_model(family):
    m = _randomise(FAMILIES[family]())
    x, u8 = _image()
    spec = m.preprocess["model_normalises"]
    px = u8.float() if spec["scale"] == 255.0 else x  # what the network was trained on, by hand
    if spec["bgr"]:
        px = px[:, [2, 1, 0]]
    mean, std = torch.tensor(spec["mean"]).view(1, 3, 1, 1), torch.tensor(spec["std"]).view(1, 3, 1, 1)
    by_hand = (px - mean) / std
    assert torch.equal(m.input_norm(x), by_hand)  # bit for bit: x * 255 is the integer pixel again
    with torch.no_grad():
        if family == "yolov5-cls":
            ours = m.raw(x)
            theirs = m.model[m.detect_index].heads(m._detect_inputs(by_hand))[0]
        elif family == "mmdet-two-stage":
            ours = m.extract_feat(x)
            theirs = m.neck(m.backbone(by_hand))
        else:
            ours = m.raw(x)[0]
            theirs = m.bbox_head(list(m.neck(m.backbone(by_hand))))[0]
    for a, b in zip(ours if isinstance(ours, (list, tuple)) else [ours], theirs if isinstance(theirs, (list, tuple))
                    else [theirs]):
        assert torch.equal(a, b)
    if family == "mmdet-bgr":  # the channel order matters: a swapped image gives another result
        with torch.no_grad():
            assert not torch.equal(m.raw(x.flip(1))[0][0], m.raw(x)[0][0])


@pytest.mark.slow
@pytest.mark.parametrize("family", ["yolov5-cls", "mmdet-bgr", "mmdet-two-stage"])
def test_onnx_takes_the_same_input(family, tmp_path):
    import onnx
    import onnxruntime as ort

    from zooport.export.onnx import export_onnx

    m = _randomise(FAMILIES[family]())
    x, _ = {"yolov5-cls": _image(224, 224), "mmdet-bgr": _image(128, 256)}.get(family) or _image(64, 96)
    path = export_onnx(m, tmp_path / "m.onnx", imgsz=tuple(x.shape[2:]), opset=17)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    pre = json.loads(meta["preprocessing"])
    assert "mean" not in pre and pre["model_normalises"] == m.preprocess["model_normalises"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        if family == "mmdet-two-stage":
            ref = m.predict(x)[0].numpy()
            n = int(outs[0][0, 0])
            ours = np.concatenate([outs[1][0, :n], outs[2][0, :n, None], outs[3][0, :n, None]], 1)
            assert ours.shape == ref.shape and np.abs(ours - ref).max() <= 1e-3
            return
        ref = m(x)
    ref = ref[0] if isinstance(ref, (list, tuple)) else ref
    assert np.abs(outs[0] - ref.numpy()).max() <= 1e-4 * max(1.0, float(ref.abs().max()))
