"""``zooport demo``: runs offline, writes its files, and fails (exit 1) when parity fails."""
from __future__ import annotations

import pytest

from zooport.cli.main import main


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    import io
    import contextlib

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["demo", "-o", str(out), "--imgsz", "256"])
    return rc, buf.getvalue(), out


@pytest.mark.slow
def test_demo_passes_and_reports(demo_run):
    rc, text, out = demo_run
    print(text)
    assert rc == 0, text
    assert "FAIL" not in text and "zooport demo: PASS" in text
    for needle in ("byte-identical", "parity default:output", "parity raw:raw0", "parity nms:boxes", "max abs err"):
        assert needle in text, needle
    names = {p.name for p in out.iterdir()}
    assert {"yolov3-tiny.weights", "yolov3-tiny.roundtrip.weights", "yolov3-tiny.safetensors",
            "yolov3-tiny.default.onnx", "yolov3-tiny.raw.onnx", "yolov3-tiny.nms.onnx"} <= names
    a, b = (out / "yolov3-tiny.weights").read_bytes(), (out / "yolov3-tiny.roundtrip.weights").read_bytes()
    assert a == b and len(a) > 1_000_000


@pytest.mark.slow
def test_demo_is_deterministic(demo_run, tmp_path):
    from zooport.cli.demo import bundled_cfg
    from zooport.converters.darknet.load import load_darknet, save_darknet_weights

    m = load_darknet(bundled_cfg(), random_weights=True, seed=0)
    save_darknet_weights(m, tmp_path / "w.weights")
    assert (tmp_path / "w.weights").read_bytes() == (demo_run[2] / "yolov3-tiny.weights").read_bytes()


@pytest.mark.slow
def test_demo_exits_1_when_parity_fails(monkeypatch, capsys, tmp_path):
    from zooport.export import checks

    real = checks.compare

    def broken(ours, refs, rel=1e-4):  # pretend onnxruntime drifted
        return [checks.OutputParity(r.name, r.shape, r.max_abs_err + 1.0, r.tol) for r in real(ours, refs, rel)]

    monkeypatch.setattr(checks, "compare", broken)
    assert main(["demo", "--imgsz", "128"]) == 1
    assert "zooport demo: FAIL" in capsys.readouterr().out


def test_demo_bad_imgsz(capsys):
    assert main(["demo", "--imgsz", "100"]) == 2
    assert "multiple of 32" in capsys.readouterr().err
