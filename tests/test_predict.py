"""zooport predict / zooport.predict / zooport.draw: goldens on bus.jpg, backends, CLI outputs, video."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import asset

from zooport.cli.main import main


def _read_image(p):
    import cv2

    return cv2.imread(str(p))


# ------------------------------------------------------------------ goldens (real weights)


def _yolov5_golden():
    g = np.loadtxt(asset("golden/real/yolov5n_bus/dets.txt"))
    idx = open(asset("golden/real/yolov5n_bus/index.txt")).read().split()
    ratio = float(idx[idx.index("letterbox_ratio") + 1])
    padw, padh = float(idx[idx.index("pad") + 1]), float(idx[idx.index("pad") + 2])
    b = g[:, :4].copy()
    b[:, [0, 2]] = ((b[:, [0, 2]] - padw) / ratio).clip(0, 810)  # YOLOv5 scale_boxes + clip_boxes
    b[:, [1, 3]] = ((b[:, [1, 3]] - padh) / ratio).clip(0, 1080)
    return b, g[:, 4], g[:, 5].astype(int)


def _match(d, boxes, scores, classes, tol_px=0.5):
    assert len(d) == len(boxes), f"{len(d)} detections, golden has {len(boxes)}"
    for k in range(len(boxes)):
        err = np.abs(d.boxes - boxes[k]).max(1)
        j = int(np.argmin(err))
        assert err[j] <= tol_px, f"golden box {k} {boxes[k]}: nearest ours {d.boxes[j]} is {err[j]:.3f} px away"
        assert int(d.classes[j]) == int(classes[k])
        assert abs(float(d.scores[j]) - scores[k]) < 2e-3
    return float(np.max([np.abs(d.boxes - b).max(1).min() for b in boxes]))


def test_yolov5n_bus_matches_golden():
    import zooport

    d = zooport.predict(str(asset("zoo/yolov5/yolov5n.pt")), str(asset("zoo/images/bus.jpg")),
                        square=True, imgsz=640, conf=0.25, iou=0.45)
    assert d.shape == (1080, 810) and d.names[0] == "person"
    err = _match(d, *_yolov5_golden())
    assert err < 0.05


def test_yolov3_tiny_bus_matches_golden():
    import zooport

    model = [str(asset("zoo/darknet/yolov3-tiny.cfg")), str(asset("zoo/darknet/yolov3-tiny.weights"))]
    # The golden's 416x416 input was made with OpenCV INTER_LINEAR; Darknet's post-processing at .25 / .45.
    d = zooport.predict(model, str(asset("zoo/images/bus.jpg")), resize_interp="opencv", conf=0.25, iou=0.45)
    r = np.loadtxt(asset("golden/real/yolov3-tiny_bus/dets.txt")).reshape(-1, 6)
    x, y, w, h = r[:, 2] * 810, r[:, 3] * 1080, r[:, 4] * 810, r[:, 5] * 1080
    boxes = np.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], 1)
    err = _match(d, boxes, r[:, 1], r[:, 0].astype(int))
    assert err < 0.05


@pytest.mark.slow
def test_onnxruntime_backend_equals_torch():
    from zooport.inference.api import Predictor, as_image

    img, path = as_image(asset("zoo/images/bus.jpg"))
    runs = {}
    for be in ("torch", "onnxruntime"):
        runs[be] = Predictor(str(asset("zoo/yolov5/yolov5n.pt")), square=True, backend=be)(img, path)
    a, b = runs["torch"], runs["onnxruntime"]
    assert len(a) == len(b) == 4
    assert np.array_equal(a.classes, b.classes)
    assert np.abs(a.boxes - b.boxes).max() < 0.05 and np.abs(a.scores - b.scores).max() < 1e-4


# ------------------------------------------------------------------ no assets needed


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A small YOLOv5n with seeded random weights, saved as a native checkpoint (CLI input)."""
    import torch

    import zooport

    torch.manual_seed(0)
    m = zooport.create_yolov5("yolov5n", num_classes=3)
    m.names = ["cat", "dog", "bird"]
    with torch.no_grad():  # push every class score up so random weights give detections at conf 0.25
        m.model[-1].m[0].bias.fill_(3.0)
    p = tmp_path_factory.mktemp("m") / "tiny.pt"
    zooport.save_native(m.eval(), p)
    return p


def _images(d):
    import cv2

    rng = np.random.default_rng(0)
    cv2.imwrite(str(d / "a.jpg"), rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    cv2.imwrite(str(d / "b.png"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    (d / "broken.jpg").write_bytes(b"not a jpeg")
    (d / "broken.mp4").write_bytes(b"not a video either")
    v = cv2.VideoWriter(str(d / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, (80, 64))
    for k in range(7):
        v.write(np.full((64, 80, 3), 30 * k, np.uint8))
    v.release()


def test_cli_images_video_json_txt_and_bad_inputs(tmp_path, tiny_model, capsys):
    import cv2

    src = tmp_path / "in"
    src.mkdir()
    _images(src)
    out = tmp_path / "out"
    rc = main(["predict", str(tiny_model), str(src / "a.jpg"), str(src / "broken.jpg"), str(tmp_path / "nope.jpg"),
               str(src / "*.png"), str(src / "clip.mp4"), str(src / "broken.mp4"), "-o", str(out), "--imgsz", "64", "--save-json",
               "--save-txt", "--save-conf", "--no-progress"])
    cap = capsys.readouterr()
    assert rc == 1  # three unreadable inputs, reported and skipped; the rest written
    assert "broken.jpg" in cap.err and "nope.jpg" in cap.err and "broken.mp4" in cap.err
    assert "speed per image" in cap.out and "ms inference" in cap.out
    for name in ("a.png", "b.png"):
        im = cv2.imread(str(out / name))
        assert im is not None and im.shape[2] == 3
    assert cv2.imread(str(out / "a.png")).shape[:2] == (96, 128)
    c = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(c.get(cv2.CAP_PROP_FRAME_COUNT)) == 7
    n = 0
    while c.read()[0]:
        n += 1
    assert n == 7
    preds = json.loads((out / "predictions.json").read_text())
    assert [p["image"] for p in preds[:2]] == [str(src / "a.jpg"), str(src / "b.png")] and len(preds) == 9
    for p in preds:
        for d in p["detections"]:
            assert set(d) == {"box", "score", "class", "name"} and d["name"] == ["cat", "dog", "bird"][d["class"]]
            x1, y1, x2, y2 = d["box"]
            assert 0 <= x1 <= x2 and 0 <= y1 <= y2 and d["score"] > 0.25
    txt = (out / "labels" / "a.txt").read_text().splitlines()
    assert len(txt) == len(preds[0]["detections"]) > 0
    first = preds[0]["detections"][0]
    cls, cx, cy, w, h, s = txt[0].split()
    x1, y1, x2, y2 = first["box"]
    assert int(cls) == first["class"] and abs(float(cx) - (x1 + x2) / 2 / 128) < 1e-4
    assert abs(float(h) - (y2 - y1) / 96) < 1e-4 and abs(float(s) - first["score"]) < 1e-4
    assert (out / "labels" / "clip_6.txt").is_file()


def test_cli_errors(tmp_path, tiny_model, capsys):
    assert main(["predict", str(tiny_model)]) == 2
    assert "SOURCE" in capsys.readouterr().err
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["predict", str(tiny_model), str(f), "-o", str(f)]) == 2
    assert main(["predict", str(tmp_path / "none.pt"), str(f)]) == 2


def test_python_api_array_draw_and_json(tiny_model):
    import zooport

    img = np.random.default_rng(1).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    d = zooport.predict(str(tiny_model), img, imgsz=64, classes=[1])
    assert d.image is None and d.shape == (50, 70) and len(d) > 0 and set(d.classes.tolist()) == {1}
    assert (d.boxes[:, [0, 2]] <= 70).all() and (d.boxes[:, [1, 3]] <= 50).all()
    drawn = zooport.draw(img, d)
    assert drawn.shape == img.shape and drawn.dtype == np.uint8 and not np.array_equal(drawn, img)
    assert np.array_equal(d.draw(img), drawn)
    js = d.to_json()
    assert js["image"] is None and len(js["detections"]) == len(d)
    with pytest.raises(zooport.UsageError):
        zooport.predict(str(tiny_model), img.astype(np.float32))


def test_detections_formats_by_hand():
    from zooport.inference.detections import Detections

    d = Detections.from_array([[10, 20, 50, 60, 0.9, 2]], ["a", "b", "c"], image="x.jpg", shape=(100, 200))
    assert d.to_json() == {"image": "x.jpg", "detections": [{"box": [10.0, 20.0, 50.0, 60.0], "score": 0.9,
                                                               "class": 2, "name": "c"}]}
    assert d.to_yolo_txt() == "2 0.150000 0.400000 0.200000 0.400000\n"


def test_class_colours_stable_and_distinct():
    from zooport.inference.draw import class_color

    cols = [class_color(k) for k in range(80)]
    assert cols == [class_color(k) for k in range(80)]
    assert len(set(cols)) == 80
    assert all(0 <= v <= 255 for c in cols for v in c)


def test_letterbox_auto_minimal_rectangle():
    from zooport.eval.preprocess import letterbox

    img = np.zeros((1080, 810, 3), np.uint8)
    im, r, (dw, dh) = letterbox(img, (640, 640), scaleup=True, auto=True, stride=32)
    assert im.shape[:2] == (640, 480) and dw == 0 and dh == 0  # 810 * 640/1080 = 480, a multiple of 32
    im, r, (dw, dh) = letterbox(np.zeros((720, 1280, 3), np.uint8), (640, 640), scaleup=True, auto=True)
    assert im.shape[:2] == (384, 640) and dh == 12  # 360 -> next multiple of 32 is 384


def test_import_zooport_stays_light():
    code = ("import sys, zooport; zooport.__dict__.get('x'); "
            "import zooport.inference, zooport.cli.predict; "
            "bad=[m for m in ('torch','cv2','matplotlib') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("argv", [["predict"], ["dataset"], ["dataset", "convert"], ["dataset", "browse"],
                                  ["dataset", "stats"], ["analyze"], ["analyze", "model"], ["analyze", "anchors"],
                                  ["analyze", "features"], ["analyze", "assign"], ["analyze", "loss"]])
def test_every_new_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv + ["--help"])
    assert e.value.code == 0 and "usage: zooport" in capsys.readouterr().out


def test_cli_parser_stays_light():
    code = ("import sys; from zooport.cli.main import build_parser; build_parser(); "
            "bad=[m for m in ('torch','cv2','matplotlib','numpy') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mmdet_pipeline_is_the_verifiers():
    """MMDetection family: keep-ratio resize, normalisation, padding to 32, the model's own test_cfg; boxes in
    original pixels (the golden FCOS has random weights, so only the geometry is checked)."""
    import zooport
    from zooport.converters.mmdet.load import load_mmdet
    from zooport.inference.api import Predictor

    f = asset("golden/mmdet/fcos_r18s_fpn")
    m = load_mmdet(f / "fcos_r18s_fpn.pth", f / "config.json")
    p = Predictor(m, imgsz=320, conf=0.05, max_det=50)
    img = _read_image(asset("zoo/images/bus.jpg"))
    x, meta = p.preprocess(img)
    assert x.shape == (1, 3, 320, 256)  # 1080x810 -> 320x240, padded to a multiple of 32
    assert meta["img_shape"] == (320, 240)
    assert np.allclose(meta["scale_factor"], (240 / 810, 320 / 1080))
    d = p(img)
    assert 0 < len(d) <= 50 and (d.scores >= 0.05).all() and (d.classes < 80).all()
    # boxes come back in original pixels: the verifier's mmdet path on the same image gives the same rows
    import torch

    from zooport.eval.preprocess import preprocess_mmdet

    pre = dict(m.preprocess, resize_scale=[320, 320])
    xr, info = preprocess_mmdet(img, pre)
    ref = m.predict(torch.from_numpy(xr[None]), img_hw=info["img_shape"], scale_factor=info["scale_factor"])[0]
    ref = ref[ref[:, 4] >= 0.05][:50].numpy()
    assert np.allclose(np.sort(d.boxes, 0), np.sort(ref[:, :4], 0), atol=1e-3)
    assert d.boxes[:, 2].max() <= 810 + 1e-3 and d.boxes[:, 3].max() <= 1080 + 1e-3
    with pytest.raises(zooport.UsageError):
        Predictor(m, backend="onnxruntime")


def test_api_functions_are_not_shadowed_by_subpackages():
    """``zooport.predict`` / ``zooport.draw`` stay the functions after the implementation modules are imported
    (a subpackage named ``predict`` would replace the attribute on import)."""
    import zooport
    import zooport.inference.api  # noqa: F401
    import zooport.inference.draw  # noqa: F401

    assert callable(zooport.predict) and callable(zooport.draw) and callable(zooport.verify)
