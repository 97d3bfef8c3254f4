"""Shared body of tests/test_onnx_real_*.py: acceptance 1-4 on the real yolov3-tiny (Darknet) and
yolov5n (YOLOv5 v7.0) weights (ZOOPORT_ASSETS). Each test file binds one model with ``make_fixture``
and imports the test functions (pytest collects them there), so each file stays under a minute.

1. onnxruntime == PyTorch (default, raw at the golden size; dynamic at a
   second size with batch 2); raw/decoded also against the reference goldens.
2. --nms in the graph == zooport.postprocess.non_max_suppression (and, for
   yolov5n, YOLOv5's own dets.txt) on bus.jpg / zidane.jpg.
3. OpenCV 5 (cv2.dnn.readNetFromONNX) runs the default export == onnxruntime.
4. --half runs in onnxruntime; its difference to float32 is printed.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import asset, assert_close, read_f32

MODELS = {
    # name: (golden size, second (H, W) for --dynamic, {image: input file})
    "yolov3-tiny": (416, (320, 480), {"bus": "golden/real/input_bus_416.f32",
                                      "zidane": "golden/real/input_zidane_416.f32"}),
    "yolov5n": (640, (384, 512), {"bus": "golden/real/yolov5n_bus/input_640.f32",
                                  "zidane": "golden/real/yolov5n_zidane/input_640.f32"}),
}


def _load(name):
    if name == "yolov3-tiny":
        from zooport.converters.darknet.load import load_darknet

        return load_darknet(asset("zoo/darknet/yolov3-tiny.cfg"), asset("zoo/darknet/yolov3-tiny.weights"),
                            names=asset("zoo/darknet/coco.names"))
    from zooport.converters.yolov5.load import load_yolov5

    return load_yolov5(asset("zoo/yolov5/yolov5n.pt"))


def make_fixture(name: str):
    """A module-scoped ``real`` fixture: (name, model, {image: input}, {mode: exported path})."""

    @pytest.fixture(scope="module")
    def real(tmp_path_factory):
        from zooport.export.onnx import export_onnx

        size, _, inputs = MODELS[name]
        model = _load(name).eval()
        xs = {k: read_f32(asset(v), (1, 3, size, size)) for k, v in inputs.items()}
        d = tmp_path_factory.mktemp(name)
        files = {
            "default": export_onnx(model, d / "default.onnx"),
            "raw": export_onnx(model, d / "raw.onnx", raw=True),
            # traced at 320x320, run at MODELS[name][1] (another H and W) with batch 2
            "dynamic": export_onnx(model, d / "dynamic.onnx", dynamic=True, imgsz=320),
            "nms": export_onnx(model, d / "nms.onnx", nms=True),
            "half": export_onnx(model, d / "half.onnx", half=True),
        }
        return name, model, xs, files

    return real


SOURCE_SHA256 = {  # the released files' hashes, from shared/README.md
    "yolov3-tiny": "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
    "yolov5n": "4f180cf23ba0717ada0badd6c685026d73d48f184d00fc159c2641284b2ac0a3",
}


def test_metadata_and_checker(real):
    import json

    import onnx

    name, model, _, files = real
    for mode, path in files.items():
        m = onnx.load(str(path))
        onnx.checker.check_model(m, full_check=True)
        props = {p.key: p.value for p in m.metadata_props}
        assert json.loads(props["source"])["sha256"] == SOURCE_SHA256[name], mode
        names = json.loads(props["names"])
        assert len(names) == 80 and names[0] == "person", mode
        assert json.loads(props["stride"]) == model.stride and json.loads(props["anchors"]) == model.anchors
        pre = json.loads(props["preprocessing"])
        assert pre["mode"] == ("resize" if name == "yolov3-tiny" else "letterbox"), pre
        assert props["zooport_version"] and props["mode"] in ("default", "raw", "nms")
        assert props["dtype"] == ("float16" if mode == "half" else "float32")


def _run(path, x):
    from zooport.export.checks import ort_session, run_ort

    return list(run_ort(ort_session(path, threads=2), x).values())


def test_default_and_raw(real):
    from zooport.export.checks import torch_reference

    name, model, xs, files = real
    x = xs["bus"]
    (ours,), (ref,) = _run(files["default"], x), torch_reference(model, x)
    assert_close(ours, ref, what=f"{name} default vs PyTorch")
    raws, raw_refs = _run(files["raw"], x), torch_reference(model, x, "raw")
    assert len(raws) == len(raw_refs) == (2 if name == "yolov3-tiny" else 3)
    for i, (o, r) in enumerate(zip(raws, raw_refs)):
        assert_close(o, r, what=f"{name} raw{i} vs PyTorch")
    # and against the reference implementations' own outputs
    if name == "yolov3-tiny":
        for o, (nnn, chw) in zip(raws, [(16, (255, 13, 13)), (23, (255, 26, 26))]):
            assert_close(o, read_f32(asset(f"golden/real/yolov3-tiny_bus/head{nnn:03d}_in.f32"), (1, *chw)),
                         what=f"yolov3-tiny raw vs Darknet head{nnn:03d}_in")
    else:
        for k, o in enumerate(raws):
            g = o.shape[2]
            o5 = o.reshape(1, 3, 85, g, g).transpose(0, 1, 3, 4, 2)
            assert_close(o5, read_f32(asset(f"golden/real/yolov5n_bus/raw{k}.f32"), (1, 3, g, g, 85)),
                         what=f"yolov5n raw{k} vs YOLOv5")
        assert_close(ours, read_f32(asset("golden/real/yolov5n_bus/decoded.f32"), (1, 25200, 85)),
                     what="yolov5n decoded vs YOLOv5")


def test_dynamic_second_size_batch2(real):
    from zooport.export.checks import torch_reference

    name, model, _, files = real
    h, w = MODELS[name][1]
    x = np.random.default_rng(3).random((2, 3, h, w), dtype=np.float32)
    (ours,), (ref,) = _run(files["dynamic"], x), torch_reference(model, x)
    assert ref.shape[0] == 2
    assert_close(ours, ref, what=f"{name} dynamic 2x3x{h}x{w}")


def _match(ours: np.ndarray, ref: np.ndarray, px: float = 0.5, what: str = "") -> None:
    """Rows x1 y1 x2 y2 score class: same count, a one-to-one pairing with equal class and boxes within px."""
    assert len(ours) == len(ref), f"{what}: {len(ours)} detections, reference has {len(ref)}"
    free = list(range(len(ours)))
    for r in ref:
        cand = [j for j in free if ours[j, 5] == r[5] and np.abs(ours[j, :4] - r[:4]).max() <= px]
        assert cand, f"{what}: no detection of class {int(r[5])} within {px} px of {np.round(r[:4], 2)}"
        j = min(cand, key=lambda j: np.abs(ours[j, :4] - r[:4]).max())
        assert abs(ours[j, 4] - r[4]) < 2e-3, f"{what}: score {ours[j, 4]} vs {r[4]}"
        free.remove(j)


@pytest.mark.parametrize("image", ["bus", "zidane"])
def test_nms_in_graph_matches_pytorch(real, image):
    from zooport.postprocess import non_max_suppression

    name, model, xs, files = real
    x = xs[image]
    num, boxes, scores, classes = _run(files["nms"], x)
    n = int(num[0, 0])
    ours = np.concatenate([boxes[0, :n], scores[0, :n, None], classes[0, :n, None].astype(np.float32)], 1)
    with torch.no_grad():
        ref = non_max_suppression(model(torch.from_numpy(x)), 0.25, 0.45, max_det=300)[0].numpy()
    assert n >= 1, f"{name} {image}: no detections, a meaningless comparison"
    print(f"{name} {image}: {n} detections in-graph, {len(ref)} in PyTorch")
    _match(ours, ref, what=f"{name} {image} --nms vs non_max_suppression")
    if name == "yolov5n":  # YOLOv5's own detections (same NMS rule)
        gold = np.loadtxt(asset(f"golden/real/yolov5n_{image}/dets.txt"), ndmin=2)
        _match(ours, gold, what=f"yolov5n {image} --nms vs YOLOv5 dets.txt")


def test_opencv5_runs_default_export(real):
    import cv2

    name, _, xs, files = real
    net = cv2.dnn.readNetFromONNX(str(files["default"]))
    x = xs["zidane"]
    net.setInput(x)
    cv_out = net.forward()
    (ort_out,) = _run(files["default"], x)
    err = assert_close(np.asarray(cv_out).reshape(ort_out.shape), ort_out, rel=1e-3, what=f"{name} OpenCV vs ORT")
    print(f"{name}: OpenCV {cv2.__version__} vs onnxruntime max abs err {err:.3g}")


def test_half_runs_and_difference_is_reported(real):
    name, _, xs, files = real
    x = xs["bus"]
    (half,) = _run(files["half"], x.astype(np.float16))
    (full,) = _run(files["default"], x)
    assert half.dtype == np.float16 and np.isfinite(half).all()
    diff = np.abs(half.astype(np.float64) - full)
    conf_diff = diff[..., 4:].max()
    print(f"{name} --half vs float32: max abs err boxes {diff[..., :4].max():.3g} px, "
          f"scores {conf_diff:.3g}, mean box err {diff[..., :4].mean():.3g} px")
    # fp16 has ~3 significant digits: bounded, not equal
    assert diff[..., :4].max() < 0.02 * x.shape[-1] and conf_diff < 0.05
