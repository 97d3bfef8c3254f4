"""load_pretrained end to end: download from a local HTTP mirror, verify, cache, build, and
match the reference implementations' outputs (Darknet for yolov3-tiny, Ultralytics for yolov5n)."""
from __future__ import annotations

import pytest
import torch
from helpers import asset, assert_close, read_f32
from zoo_http import ZooServer

import zooport
from zooport.errors import CheckpointError, DownloadError, ManifestError

COCO_FIRST = ["person", "bicycle", "car"]


@pytest.fixture(scope="module")
def server():
    files = {"yolov3-tiny.weights": asset("zoo/darknet/yolov3-tiny.weights"),
             "yolov5n.pt": asset("zoo/yolov5/yolov5n.pt")}
    with ZooServer(files) as s:
        yield s


@pytest.fixture(scope="module")
def cache_env(server, tmp_path_factory):
    """One cache for the module: the first load downloads, later ones must not."""
    mp = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("zoo-cache")
    mp.setenv("ZOOPORT_CACHE", str(folder))
    mp.setenv("ZOOPORT_MIRROR", server.url)
    mp.delenv("ZOOPORT_OFFLINE", raising=False)
    yield folder
    mp.undo()


def _yolov3_tiny_check(model):
    x = torch.from_numpy(read_f32(asset("golden/real/input_bus_416.f32"), (1, 3, 416, 416)).copy())
    with torch.no_grad():
        raw = model.raw(x)
    assert len(raw) == 2
    for t, (n, hw) in zip(raw, [(16, 13), (23, 26)]):
        ref = read_f32(asset(f"golden/real/yolov3-tiny_bus/head{n:03d}_in.f32"), (1, 255, hw, hw))
        assert_close(t, ref, what=f"yolov3-tiny head {n} input")


def _yolov5n_check(model):
    x = torch.from_numpy(read_f32(asset("golden/real/yolov5n_bus/input_640.f32"), (1, 3, 640, 640)).copy())
    with torch.no_grad():
        raw = model.raw(x)
    assert len(raw) == 3
    for k, (t, hw) in enumerate(zip(raw, (80, 40, 20))):
        ref = read_f32(asset(f"golden/real/yolov5n_bus/raw{k}.f32"), (1, 3, hw, hw, 85))
        ours = t.reshape(1, 3, 85, hw, hw).permute(0, 1, 3, 4, 2)  # (B, na*no, H, W) -> Ultralytics layout
        assert_close(ours, ref, what=f"yolov5n raw{k}")


def test_yolov3_tiny_download_verify_cache_and_match_darknet(cache_env, server):
    server.reset()
    model = zooport.load_pretrained("yolov3-tiny")
    assert [r[0] for r in server.requests] == ["/yolov3-tiny.weights"]
    assert (cache_env / "yolov3-tiny.weights").is_file()
    assert not model.training
    assert model.names[:3] == COCO_FIRST and len(model.names) == 80
    assert model.stride == [32, 16] and model.input_size == [416, 416]
    assert model.preprocess["mode"] == "resize"
    assert model.source["zoo"] == "yolov3-tiny.darknet_coco"
    assert model.source["sha256"] == "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c"
    _yolov3_tiny_check(model)
    # second call: served from the cache, no request
    again = zooport.load_pretrained("yolov3-tiny.darknet_coco")
    assert len(server.requests) == 1
    _yolov3_tiny_check(again)


def test_yolov5n_download_verify_cache_and_match_ultralytics(cache_env, server):
    server.reset()
    model = zooport.load_pretrained("yolov5n")
    assert [r[0] for r in server.requests] == ["/yolov5n.pt"]
    assert model.names[:3] == COCO_FIRST
    assert model.stride == [8, 16, 32] and model.input_size == [640, 640]
    assert model.preprocess["mode"] == "letterbox" and model.preprocess["pad_value"] == 114
    assert model.source["sha256"] == "4f180cf23ba0717ada0badd6c685026d73d48f184d00fc159c2641284b2ac0a3"
    _yolov5n_check(model)
    zooport.load_pretrained("yolov5n.v7_coco")
    assert len(server.requests) == 1


def test_fused_model_still_matches(cache_env):
    model = zooport.load_pretrained("yolov5n", fuse=True)
    x = torch.from_numpy(read_f32(asset("golden/real/yolov5n_bus/input_640.f32"), (1, 3, 640, 640)).copy())
    with torch.no_grad():
        raw = model.raw(x)
    ref = read_f32(asset("golden/real/yolov5n_bus/raw2.f32"), (1, 3, 20, 20, 85))
    assert_close(raw[2].reshape(1, 3, 85, 20, 20).permute(0, 1, 3, 4, 2), ref, what="fused yolov5n raw2")


def test_native_checkpoint_loads_through_load_pretrained(cache_env, tmp_path):
    model = zooport.load_pretrained("yolov3-tiny")
    for name in ("yolov3-tiny.pt", "yolov3-tiny.safetensors"):
        out = zooport.save_native(model, tmp_path / name)
        back = zooport.load_pretrained(out)
        assert back.names == model.names and back.input_size == [416, 416]
        _yolov3_tiny_check(back)
    with pytest.raises(CheckpointError, match="no such file"):
        zooport.load_pretrained(tmp_path / "missing.pt")


def test_local_weights_stand_in_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOPORT_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("ZOOPORT_OFFLINE", "1")
    model = zooport.load_pretrained("yolov3-tiny", weights=asset("zoo/darknet/yolov3-tiny.weights"))
    _yolov3_tiny_check(model)
    with pytest.raises(DownloadError, match=r"yolov3-tiny\.weights.*ZOOPORT_OFFLINE"):
        zooport.load_pretrained("yolov3-tiny")
    assert not (tmp_path / "empty" / "yolov3-tiny.weights").exists()


def test_unknown_name_suggests(monkeypatch):
    with pytest.raises(ManifestError, match="did you mean.*yolov5s"):
        zooport.load_pretrained("yolov5ss")
    assert "yolov4.darknet_coco" in zooport.list_models()
    assert "yolov4" in zooport.list_models(aliases=True)
    assert len(zooport.list_models()) == 26  # 16 Darknet / YOLOv5 + 10 MMDetection
