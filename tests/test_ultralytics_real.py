"""YOLOv8n / YOLO11n checkpoints written by the `ultralytics` package itself (golden/ultralytics):
safe loading, per-level raw outputs, decode, NMS, parameter counts, state-dict round trip, ONNX."""
from __future__ import annotations

import csv
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from helpers import asset, assert_close, read_f32

MODELS = ["yolov8n", "yolo11n"]
_CACHE: dict = {}


def _model(name):
    if name not in _CACHE:
        from zooport.converters.ultralytics.load import load_ultralytics

        _CACHE[name] = load_ultralytics(asset(f"golden/ultralytics/{name}/{name}.pt"))
    return _CACHE[name]


def _bus():
    return torch.from_numpy(read_f32(asset("golden/real/yolov5n_bus/input_640.f32"), (1, 3, 640, 640)).copy())


def _outputs(name):
    """(raw, decoded, shared) of the model on bus, computed once per model."""
    key = name + ":out"
    if key not in _CACHE:
        m = _model(name)
        with torch.no_grad():
            raw = m.raw(_bus())
            dec = m.detect.decode(raw)
            shared = m.eval()(_bus())
        _CACHE[key] = raw, dec, shared
    return _CACHE[key]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_raw_decoded_and_class_rows_match_ultralytics(name):
    raw, dec, shared = _outputs(name)
    errs = []
    for k, (r, hw) in enumerate(zip(raw, (80, 40, 20))):
        ref = read_f32(asset(f"golden/ultralytics/{name}/raw{k}.f32"), (1, 144, hw, hw))
        errs.append(assert_close(r, ref, 1e-4, f"{name} raw{k}"))
    box = read_f32(asset(f"golden/ultralytics/{name}/decoded_box.f32"), (1, 4, 8400))
    errs.append(assert_close(dec[:, :4], box, 1e-4, f"{name} decoded boxes"))
    # class rows are the sigmoid of the raw class channels (channels 64..143), level by level
    cls_ref = np.concatenate([read_f32(asset(f"golden/ultralytics/{name}/raw{k}.f32"), (1, 144, hw, hw))
                              [:, 64:].reshape(1, 80, -1) for k, hw in enumerate((80, 40, 20))], 2)
    cls_ref = 1.0 / (1.0 + np.exp(-cls_ref.astype(np.float64)))
    errs.append(assert_close(dec[:, 4:], cls_ref, 1e-4, f"{name} class rows"))
    # the shared (B, N, 4+1+nc) form: same numbers, objectness slot exactly 1
    assert shared.shape == (1, 8400, 85)
    assert torch.equal(shared[..., 4], torch.ones(1, 8400))
    assert torch.equal(shared[..., :4], dec[:, :4].transpose(1, 2))
    assert torch.equal(shared[..., 5:], dec[:, 4:].transpose(1, 2))
    print(f"{name}: max abs errors raw/box/cls {errs}")


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_nms_reproduces_dets(name):
    from zooport.postprocess import non_max_suppression, non_max_suppression_anchor_free

    ref = np.fromfile(asset(f"golden/ultralytics/{name}/dets.f32"), "<f4").reshape(-1, 6)
    txt = np.loadtxt(asset(f"golden/ultralytics/{name}/dets.txt"), ndmin=2)
    assert np.abs(txt - ref).max() < 1e-4
    _, dec, shared = _outputs(name)
    for dets in (non_max_suppression_anchor_free(dec, 0.25, 0.45, multi_label=False)[0],
                 non_max_suppression(shared, 0.25, 0.45)[0]):
        d = dets.numpy()
        assert d.shape == ref.shape, (d.shape, ref.shape)
        assert np.array_equal(d[:, 5], ref[:, 5]), (d[:, 5], ref[:, 5])
        assert np.abs(d[:, :4] - ref[:, :4]).max() < 0.01
        assert np.abs(d[:, 4] - ref[:, 4]).max() < 1e-4


def _flops_rows():
    with open(asset("golden/ultralytics/flops.tsv"), encoding="utf-8") as f:
        return {(r["model"], r["fused"]): r for r in csv.DictReader(f, delimiter="\t")}


@pytest.mark.parametrize("name", MODELS)
def test_parameter_counts_equal_model_info(name):
    import copy

    rows = _flops_rows()
    m = copy.deepcopy(_model(name))
    assert sum(p.numel() for p in m.parameters()) == int(rows[(name, "0")]["parameters"])
    m.fuse()
    assert sum(p.numel() for p in m.parameters()) == int(rows[(name, "1")]["parameters"])


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_round_trip_exact_and_strict(name):
    from zooport.converters.ultralytics.load import from_ultralytics_state_dict, to_ultralytics_state_dict
    from zooport.errors import CheckpointError
    from zooport.model_defs.ultralytics.model import UltralyticsModel
    from zooport.parsers.ultralytics.ckpt import parse_ultralytics_checkpoint

    m = _model(name)
    sd = to_ultralytics_state_dict(m)
    # exactly the tensors the pickled DetectionModel holds, under its keys
    ck = parse_ultralytics_checkpoint(asset(f"golden/ultralytics/{name}/{name}.pt"))
    assert list(sd) == list(ck.state_dict)
    assert all(torch.equal(sd[k], ck.state_dict[k]) for k in sd)
    back = UltralyticsModel.from_native(m.native_arch(), m.meta)
    back.load_state_dict(from_ultralytics_state_dict(back, sd), strict=True)
    own = m.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in back.state_dict().items())
    extra = dict(sd, **{"model.0.extra": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="unused key 'model.0.extra'"):
        from_ultralytics_state_dict(back, extra)
    short = {k: v for k, v in sd.items() if not k.endswith("dfl.conv.weight")}
    with pytest.raises(CheckpointError, match="missing key .*dfl.conv.weight"):
        from_ultralytics_state_dict(back, short)


def test_head_generations_told_apart_from_modules():
    assert _model("yolov8n").source["head"] == "v8" and _model("yolo11n").source["head"] == "v11"
    det8, det11 = _model("yolov8n").detect, _model("yolo11n").detect
    assert det8.cv3[0][0].conv.groups == 1
    assert det11.cv3[0][0][0].conv.groups == 64  # depthwise 3x3 on the 64-channel P3 input
    m = _model("yolo11n")
    assert m.names[0] == "person" and m.stride == [8, 16, 32] and m.input_size == [640, 640]
    assert m.preprocess["mode"] == "letterbox" and m.preprocess["pad_value"] == 114


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_onnx_equals_pytorch(name, tmp_path):
    import json

    import onnx
    import onnxruntime as ort

    from zooport.export.onnx import export_onnx

    m = _model(name)
    x = _bus()
    p = export_onnx(m, tmp_path / f"{name}.onnx")
    sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"images": x.numpy()})[0]
    with torch.no_grad():
        ref = m(x).numpy()
    err = assert_close(out, ref, 1e-4, f"{name} onnx")
    import copy

    with torch.no_grad():  # the export folds Conv+BN: report the gap to the same fused model too
        err_fused = assert_close(out, copy.deepcopy(m).fuse()(x), 1e-4, f"{name} onnx vs fused")
    props = {q.key: q.value for q in onnx.load(str(p)).metadata_props}
    assert json.loads(props["names"])[0] == "person" and json.loads(props["stride"]) == [8, 16, 32]
    pn = export_onnx(m, tmp_path / f"{name}_nms.onnx", nms=True, conf=0.25, iou=0.45)
    s2 = ort.InferenceSession(str(pn), providers=["CPUExecutionProvider"])
    num, boxes, scores, classes = s2.run(None, {"images": x.numpy()})
    ref_d = np.fromfile(asset(f"golden/ultralytics/{name}/dets.f32"), "<f4").reshape(-1, 6)
    n = int(num[0, 0])
    assert n == len(ref_d)
    assert np.array_equal(classes[0, :n], ref_d[:, 5].astype(np.int64))
    assert np.abs(boxes[0, :n] - ref_d[:, :4]).max() < 0.01
    print(f"{name}: onnx max abs error {err:.3g} (vs fused PyTorch {err_fused:.3g})")


@pytest.mark.slow
def test_loads_without_importing_ultralytics(tmp_path):
    """A fresh interpreter with a booby-trapped `ultralytics` package first on sys.path."""
    paths = [str(asset(f"golden/ultralytics/{n}/{n}.pt")) for n in MODELS]
    trap = tmp_path / "trap" / "ultralytics"
    trap.mkdir(parents=True)
    (trap / "__init__.py").write_text(f"open({str(tmp_path / 'IMPORTED')!r}, 'w').close()\n")
    code = textwrap.dedent(f"""
        import sys
        seen = []
        sys.addaudithook(lambda ev, a: seen.append(a[0]) if ev == "import" and
                         str(a[0]).split(".")[0] == "ultralytics" else None)
        sys.path.insert(0, {str(trap.parent)!r})
        import zooport
        for p in {paths!r}:
            m = zooport.load(p)
            assert type(m).__module__ == "zooport.model_defs.ultralytics.model", type(m)
        bad = [k for k in sys.modules if k.split(".")[0] == "ultralytics"]
        assert not seen and not bad, (seen, bad)
        print("CLEAN")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "CLEAN" in r.stdout, r.stderr[-2000:]
    assert not (tmp_path / "IMPORTED").exists()
