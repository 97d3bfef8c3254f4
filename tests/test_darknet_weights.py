"""Darknet .weights reader/writer: byte-identical round trips, exact accounting errors, one-copy loading."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import asset, sha256

from zooport.converters.darknet.load import load_darknet, read_weights, save_darknet_weights
from zooport.converters.darknet.weights import buffer_to_state_dict, state_dict_to_buffer
from zooport.errors import ParseError, WeightsError
from zooport.parsers.darknet.cfg import parse_cfg
from zooport.parsers.darknet.plan import build_plan, weights_float_count

from test_darknet_cfg import SLIM

TINY_SHA = "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c"

# 2 conv layers (BN + plain), a per_feature shortcut and a connected layer: every storage rule once
SMALL_CFG = """[net]
width=8
height=8
channels=3
[convolutional]
batch_normalize=1
filters=4
size=3
pad=1
activation=leaky
[convolutional]
filters=4
size=1
activation=linear
[shortcut]
from=-2
weights_type=per_feature
[connected]
output=3
activation=linear
"""
SMALL_FLOATS = 4 * 4 + 4 * 3 * 9 + 4 + 16 + 2 + 3 + 3 * 256


@pytest.fixture
def small(tmp_path):
    cfg = tmp_path / "small.cfg"
    cfg.write_text(SMALL_CFG)
    plan = build_plan(parse_cfg(cfg))
    assert weights_float_count(plan) == SMALL_FLOATS
    return cfg, plan


def write_file(path, floats, major=0, minor=2, revision=5, seen=1234):
    seen_fmt = "<Q" if major * 10 + minor >= 2 else "<I"
    path.write_bytes(struct.pack("<3i", major, minor, revision) + struct.pack(seen_fmt, seen) +
                     np.asarray(floats, dtype="<f4").tobytes())
    return path


# -- real files ----------------------------------------------------------------------------------------------
def test_real_yolov3_tiny_round_trip_byte_identical(tmp_path):
    cfg, weights = asset("zoo/darknet/yolov3-tiny.cfg"), asset("zoo/darknet/yolov3-tiny.weights")
    assert sha256(weights) == TINY_SHA
    plan = build_plan(parse_cfg(cfg))
    header, sd = read_weights(weights, plan)
    assert header == {"major": 0, "minor": 2, "revision": 0, "seen": 32013312}
    save_darknet_weights(sd, tmp_path / "a.weights", plan=plan, header=header)
    assert sha256(tmp_path / "a.weights") == TINY_SHA
    model = load_darknet(cfg, weights)          # through the nn.Module and back
    assert model.source["sha256"] == TINY_SHA and model.source["darknet_header"] == header
    save_darknet_weights(model, tmp_path / "b.weights")
    assert sha256(tmp_path / "b.weights") == TINY_SHA


@pytest.mark.slow
@pytest.mark.parametrize("name", SLIM)
def test_slim_round_trip_byte_identical(name, tmp_path):
    d = asset(f"golden/darknet-slim/{name}")
    cfg, weights = d / f"{name}.cfg", d / f"{name}.weights"
    want = sha256(weights)
    plan = build_plan(parse_cfg(cfg))
    header, sd = read_weights(weights, plan)
    save_darknet_weights(sd, tmp_path / "plan.weights", plan=plan, header=header)
    assert sha256(tmp_path / "plan.weights") == want
    model = load_darknet(cfg, weights)
    save_darknet_weights(model, tmp_path / "model.weights")
    assert sha256(tmp_path / "model.weights") == want


def test_load_is_one_copy_of_the_file():
    cfg, weights = asset("zoo/darknet/yolov3-tiny.cfg"), asset("zoo/darknet/yolov3-tiny.weights")
    plan = build_plan(parse_cfg(cfg))
    _, sd = read_weights(weights, plan)
    # every tensor is a view of one buffer holding exactly the payload
    storages = {t.untyped_storage().data_ptr() for t in sd.values()}
    assert len(storages) == 1
    assert next(iter(sd.values())).untyped_storage().nbytes() == weights.stat().st_size - 20
    model = load_darknet(cfg, weights)
    msd = model.state_dict()
    assert {t.untyped_storage().data_ptr() for t in msd.values()} == {msd["layers.0.bn.bias"].untyped_storage().data_ptr()}
    raw = np.fromfile(weights, dtype="<f4", offset=20)
    assert np.array_equal(msd["layers.0.conv.weight"].numpy().ravel(), raw[4 * 16:4 * 16 + 16 * 27])


# -- accounting, layout and headers ------------------------------------------------------------------------
def test_file_order_and_names(small, tmp_path):
    cfg, plan = small
    vals = np.arange(SMALL_FLOATS, dtype=np.float32)
    header, sd = read_weights(write_file(tmp_path / "w.weights", vals), plan)
    assert header == {"major": 0, "minor": 2, "revision": 5, "seen": 1234}
    assert list(sd) == ["layers.0.bn.bias", "layers.0.bn.weight", "layers.0.bn.running_mean",
                        "layers.0.bn.running_var", "layers.0.conv.weight", "layers.1.conv.bias",
                        "layers.1.conv.weight", "layers.2.weights", "layers.3.fc.bias", "layers.3.fc.weight"]
    assert sd["layers.0.bn.weight"][0] == 4 and sd["layers.0.conv.weight"].shape == (4, 3, 3, 3)
    assert sd["layers.2.weights"].tolist() == [144.0, 145.0]
    assert sd["layers.3.fc.weight"].shape == (3, 256) and sd["layers.3.fc.weight"][1, 0] == 149 + 256
    assert np.array_equal(state_dict_to_buffer(plan, sd), vals)
    assert torch.equal(buffer_to_state_dict(plan, vals)["layers.3.fc.bias"], sd["layers.3.fc.bias"])


def test_old_32bit_seen_header(small, tmp_path):
    cfg, plan = small
    p = write_file(tmp_path / "old.weights", np.ones(SMALL_FLOATS), major=0, minor=1, revision=0, seen=77)
    header, sd = read_weights(p, plan)
    assert header == {"major": 0, "minor": 1, "revision": 0, "seen": 77}
    save_darknet_weights(sd, tmp_path / "rt.weights", plan=plan, header=header)
    assert sha256(tmp_path / "rt.weights") == sha256(p)


def test_transposed_connected_weights(small, tmp_path):
    cfg, plan = small
    vals = np.arange(SMALL_FLOATS, dtype=np.float32)
    p = write_file(tmp_path / "t.weights", vals, major=1001, minor=0)   # 1001*10 >= 2: 64-bit seen
    header, sd = read_weights(p, plan)
    fc_start = SMALL_FLOATS - 3 * 256
    stored = vals[fc_start:].reshape(256, 3)                            # (in, out) on disk
    assert np.array_equal(sd["layers.3.fc.weight"].numpy(), stored.T)
    save_darknet_weights(sd, tmp_path / "rt.weights", plan=plan, header=header)
    assert sha256(tmp_path / "rt.weights") == sha256(p)


BAD_WEIGHTS = {
    "truncated": (lambda p: write_file(p, np.zeros(SMALL_FLOATS - 10)),
                  rf"expected {SMALL_FLOATS} floats .* found {SMALL_FLOATS - 10}.*runs out in layer 3 \[connected\] "
                  rf"\(cfg line 18\) tensor fc.weight"),
    "truncated_mid_first_layer": (lambda p: write_file(p, np.zeros(6)),
                                  r"found 6; it runs out in layer 0 \[convolutional\] .* tensor bn.weight"),
    "trailing_bytes": (lambda p: write_file(p, np.zeros(SMALL_FLOATS + 3)),
                       rf"trailing data.*expected {SMALL_FLOATS} floats .* found {SMALL_FLOATS + 3}"),
    "stray_bytes": (lambda p: p.write_bytes(write_file(p, np.zeros(SMALL_FLOATS)).read_bytes() + b"\0\0"),
                    r"and 2 stray bytes"),
    "short_header": (lambda p: p.write_bytes(b"\0\0\0\0\2\0"), r"truncated header: the file has 6 bytes"),
    "negative_version": (lambda p: write_file(p, np.zeros(SMALL_FLOATS), major=-3),
                         r"bad header: version -3\.2\.5"),
    "wrong_seen_width": (lambda p: write_file(p, np.zeros(SMALL_FLOATS), major=0, minor=1)
                         .write_bytes(struct.pack("<3i", 0, 1, 0) + b"\0" * 8 + b"\0" * 4 * SMALL_FLOATS),
                         r"would fit a 20-byte header"),
    "empty": (lambda p: p.write_bytes(b""), r"truncated header: the file has 0 bytes"),
}


@pytest.mark.parametrize("case", sorted(BAD_WEIGHTS))
def test_bad_weights_raise_weights_error(case, small, tmp_path):
    cfg, plan = small
    make, pattern = BAD_WEIGHTS[case]
    p = tmp_path / "bad.weights"
    make(p)
    with pytest.raises(WeightsError, match=r"bad\.weights: .*" + pattern):
        read_weights(p, plan)
    with pytest.raises(WeightsError, match=r"bad\.weights"):
        load_darknet(cfg, p)


def test_missing_weights_file(small, tmp_path):
    with pytest.raises(WeightsError, match=r"nope\.weights: cannot open"):
        read_weights(tmp_path / "nope.weights", small[1])


def test_writer_rejects_mismatched_state_dict(small, tmp_path):
    cfg, plan = small
    _, sd = read_weights(write_file(tmp_path / "w.weights", np.zeros(SMALL_FLOATS)), plan)
    sd.pop("layers.1.conv.bias")
    with pytest.raises(WeightsError, match=r"does not match the cfg: missing key 'layers.1.conv.bias'"):
        save_darknet_weights(sd, tmp_path / "out.weights", plan=plan)
    assert not list(tmp_path.glob("out.weights*")) and not list(tmp_path.glob(".out.weights*"))


# -- --classes N -------------------------------------------------------------------------------------------
def test_num_classes_loads_all_but_the_head_convs():
    cfg, weights = asset("zoo/darknet/yolov3-tiny.cfg"), asset("zoo/darknet/yolov3-tiny.weights")
    plan = build_plan(parse_cfg(cfg))
    _, ref = read_weights(weights, plan)
    model = load_darknet(cfg, weights, num_classes=3)
    assert model.darknet_load.skipped == ["layers.15", "layers.22"]   # the convs feeding [yolo] 16 and 23
    assert model.names == ["class0", "class1", "class2"]
    sd = model.state_dict()
    assert sd["layers.15.conv.weight"].shape == (24, 512, 1, 1) and sd["layers.22.conv.bias"].shape == (24,)
    assert torch.isfinite(sd["layers.15.conv.weight"]).all() and not sd["layers.22.conv.bias"].any()
    for k, v in ref.items():
        if not k.startswith(("layers.15.", "layers.22.")):
            assert torch.equal(sd[k], v), k
    assert "classes=3" in model.cfg.text and "filters=24" in model.cfg.text
    out = model(torch.zeros(1, 3, 416, 416))
    assert out.shape[-1] == 4 + 1 + 3


def test_names_file_must_match_classes(tmp_path):
    """The bundled yolov3-tiny.cfg (80-class heads) with zero weights of its exact size: no real asset needed."""
    bundled = Path(__file__).resolve().parent.parent / "zooport" / "cfgs" / "darknet"
    cfg, coco = bundled / "yolov3-tiny.cfg", bundled / "coco.names"
    weights = write_file(tmp_path / "yolov3-tiny.weights", np.zeros((35_434_956 - 20) // 4))
    model = load_darknet(cfg, weights, names=coco)
    assert model.names[0] == "person" and len(model.names) == 80
    voc = tmp_path / "voc.names"
    voc.write_text("".join(f"class{i}\n" for i in range(20)))
    with pytest.raises(ParseError, match=r"voc\.names: has 20 class names but the cfg's heads have classes=80"):
        load_darknet(cfg, weights, names=voc)


def test_source_sha256_is_lazy_and_never_stale(small, tmp_path):
    cfg, plan = small
    w = write_file(tmp_path / "w.weights", np.ones(SMALL_FLOATS))
    model = load_darknet(cfg, w)
    assert model.source["sha256"] == sha256(w) and model.meta["source"]["sha256"] == sha256(w)
    model = load_darknet(cfg, w)
    w.write_bytes(w.read_bytes()[:-4] + b"\0\0\0\0")   # changed after loading: the hash would be wrong
    import os
    os.utime(w, ns=(1, 1))
    assert model.meta["source"]["sha256"] is None
