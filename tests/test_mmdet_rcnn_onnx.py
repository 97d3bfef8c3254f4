"""ONNX export of the two-stage goldens: RoiAlign + NonMaxSuppression in the graph, onnxruntime = PyTorch."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import asset, contract_input, formula_checkpoint, read_f32

from test_mmdet_rcnn import TWO_STAGE, same_rows


@pytest.mark.slow
@pytest.mark.parametrize("name", TWO_STAGE)
def test_onnx_export_matches_pytorch(name, tmp_path):
    import onnxruntime as ort

    from zooport.converters.mmdet.load import load_mmdet
    from zooport.export.onnx import build_onnx

    folder = asset(f"golden/mmdet-more/{name}")
    model = load_mmdet(formula_checkpoint(folder, tmp_path), folder / "config.json")
    proto = build_onnx(model, imgsz=(256, 256), opset=17)  # runs check_model(full_check=True)
    ops = {n.op_type for n in proto.graph.node}
    assert {"RoiAlign", "NonMaxSuppression"} <= ops
    roi = [n for n in proto.graph.node if n.op_type == "RoiAlign"][0]
    attrs = {a.name: a for a in roi.attribute}
    assert attrs["coordinate_transformation_mode"].s == b"half_pixel" and attrs["sampling_ratio"].i == 0
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["preprocessing"])["mode"] == "mmdet"
    assert [o.name for o in proto.graph.output] == ["num_dets", "boxes", "scores", "classes"]
    x = contract_input(model, torch.from_numpy(read_f32(asset("golden/mmdet/input_bus_256.f32"),
                                                       (1, 3, 256, 256)).copy())).numpy()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    num, boxes, scores, classes = sess.run(None, {"images": x})
    m = int(model.test_cfg["rcnn"]["max_per_img"])
    assert boxes.shape == (1, m, 4) and scores.shape == (1, m) and classes.shape == (1, m)
    n = int(num[0, 0])
    ours = np.concatenate([boxes[0, :n], scores[0, :n, None], classes[0, :n, None]], 1).astype(np.float64)
    assert not boxes[0, n:].any()
    ref = model.predict(torch.from_numpy(x.copy()))[0].numpy().astype(np.float64)
    assert same_rows(ours, ref, score_col=4, label_col=5) <= 0.01


def test_small_faster_rcnn_onnx_no_assets():
    """A small random Faster R-CNN (no assets): the exported graph's detections = eager predict."""
    import onnxruntime as ort

    from test_mmdet_rcnn_errors import FASTER
    from zooport.converters.mmdet.load import build_model
    from zooport.errors import UsageError
    from zooport.export.onnx import build_onnx

    torch.manual_seed(0)
    model = build_model(FASTER).eval()
    for p in model.parameters():
        p.data.uniform_(-0.3, 0.3)
    with pytest.raises(UsageError, match="opset"):
        build_onnx(model, imgsz=(64, 96), opset=13)
    with pytest.raises(UsageError, match="static"):
        build_onnx(model, imgsz=(64, 96), dynamic=True)
    proto = build_onnx(model, imgsz=(64, 96), opset=16)
    # an image as the contract has it (u8 / 255); the model scales it to 0-255 and normalises inside
    x = torch.randint(0, 256, (1, 3, 64, 96), generator=torch.Generator().manual_seed(3)).float() / 255
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    num, boxes, scores, classes = sess.run(None, {"images": x.numpy()})
    n = int(num[0, 0])
    ours = np.concatenate([boxes[0, :n], scores[0, :n, None], classes[0, :n, None]], 1).astype(np.float64)
    ref = model.predict(x)[0].numpy().astype(np.float64)
    assert n > 0 and same_rows(ours, ref, score_col=4, label_col=5) <= 0.01
