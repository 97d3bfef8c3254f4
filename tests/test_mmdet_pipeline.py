"""The ``mmdet`` preprocessing mode against MMDetection 3.3.0's own pipeline (``pipeline_faster_rcnn``)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import asset, formula_checkpoint, read_f32

from zooport.eval.preprocess import mmdet_resize_hw, preprocess_mmdet, unmmdet_boxes


def test_resize_rounding_is_mmcv_rescale_size():
    # min(600 / 1080, 400 / 810) = 0.4938: 1080 * s = 533.33 -> 533, 810 * s = 400.0 -> 400
    assert mmdet_resize_hw(1080, 810, (600, 400)) == (533, 400)
    # int(x + 0.5) rounds half up: s = min(10 / 5, 2 / 4) = 0.5, 5 * 0.5 = 2.5 -> 3 (round() gives 2)
    assert mmdet_resize_hw(5, 4, (10, 2)) == (3, 2)
    assert mmdet_resize_hw(100, 200, (1333, 800)) == (667, 1333)
    assert mmdet_resize_hw(100, 200, (640, 480), keep_ratio=False) == (480, 640)


def test_padding_and_normalisation_synthetic():
    """preprocess_mmdet: keep-ratio resize, RGB / 255, zero padding; the model's InputNorm then gives
    MMDetection's normalised tensor (its channel order, (x - mean) / std, padding 0 after normalising)."""
    from zooport.model_defs.input_norm import mmdet_input_norm

    img = np.full((10, 7, 3), (10, 20, 30), np.uint8)  # B, G, R
    pre = {"resize_scale": [7, 10], "keep_ratio": True, "pad_size_divisor": 8}
    x, info = preprocess_mmdet(img, pre)
    assert x.shape == (3, 16, 8) and info["img_shape"] == (10, 7) and info["pad_shape"] == (16, 8)
    assert np.array_equal(x[:, 0, 0], np.array([30, 20, 10], np.float32) / np.float32(255))  # RGB [0, 1]
    assert not x[:, 10:].any() and not x[:, :, 7:].any()
    for bgr_to_rgb, pixel in ((True, [30, 20, 10]), (False, [10, 20, 30])):
        norm = mmdet_input_norm({"data_preprocessor": {"mean": [1, 2, 3], "std": [2, 2, 2], "bgr_to_rgb": bgr_to_rgb}})
        seen = norm(torch.from_numpy(x[None]), info["img_shape"])[0].numpy()
        want = (np.array(pixel, np.float32) - np.array([1, 2, 3], np.float32)) / np.float32(2)
        assert np.array_equal(seen[:, 0, 0], want), bgr_to_rgb  # the model's channel order, then mean / std
        assert not seen[:, 10:].any() and not seen[:, :, 7:].any()  # padding 0 after normalising
        assert seen[:, :10, :7].all()


@pytest.fixture(scope="module")
def pipeline_model(tmp_path_factory):
    from zooport.converters.mmdet.load import load_mmdet

    folder = asset("golden/mmdet-more/pipeline_faster_rcnn")
    cfg = {"model": json.loads((folder / "config.json").read_text()),
           "test_pipeline": json.loads((folder / "test_pipeline.json").read_text())}
    return folder, load_mmdet(formula_checkpoint(folder, tmp_path_factory.mktemp("pipe")), cfg)


def test_input_tensor_matches_mmdetection(pipeline_model):
    import cv2

    folder, model = pipeline_model
    pre = model.preprocess
    assert pre["mode"] == "mmdet" and pre["resize_scale"] == [600, 400] and pre["keep_ratio"]
    assert pre["pad_size_divisor"] == 32 and not pre["model_normalises"]["bgr"]  # bgr_to_rgb: the model takes RGB
    x, info = preprocess_mmdet(cv2.imread(str(asset("zoo/images/bus.jpg"))), pre)
    ref = read_f32(folder / "input.f32", (1, 3, 544, 416))[0]
    assert x.shape == ref.shape and info["img_shape"] == (533, 400) and info["pad_shape"] == (544, 416)
    assert info["scale_factor"] == (400 / 810, 533 / 1080)
    assert 0 <= x.min() and x.max() <= 1  # the input contract: RGB in [0, 1]
    seen = model.input_norm(torch.from_numpy(x[None]), info["img_shape"])[0].numpy()
    assert float(np.abs(seen - ref).max()) <= 1e-5  # what MMDetection's data preprocessor made
    assert not seen[:, 533:].any() and not seen[:, :, 400:].any()


@pytest.mark.slow
def test_rescaled_detections_match_inference_detector(pipeline_model):
    import cv2

    from test_mmdet_rcnn import check_dets

    folder, model = pipeline_model
    x, info = preprocess_mmdet(cv2.imread(str(asset("zoo/images/bus.jpg"))), model.preprocess)
    xt = torch.from_numpy(x[None])
    props = model.raw(xt, img_hw=info["img_shape"])[2][0].numpy()
    ref_p = read_f32(folder / "proposals.f32", (1000, 5))
    assert props.shape == ref_p.shape and float(props[:, 2].max()) <= 400 and float(props[:, 3].max()) <= 533
    dets = model.predict(xt, img_hw=info["img_shape"])[0].numpy()
    check_dets(dets, np.loadtxt(folder / "dets.txt", ndmin=2), "pipeline dets (resized pixels)")
    dets = model.predict(xt, img_hw=info["img_shape"], scale_factor=info["scale_factor"])[0].numpy()
    check_dets(dets, np.loadtxt(folder / "dets_rescaled.txt", ndmin=2), "pipeline dets_rescaled")
