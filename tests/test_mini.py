"""mmdetection-mini's own checkpoints: zooport against mini's own outputs (tests/golden/mini, see its README)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import asset, assert_close, read_f32, sha256
from mini_golden import (GOLDEN, assert_same_dets, checkpoint, index, meta, model_input, outputs, rows,
                         tensor_sha)
from zooport.converters.mini.keys import state_dict_keys
from zooport.converters.mini.load import load_mini, predict, raw_outputs
from zooport.errors import CheckpointError, ConfigError, UnsupportedError
from zooport.parsers.mini.config import load_mini_config, mini_arch

# yolov5s's test_cfg (score_thr 1e-7, 300 per image) sends ~126k (box, class) pairs through NMS: slow
FAST = ["yolov3_slim", "tiny_yolov3", "tiny_yolov4", pytest.param("yolov5s_slim", marks=pytest.mark.slow)]
KIND = {"yolov3_slim": "yolov3", "yolov4": "yolov4", "tiny_yolov3": "tiny_yolov3", "tiny_yolov4": "tiny_yolov4",
        "yolov5s_slim": "yolov5", "tiny_yolov3_real": "tiny_yolov3"}


def _parity(name, ck):
    arch = load_mini_config(GOLDEN / name / "config.py")
    assert arch.kind == KIND[name]
    model = load_mini(ck, GOLDEN / name / "config.py")
    x = model_input(name)
    with torch.no_grad():
        outs = raw_outputs(model, x)
    refs = outputs(name)
    assert len(outs) == len(refs)
    errs = [assert_close(o, r, what=f"{name} out{i}") for i, (o, r) in enumerate(zip(outs, refs))]
    m = meta(name)
    with torch.no_grad():
        dets, labels = predict(model, x, rescale=True, **m)
        dets0, labels0 = predict(model, x, rescale=False)
    assert_same_dets(dets, labels, GOLDEN / name / "dets.txt")
    assert_same_dets(dets0, labels0, GOLDEN / name / "dets_norescale.txt")
    return errs


@pytest.mark.parametrize("name", FAST)
def test_outputs_and_detections_equal_minis(name, tmp_path):
    _parity(name, checkpoint(name, tmp_path))


@pytest.mark.slow
def test_yolov4_full_width_equals_minis(tmp_path):
    _parity("yolov4", checkpoint("yolov4", tmp_path))


@pytest.mark.parametrize("name", ["yolov3_slim", "yolov4", "tiny_yolov3", "tiny_yolov4"])
def test_key_lists_are_minis(name):
    """zooport's key list of each model (Darknet order) holds exactly the keys of mini's detector."""
    golden = [r[0] for r in rows(GOLDEN / name / "keys.tsv")]
    ours = state_dict_keys(KIND[name])
    assert sorted(ours) == sorted(golden) and len(ours) == len(set(ours))
    if name.startswith("tiny"):  # backbone then head: the detector's own order is the converter's
        assert ours == golden


def test_shipped_checkpoint_is_legacy_format():
    p = GOLDEN / "yolov3_slim" / "yolov3_slim.pth"
    with open(p, "rb") as f:
        assert f.read(2) != b"PK"  # not a zip: torch 1.3's format, as mini's environment wrote it


def test_darknet_weights_to_mini_pth_is_minis_converter_and_back(tmp_path):
    """Real yolov3-tiny.weights: zooport's mini .pth holds exactly the tensors mini's own
    tools/darknet/tiny_yolov3.py wrote (digest.tsv: keys in order, dtypes, shapes, sha256), and the
    .weights written back from it are byte-identical to the original."""
    from zooport.converters.mini.darknet import save_mini_from_darknet, write_darknet_from_mini
    from zooport.converters.mmdet.load import read_checkpoint

    cfg, weights = asset("zoo/darknet/yolov3-tiny.cfg"), asset("zoo/darknet/yolov3-tiny.weights")
    out = tmp_path / "tiny.pth"
    assert save_mini_from_darknet(cfg, weights, out) == 70
    obj = torch.load(out, map_location="cpu", weights_only=True)
    sd = obj["state_dict"]
    digest = rows(GOLDEN / "tiny_yolov3_real" / "digest.tsv")
    assert list(sd) == [r[0] for r in digest]
    for (key, shape, dtype, sha) in digest:
        t = sd[key]
        assert ",".join(map(str, t.shape)) == shape and str(t.dtype).replace("torch.", "") == dtype, key
        assert tensor_sha(t) == sha, f"{key}: not the tensor mini's converter wrote"
    msd, m = read_checkpoint(out)
    arch = load_mini_config(GOLDEN / "tiny_yolov3_real" / "config.py")
    back = tmp_path / "back.weights"
    write_darknet_from_mini(msd, m, arch, back, str(out))
    assert sha256(back) == sha256(weights)
    _parity("tiny_yolov3_real", out)


def test_slim_darknet_yolov3_through_mini_matches_darknet(tmp_path):
    """The darknet-slim yolov3 (filters / 16 = mini's input_channels=2): Darknet .weights -> mini .pth ->
    native model from a mini config reproduces Darknet's own head inputs; the way back is byte-identical."""
    from zooport.converters.mini.darknet import save_mini_from_darknet, write_darknet_from_mini
    from zooport.converters.mmdet.load import read_checkpoint

    d = "golden/darknet-slim/yolov3"
    cfg, weights = asset(f"{d}/yolov3.cfg"), asset(f"{d}/yolov3.weights")
    out = tmp_path / "y3.pth"
    save_mini_from_darknet(cfg, weights, out)
    config = {"model": {"type": "SingleStageDetector", "backbone": {"type": "RRDarknet53", "input_channels": 2},
                        "neck": {"type": "RRDarkNeck", "input_channels": 2},
                        "bbox_head": {"type": "RRYolov3Head", "num_classes": 80, "in_channels": [32, 16, 8]}},
              "test_cfg": {"score_thr": 0.05}}
    arch = mini_arch(config)
    model = load_mini(out, arch)
    x = torch.from_numpy(read_f32(asset("golden/darknet-slim/input_bus_256.f32"), (1, 3, 256, 256)).copy())
    with torch.no_grad():
        outs = raw_outputs(model, x)
    for o, head in zip(outs, (82, 94, 106)):  # yolov3.cfg's [yolo] layers: strides 32, 16, 8
        ref = read_f32(asset(f"{d}/head{head:03d}_in.f32"), tuple(o.shape))
        assert_close(o, ref, what=f"head {head}")
    msd, m = read_checkpoint(out)
    back = tmp_path / "back.weights"
    write_darknet_from_mini(msd, m, arch, back, str(out))
    assert sha256(back) == sha256(weights)


def test_config_errors_name_the_key(tmp_path):
    base = (GOLDEN / "tiny_yolov4" / "config.py").read_text()
    p = tmp_path / "c.py"
    p.write_text(base.replace("'in_channels': [512, 256]", "'in_channels': [256, 256]"))
    with pytest.raises(UnsupportedError, match="bbox_head.in_channels"):
        load_mini_config(p)
    p.write_text(base.replace("RRTinyYolov4Head", "YOLOV3Head"))
    with pytest.raises(UnsupportedError, match="RR\\* YOLO models"):
        load_mini_config(p)
    y5 = (GOLDEN / "yolov5s_slim" / "config.py").read_text()
    p.write_text(y5.replace("'out_channels': [0.33, 0.125]", "'out_channels': [0.33, 0.25]"))
    with pytest.raises(ConfigError, match="out_channels"):
        load_mini_config(p)


def test_checkpoint_errors_name_the_key(tmp_path):
    sd = torch.load(GOLDEN / "yolov3_slim" / "yolov3_slim.pth", map_location="cpu", weights_only=True)["state_dict"]
    cfg = GOLDEN / "yolov3_slim" / "config.py"
    bad = dict(sd)
    key = "neck.layers.2.head_body_2.feature.3.layers.0.weight"
    del bad[key]
    torch.save({"state_dict": bad}, tmp_path / "a.pth")
    with pytest.raises(CheckpointError, match=key.replace(".", r"\.")):
        load_mini(tmp_path / "a.pth", cfg)
    bad = dict(sd)
    bad["backbone.layers.0.stage_1.layers.1.weight"] = torch.ones(5)
    torch.save({"state_dict": bad}, tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match="stage_1.layers.1.weight' has shape"):
        load_mini(tmp_path / "b.pth", cfg)
    bad = dict(sd, extra=torch.ones(1))
    torch.save({"state_dict": bad}, tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match="unused key .extra."):
        load_mini(tmp_path / "c.pth", cfg)


def test_mini_tiny_yolov3_pads_its_stride1_maxpool_with_zeros():
    """mini's RRTinyYolov3Backbone (ZeroPad2d + MaxPool2d) differs from Darknet at the border: max(x, 0)."""
    from zooport.model_defs.mini.layers import ZeroPadMaxPool

    x = -torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    y = ZeroPadMaxPool()([x])
    assert y.shape == x.shape and y[0, 0, 2, 2] == 0 and y[0, 0, 0, 0] == -1


def test_cli_mini_to_darknet_and_back_keeps_every_tensor(tmp_path, capsys):
    """``convert mmdet-mini --to darknet --cfg-out`` then ``convert darknet --to mmdet-mini``: the
    oracle-written yolov3_slim .pth comes back with the same keys, order and values."""
    from zooport.cli.main import main

    src = GOLDEN / "yolov3_slim" / "yolov3_slim.pth"
    cfg = GOLDEN / "yolov3_slim" / "config.py"
    w, c, back = tmp_path / "y.weights", tmp_path / "y.cfg", tmp_path / "y.pth"
    assert main(["convert", "mmdet-mini", str(src), "--config", str(cfg), "--to", "darknet", "-o", str(w),
                 "--cfg-out", str(c)]) == 0
    assert main(["convert", "darknet", str(c), str(w), "--to", "mmdet-mini", "-o", str(back)]) == 0
    assert "mmdet-mini" in capsys.readouterr().out
    a = torch.load(src, map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(back, map_location="cpu", weights_only=True)["state_dict"]
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    assert main(["convert", "mmdet-mini", str(src), "--config", str(GOLDEN / "yolov5s_slim" / "config.py"),
                 "--to", "darknet", "-o", str(tmp_path / "z.weights")]) == 2
    assert "zooport: error:" in capsys.readouterr().err


def test_darknet_writer_refuses_widths_mini_hard_codes(tmp_path):
    from zooport.converters.mini.darknet import darknet_to_mini_checkpoint

    d = "golden/darknet-slim/yolov4-tiny"
    with pytest.raises(UnsupportedError, match="hard-codes"):
        darknet_to_mini_checkpoint(asset(f"{d}/yolov4-tiny.cfg"), asset(f"{d}/yolov4-tiny.weights"))


def test_yolov5_v3_pt_to_mini_pth_is_minis_converter(tmp_path, capsys):
    """A YOLOv5 v3.0 checkpoint made by YOLOv5 v3.0's own code: ``convert yolov5 --to mmdet-mini`` writes
    exactly what mini's convert_yolov5_weights_step1.py + step2.py wrote (keys in order, fp16 dtypes,
    values: digest.tsv), and mini's config reads it back into a native model."""
    from zooport.cli.main import main
    from zooport.parsers.mini.config import MiniArch

    d = GOLDEN / "yolov5_v3_convert"
    out = tmp_path / "y5.pth"
    assert main(["convert", "yolov5", str(d / "yolov5s_w0625_v3.pt"), "--to", "mmdet-mini", "-o", str(out)]) == 0
    sd = torch.load(out, map_location="cpu", weights_only=True)["state_dict"]
    digest = rows(d / "digest.tsv")
    assert list(sd) == [r[0] for r in digest]
    for key, shape, dtype, sha in digest:
        t = sd[key]
        assert ",".join(map(str, t.shape)) == shape and str(t.dtype).replace("torch.", "") == dtype, key
        assert tensor_sha(t) == sha, f"{key}: not the tensor mini's converter wrote"
    arch = MiniArch(kind="yolov5", num_classes=80, strides=[32, 16, 8], coder="YOLOV5BBoxCoder",
                    anchors=[[(116, 90), (156, 198), (373, 326)], [(30, 61), (62, 45), (59, 119)],
                             [(10, 13), (16, 30), (33, 23)]], depth_multiple=0.33, width_multiple=0.0625)
    model = load_mini(out, arch)
    with torch.no_grad():
        assert [tuple(o.shape) for o in raw_outputs(model, torch.zeros(1, 3, 64, 64))] == \
            [(1, 255, 2, 2), (1, 255, 4, 4), (1, 255, 8, 8)]
    capsys.readouterr()


@pytest.mark.parametrize("name", ["tiny_yolov3", "yolov5s_slim"])
def test_onnx_export_of_a_mini_model_equals_minis_outputs(name, tmp_path):
    """The native model read from a mini checkpoint exports to ONNX (raw outputs); onnxruntime's
    outputs equal mini's own (tiny_yolov3 includes mini's zero-padded stride-1 maxpool)."""
    import onnxruntime as ort

    from zooport.export.onnx import export_onnx

    model = load_mini(checkpoint(name, tmp_path), GOLDEN / name / "config.py")
    x = model_input(name)
    p = export_onnx(model, tmp_path / f"{name}.onnx", imgsz=tuple(x.shape[-2:]), raw=True)
    sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    order = list(range(len(got)))[::-1] if name.startswith("yolov5") else [0, 1]  # mini: largest stride first
    for i, ref in enumerate(outputs(name)):
        assert_close(got[order[i]], ref, what=f"{name} onnx out{i}")


@pytest.mark.parametrize("name", ["tiny_yolov3", "yolov5s_slim"])
def test_native_checkpoint_keeps_minis_arithmetic(name, tmp_path):
    """Saved as zooport's native checkpoint and loaded back, the model still equals mini (tiny_yolov3: its
    zero-padded maxpool, which Darknet's arithmetic would change by up to ~3.5 on the real weights)."""
    import zooport
    from zooport.converters.native import save_native

    model = load_mini(checkpoint(name, tmp_path), GOLDEN / name / "config.py")
    save_native(model, tmp_path / "n.pt", "pt")
    back = zooport.load(tmp_path / "n.pt")
    x = model_input(name)
    with torch.no_grad():
        outs = raw_outputs(back, x)
    for i, (o, ref) in enumerate(zip(outs, outputs(name))):
        assert_close(o, ref, what=f"{name} reloaded out{i}")
    with torch.no_grad():
        dets, labels = predict(back, x, rescale=True, **meta(name))
    assert_same_dets(dets, labels, GOLDEN / name / "dets.txt")


def test_mmdet_reader_points_mini_models_to_their_reader(capsys):
    from zooport.cli.main import main

    ck, cfg = GOLDEN / "yolov3_slim" / "yolov3_slim.pth", GOLDEN / "yolov3_slim" / "config.py"
    assert main(["convert", "mmdet", str(ck), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "mmdetection-mini" in err and "convert mmdet-mini" in err and err.startswith("zooport: error:")


def test_mini_yolov5_back_to_the_v3_state_dict(tmp_path, capsys):
    """``convert yolov5 --to mmdet-mini`` then ``convert mmdet-mini --to yolov5``: every tensor of the v3.0
    checkpoint's model (keys, order, fp16 dtypes, values, Detect's anchors and anchor_grid) comes back."""
    from zooport.cli.main import main
    from zooport.parsers.yolov5.ckpt import parse_yolov5_checkpoint

    d = GOLDEN / "yolov5_v3_convert"
    pt = d / "yolov5s_w0625_v3.pt"
    cfg = tmp_path / "mini.py"
    cfg.write_text((GOLDEN / "yolov5s_slim" / "config.py").read_text().replace("0.125", "0.0625"))
    mini, back = tmp_path / "m.pth", tmp_path / "back.pt"
    assert main(["convert", "yolov5", str(pt), "--to", "mmdet-mini", "-o", str(mini)]) == 0
    assert main(["convert", "mmdet-mini", str(mini), "--config", str(cfg), "--to", "yolov5", "-o", str(back)]) == 0
    ours = torch.load(back, map_location="cpu", weights_only=True)
    ref = parse_yolov5_checkpoint(pt, float_dtype=None).state_dict
    assert list(ours) == list(ref)
    for k, v in ref.items():
        assert ours[k].dtype == v.dtype and torch.equal(ours[k], v), k
    capsys.readouterr()
