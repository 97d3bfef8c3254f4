"""``zooport export onnx`` on the command line (Darknet cfg + generated weights; no assets needed)."""
from __future__ import annotations

import json

import onnx
import pytest

from zooport.cli.main import main


@pytest.fixture(scope="module")
def darknet_pair(tmp_path_factory):
    from zooport.cli.demo import bundled_cfg
    from zooport.converters.darknet.load import load_darknet, save_darknet_weights

    d = tmp_path_factory.mktemp("cli")
    m = load_darknet(bundled_cfg(), random_weights=True, seed=1)
    save_darknet_weights(m, d / "t.weights")
    return str(bundled_cfg()), str(d / "t.weights"), d


@pytest.mark.slow
def test_export_default_with_check(darknet_pair, capsys):
    cfg, w, d = darknet_pair
    out = d / "a.onnx"
    assert main(["export", "onnx", cfg, w, "-o", str(out), "--imgsz", "128", "192", "--check"]) == 0
    text = capsys.readouterr().out
    assert "ok   output" in text and "FAIL" not in text
    m = onnx.load(str(out))
    props = {p.key: p.value for p in m.metadata_props}
    assert json.loads(props["input_size"]) == [128, 192]
    assert json.loads(props["source"])["format"] == "darknet"
    assert len(json.loads(props["source"])["sha256"]) == 64
    assert len(json.loads(props["names"])) == 80
    assert [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 128, 192]


@pytest.mark.slow
def test_export_dynamic_nms_half_check(darknet_pair, capsys):
    cfg, w, d = darknet_pair
    for extra in (["--dynamic", "--raw"], ["--nms", "--max-det", "20", "--batch", "2"], ["--half"]):
        out = d / f"{'_'.join(extra)}.onnx"
        assert main(["export", "onnx", cfg, w, "-o", str(out), "--imgsz", "128", "--check", *extra]) == 0, extra
        assert "FAIL" not in capsys.readouterr().out
        assert out.exists()


@pytest.mark.parametrize("argv,msg", [
    (["--imgsz", "0"], "--imgsz 0"),
    (["--opset", "7"], "opset"),
    (["--imgsz", "1", "2", "3"], "--imgsz"),
])
def test_export_bad_args_exit_2_no_file(darknet_pair, capsys, argv, msg):
    cfg, w, d = darknet_pair
    out = d / "bad.onnx"
    assert main(["export", "onnx", cfg, w, "-o", str(out), *argv]) == 2
    assert msg in capsys.readouterr().err
    assert not out.exists() and not list(d.glob(".bad.onnx*"))


def test_export_missing_model_exit_2(tmp_path, capsys):
    assert main(["export", "onnx", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "nope.pt" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_nms_and_raw_are_exclusive(darknet_pair):
    cfg, w, d = darknet_pair
    with pytest.raises(SystemExit) as e:
        main(["export", "onnx", cfg, w, "-o", str(d / "y.onnx"), "--nms", "--raw"])
    assert e.value.code == 2


def _detections(text: str) -> int:
    import re

    m = re.search(r"ok   (\d+) detection\(s\) at conf", text)
    return int(m.group(1)) if m else 0


def test_nms_check_runs_on_the_bundled_image(darknet_pair, capsys):
    """--nms --check: parity before NMS and detection by detection on the bundled image, not on noise."""
    from zooport.cli.demo import bundled_cfg

    out = darknet_pair[2] / "nmscheck.onnx"
    assert main(["export", "onnx", str(bundled_cfg()), "--random-weights", "-o", str(out), "--imgsz", "64",
                 "--nms", "--check"]) == 0
    text = capsys.readouterr().out
    assert "bundled check image (1, 3, 64, 64)" in text and "FAIL" not in text
    assert "ok   before NMS: output" in text
    assert _detections(text) > 0


@pytest.mark.slow
def test_nms_check_without_detections_fails_for_trained_weights(darknet_pair, tmp_path):
    """A file loaded from .weights counts as trained: an NMS check that compared nothing is a FAIL."""
    from zooport.converters.darknet.load import load_darknet
    from zooport.export.checks import check_export
    from zooport.export.onnx import export_onnx

    cfg, w, _ = darknet_pair
    model = load_darknet(cfg, w)
    p = export_onnx(model, tmp_path / "n.onnx", imgsz=64, nms=True, conf=0.99999999)
    lines = check_export(model, p, mode="nms", conf=0.99999999)
    assert lines[-1].startswith("  FAIL no detection at conf"), lines
    assert all(line.startswith("  ok") for line in lines[1:-1]), lines  # the parity itself holds


@pytest.mark.slow
def test_nms_check_real_weights_finds_objects(capsys):
    """yolov3-tiny's real weights find objects on the bundled image (stop sign, clock)."""
    from helpers import asset

    cfg, w = asset("zoo/darknet/yolov3-tiny.cfg"), asset("zoo/darknet/yolov3-tiny.weights")
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        assert main(["export", "onnx", str(cfg), str(w), "-o", f"{d}/t.onnx", "--nms", "--check"]) == 0
    text = capsys.readouterr().out
    assert "FAIL" not in text and _detections(text) >= 2, text
