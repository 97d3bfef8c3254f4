"""One implementation of each thing, by behaviour: the names-file reader and the one ``names=`` resolution, the
strict state-dict check, the MMDetection <-> Darknet key mapping. No assets needed."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import zooport

PKG = Path(zooport.__file__).resolve().parent


def test_names_file_reader_rules(tmp_path):
    from zooport.parsers.names import read_names

    (tmp_path / "ok.names").write_bytes(b"\xef\xbb\xbfa\r\n\r\n b \r\n")
    assert read_names(tmp_path / "ok.names") == ["a", "b"]
    (tmp_path / "bin.names").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "empty.names").write_text(" \n")
    for bad in ("bin.names", "empty.names", "missing.names", "."):
        with pytest.raises(zooport.ParseError):
            read_names(tmp_path / bad)


def test_resolve_names_takes_a_list_a_tuple_or_a_file(tmp_path):
    from zooport.parsers.names import resolve_names

    (tmp_path / "two.names").write_text("cat\ndog\n")
    assert resolve_names(None) is None
    assert resolve_names(["cat", "dog"]) == resolve_names(("cat", "dog")) == resolve_names(tmp_path / "two.names") \
        == resolve_names(str(tmp_path / "two.names")) == ["cat", "dog"]
    for bad in ([], 3, {"a": 1}):
        with pytest.raises(zooport.UsageError, match="names"):
            resolve_names(bad)


def test_one_strict_state_dict_check():
    from zooport.converters import native

    m = torch.nn.Linear(2, 3)
    sd = {"weight": torch.ones(3, 2), "bias": torch.zeros(3)}
    native.load_state_dict_strict(m, sd, "x", assign=True)
    assert m.weight.data_ptr() == sd["weight"].data_ptr()  # assigned, not copied
    with pytest.raises(zooport.CheckpointError, match=r"x: key 'bias' has shape \(4,\)"):
        native.load_state_dict_strict(m, {"weight": torch.ones(3, 2), "bias": torch.zeros(4)}, "x")
    with pytest.raises(zooport.CheckpointError, match="missing key 'bias'"):
        native.load_state_dict_strict(m, {"weight": torch.ones(3, 2)}, "x")


def test_one_mmdet_darknet_mapping(monkeypatch):
    """Both directions and the cfg-free payload go through the one per-conv key table."""
    from zooport.converters.mmdet import darknet_bridge as md
    from zooport.parsers.darknet.cfg import parse_cfg
    from zooport.parsers.darknet.plan import build_plan

    calls = []
    real = md._conv_keys
    monkeypatch.setattr(md, "_conv_keys", lambda *a: calls.append(a) or real(*a))
    plan = build_plan(parse_cfg(PKG / "cfgs" / "darknet" / "yolov3.cfg"))
    for fn in (lambda: md.darknet_payload({}), lambda: md.mmdet_to_darknet_state_dict({}, plan)):
        calls.clear()
        with pytest.raises(zooport.CheckpointError, match=r"missing keys \['backbone.conv1.bn.bias'"):
            fn()
        assert calls, fn
    assert md._name_map("p", True)["bn.running_var"] == "p.bn.running_var"
    assert md._name_map("p", False) == {"conv.bias": "p.bias", "conv.weight": "p.weight"}


def test_check_state_dict_messages():
    from zooport.converters.strict import check_state_dict

    want = {"a": (2,), "b": (3, 1), "c": None}
    check_state_dict(want, {"a": torch.zeros(2), "b": torch.zeros(3, 1), "c": torch.zeros(7)}, "f.pt")
    with pytest.raises(zooport.CheckpointError, match=r"^f\.pt: state dict does not match the model: missing key 'b'$"):
        check_state_dict(want, {"a": torch.zeros(2), "c": 1}, "f.pt")
    with pytest.raises(zooport.CheckpointError, match=r"unused keys \['x', 'y'\] \(the model has no such tensor\)"):
        check_state_dict(want, {"a": torch.zeros(2), "b": torch.zeros(3, 1), "c": 0, "x": 0, "y": 0}, "f.pt")
    with pytest.raises(zooport.CheckpointError, match=r"key 'model\.b' has shape \(3,\), the model expects \(3, 1\)"):
        check_state_dict(want, {"a": torch.zeros(2), "b": (3,), "c": 0}, "f.pt", show=lambda k: "model." + k)
    many = {f"k{i}": None for i in range(9)}
    with pytest.raises(zooport.WeightsError, match=r"missing keys \['k0', 'k1', 'k2', 'k3', 'k4'\] \.\.\. \(9 in all\)"):
        check_state_dict(many, {}, "w", error=zooport.WeightsError)


def test_every_loader_uses_the_one_strict_check(monkeypatch, tmp_path):
    """Native checkpoints, Darknet weights written from a state dict, YOLOv5 / Ultralytics state dicts
    and mmdetection-mini's Darknet layout all go through converters.strict.check_state_dict."""
    from zooport.converters import native, strict
    from zooport.converters.darknet.weights import state_dict_to_buffer
    from zooport.converters.yolov5.load import from_yolov5_state_dict, to_yolov5_state_dict
    from zooport.model_defs.yolov5.create import create_yolov5
    from zooport.parsers.darknet.cfg import parse_cfg
    from zooport.parsers.darknet.plan import build_plan

    seen = []
    real = strict.check_state_dict
    monkeypatch.setattr(strict, "check_state_dict", lambda *a, **k: seen.append(a[2]) or real(*a, **k))
    m = torch.nn.Linear(2, 3)
    native.load_state_dict_strict(m, m.state_dict(), "native")
    plan = build_plan(parse_cfg(PKG / "cfgs" / "darknet" / "yolov3-tiny.cfg"))
    sd = {f"layers.{lp.index}.{n}": torch.zeros(s) for lp in plan for n, s in lp.params}
    assert state_dict_to_buffer(plan, sd).size == sum(v.numel() for v in sd.values())
    y = create_yolov5("yolov5n", num_classes=2)
    from_yolov5_state_dict(y, to_yolov5_state_dict(y), "yolov5")
    assert seen == ["native", "the Darknet weights to write", "yolov5"]


def test_one_pairwise_iou_numpy_and_torch():
    import numpy as np

    from zooport.postprocess.core import box_iou

    a = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [3, 3, 3, 3]], np.float64)
    b = np.array([[0, 0, 10, 10], [10, 10, 20, 20], [3, 3, 3, 3]], np.float64)
    got = box_iou(a, b)
    assert got[0, 0] == 1.0 and got[1, 0] == 25 / 175 and got[0, 1] == 0.0 and np.isnan(got[2, 2])
    assert box_iou(a, b, eps=1e-7)[1, 0] == 25 / (175 + 1e-7) and box_iou(a, b, eps=1e-7)[2, 2] == 0.0
    t = box_iou(torch.tensor(a), torch.tensor(b), eps=1e-6, clamp=True).numpy()
    assert t[1, 0] == 25 / 175 and t[2, 2] == 0.0  # empty boxes: 0 / max(0, eps)
    # the users of the one implementation
    from zooport.analysis.assign import box_iou as assign_iou
    from zooport.eval.precision import match_image
    from zooport.model_defs.mmdet.paa import box_iou as paa_iou

    assert np.array_equal(assign_iou(a, b), got, equal_nan=True)
    assert torch.equal(paa_iou(torch.tensor(a), torch.tensor(b)), torch.tensor(t))
    dets = np.array([[0, 0, 10, 10, 0.9, 1], [6, 6, 16, 16, 0.8, 1]])  # IoU 1 and 81 / 119 = 0.68
    assert match_image(a[:2], [1, 1], dets, 0.7).tolist() == [True, False]
    assert match_image(a[:2], [1, 1], dets, 0.6).tolist() == [True, True]


def test_one_preprocessing_entry_point(monkeypatch, tmp_path):
    """predict (Predictor.preprocess) and verify (the batch loader) both take their pipeline from
    zooport.transforms.from_meta."""
    import cv2
    import numpy as np

    import zooport.transforms as T
    from zooport.eval.data import ImageRecord
    from zooport.eval.runner import _load_one
    from zooport.inference.api import Predictor
    from zooport.model_defs.yolov5.create import create_yolov5

    seen = []
    real = T.from_meta
    monkeypatch.setattr(T, "from_meta", lambda *a, **k: seen.append((k.get("mode"), k["purpose"])) or real(*a, **k))
    img = np.full((48, 80, 3), 90, np.uint8)
    m = create_yolov5("yolov5n", num_classes=2).eval()
    x, to_image = Predictor(m, imgsz=64).preprocess(img)
    # 80x48 -> 64x38 (gain 0.8), padded by 13 above and below to 64x64 (detect.py's minimal rectangle)
    assert x.shape == (1, 3, 64, 64)
    assert np.allclose(to_image(np.array([[0, 13, 64, 51]], np.float32)), [[0, 0, 80, 47.5]])
    cv2.imwrite(str(tmp_path / "a.png"), img)
    rec = ImageRecord(key=1, path=tmp_path / "a.png", height=48, width=80)
    x2, fn, hw, _ = _load_one(rec, "letterbox", (64, 96), 64, m.preprocess)
    assert x2.shape == (3, 64, 96) and hw == (48, 80)
    assert seen == [("letterbox", "predict"), ("letterbox", "val")]


def test_one_yolo_row_walk_route_and_stride_probe(monkeypatch):
    """YOLOv5 and Ultralytics architectures are walked, routed and stride-probed by model_defs.yolo_rows."""
    import zooport.model_defs.ultralytics.build as UB
    import zooport.model_defs.yolo_rows as R
    import zooport.model_defs.yolov5.parse as YP
    from zooport.errors import ConfigError

    calls = {"rows": [], "route": 0, "probe": 0}
    real_rows, real_route, real_probe = R.yaml_rows, R.route, R.probe_strides

    def rows(d, depth, what):
        calls["rows"].append(what)
        return real_rows(d, depth, what)

    def route(*a):
        calls["route"] += 1
        return real_route(*a)

    def probe(*a, **k):
        calls["probe"] += 1
        return real_probe(*a, **k)

    for mod in (YP, UB):
        monkeypatch.setattr(mod, "yaml_rows", rows)
    monkeypatch.setattr(UB, "probe_strides", probe)
    monkeypatch.setattr(R, "probe_strides", probe)
    monkeypatch.setattr(R, "route", route)
    from zooport.model_defs.yolov5.create import create_yolov5

    y5 = create_yolov5("yolov5n", num_classes=2)
    u8 = UB.create_ultralytics("yolov8n", num_classes=2)
    assert y5.stride == [8, 16, 32] and u8.stride == [8, 16, 32]
    assert "architecture" in calls["rows"] and "Ultralytics yaml" in calls["rows"] and calls["probe"] >= 2
    n = calls["route"]
    with torch.no_grad():
        y5.raw(torch.zeros(1, 3, 64, 64)), u8.raw(torch.zeros(1, 3, 64, 64))
    assert calls["route"] == n + 2
    # the shared rules
    assert [r[2] for r in real_rows({"backbone": [[-1, 3, "C3", [64]], [-1, 1, "Conv", [64]]], "head": []}, 0.33, "x")] \
        == [1, 1]
    assert R.from_channels([16, 32], 2, [-1, 0], "w") == [32, 16] and R.from_channels([], 0, -1, "w", 3) == [3]
    with pytest.raises(ConfigError, match=r"w: 'from' index 5 points outside layers 0\.\.1"):
        R.from_channels([16, 32], 2, [-1, 5], "w")
    with pytest.raises(ConfigError, match=r"x layer 0: expected \[from, number, module, args\]"):
        list(real_rows({"backbone": [[-1, 1, "Conv"]], "head": []}, 1.0, "x"))


@pytest.mark.parametrize("cfg", ["yolov3-tiny.cfg", "yolov4-tiny.cfg", "yolov2.cfg", "yolov4.cfg"])
def test_darknet_modules_read_the_plan_not_the_cfg(cfg):
    """Every Darknet module takes its settings from the parsed LayerPlan.attrs: with each layer's cfg
    section replaced by one whose option reads fail, the same model is built."""
    import dataclasses

    from zooport.model_defs.darknet.model import DarknetModel
    from zooport.parsers.darknet.cfg import parse_cfg
    from zooport.parsers.darknet.plan import build_plan

    class NoReads:
        def __init__(self, sec):
            self.path, self.line, self.type = sec.path, sec.line, sec.type

        def __getattr__(self, name):
            raise AssertionError(f"a module read the cfg section again ({name})")

    net = parse_cfg(PKG / "cfgs" / "darknet" / cfg)
    plan = build_plan(net)
    blind = [dataclasses.replace(lp, section=NoReads(lp.section)) for lp in plan]
    a, b = DarknetModel(net, plan), DarknetModel(net, blind)
    assert [type(m).__name__ for m in a.layers] == [type(m).__name__ for m in b.layers]
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}
