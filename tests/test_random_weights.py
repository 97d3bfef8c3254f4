"""A Darknet cfg without weights is refused unless random weights are asked for (seeded, explicit)."""
from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch

import zooport
from zooport.cli.main import main
from zooport.converters.darknet.load import load_darknet
from zooport.errors import UsageError

PKG = Path(zooport.__file__).resolve().parent
CFG = PKG / "cfgs" / "darknet" / "yolov3-tiny.cfg"
NAMES = PKG / "cfgs" / "darknet" / "coco.names"


@pytest.mark.parametrize("load", [lambda: load_darknet(CFG), lambda: zooport.load(str(CFG)),
                                  lambda: zooport.load([str(CFG)])])
def test_cfg_alone_is_refused(load):
    with pytest.raises(UsageError, match=r"yolov3-tiny\.cfg: a Darknet cfg without weights .*random.weights"):
        load()


def test_random_weights_are_seeded_and_initialised():
    a = load_darknet(CFG, random_weights=True, seed=5).state_dict()
    m = zooport.load(str(CFG), random_weights=True, seed=5)
    b = m.state_dict()
    c = load_darknet(CFG, random_weights=True, seed=6).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seed, same tensors: no uninitialised memory
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
    assert all(torch.isfinite(v).all() for v in a.values() if v.is_floating_point())
    assert m.source["weights"] == "random (seed 5)"


def test_random_weights_contradictions_are_usage_errors(tmp_path):
    w = tmp_path / "t.weights"
    zooport.save_darknet_weights(load_darknet(CFG, random_weights=True), w)
    with pytest.raises(UsageError, match="choose one"):
        load_darknet(CFG, w, random_weights=True)
    with pytest.raises(UsageError, match="random weights apply to a Darknet cfg alone"):
        zooport.load("yolov4", random_weights=True)


def test_cli_export_cfg_alone_exit_2_then_random_weights(tmp_path, capsys):
    out = tmp_path / "x.onnx"
    assert main(["export", "onnx", str(CFG), "-o", str(out), "--imgsz", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zooport: error: ") and "--random-weights" in err[0]
    assert list(tmp_path.iterdir()) == []
    assert main(["export", "onnx", str(CFG), "-o", str(out), "--imgsz", "64", "--random-weights", "--seed", "3"]) == 0
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["source"])["weights"] == "random (seed 3)"


def test_cli_verify_cfg_alone_exit_2_then_random_weights(tmp_path, capsys):
    from eval_fake import make_voc_tree

    voc = make_voc_tree(tmp_path / "voc")
    common = ["--voc", str(voc), "--imgsz", "64", "--names", str(NAMES), "--class-map", "coco-voc"]
    assert main(["verify", str(CFG), *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zooport: error: ") and "--random-weights" in err[0]
    res = tmp_path / "r.json"
    assert main(["verify", str(CFG), *common, "--random-weights", "--json", str(res)]) == 0
    assert {"mAP_voc07", "mAP_voc10"} <= set(json.loads(res.read_text())["metrics"])
