"""The YOLOv3 bridge: MMDetection's YOLOV3 layout <-> Darknet yolov3.cfg, against MMDetection's outputs.

Weights are generated with the formula of shared/README.md (golden/mmdet/yolov3_d53) in keys.tsv order.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from helpers import assert_close, asset, read_f32

from test_mmdet_parity import match_dets


def _keys(folder):
    rows = []
    for line in (folder / "keys.tsv").read_text().splitlines():
        if not line.strip():
            continue
        key, _, shape = line.partition("\t")
        rows.append((key, tuple(int(v) for v in shape.split("x")) if shape.strip() else ()))
    return rows


def _generate(rows):
    sd = {}
    k = 0
    for key, shape in rows:
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(0, dtype=torch.int64)
            continue
        u = np.random.Generator(np.random.PCG64(1000 + k)).random(int(np.prod(shape))) * 2 - 1
        k += 1
        if len(shape) == 4:
            v = u * np.sqrt(3 / (shape[1] * shape[2] * shape[3]))
        elif key.endswith(".running_var"):
            v = 1 + 0.5 * u
        elif key.endswith(".bn.weight"):
            v = 0.6 + 0.2 * u
        else:
            v = 0.05 * u
        sd[key] = torch.from_numpy(v.astype(np.float32).reshape(shape))
    return sd


@pytest.fixture(scope="module")
def bridge():
    folder = asset("golden/mmdet/yolov3_d53")
    rows = _keys(folder)
    x = torch.from_numpy(read_f32(folder / "input_bus_320.f32", (1, 3, 320, 320)).copy())
    preds = [read_f32(folder / f"pred{i}.f32", (1, 255, 10 * 2 ** i, 10 * 2 ** i)) for i in range(3)]
    return folder, rows, _generate(rows), x, preds


@pytest.fixture(scope="module")
def cfg320(tmp_path_factory, bridge):
    text = asset("darknet-cfg/yolov3.cfg").read_text()
    text = re.sub(r"(?m)^width\s*=.*$", "width=320", text)
    text = re.sub(r"(?m)^height\s*=.*$", "height=320", text)
    p = tmp_path_factory.mktemp("cfg") / "yolov3_320.cfg"
    p.write_text(text)
    return p


@pytest.mark.slow
def test_native_mmdet_yolov3_matches(bridge):
    from zooport.model_defs.mmdet import MMDetModel

    folder, rows, sd, x, preds = bridge
    model = MMDetModel(json.loads((folder / "config.json").read_text()))
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == rows
    model.load_state_dict(sd, strict=True)
    model.eval()
    with torch.no_grad():
        groups = model.raw(x)
        dets = model.predict(x)[0].double().numpy()
    assert len(groups) == 1 and len(groups[0]) == 3
    for i, (t, ref) in enumerate(zip(groups[0], preds)):
        assert_close(t, ref, what=f"mmdet yolov3 pred{i}")
    ref = np.loadtxt(folder / "dets.txt", ndmin=2)
    assert dets.shape == ref.shape
    missing = match_dets(dets, ref)
    assert not missing, f"{len(missing)} unmatched, first {missing[0]}"


@pytest.mark.slow
def test_darknet_bridge_round_trip(bridge, cfg320, tmp_path):
    import zooport
    from zooport.cli.main import main
    from zooport.converters.mmdet.load import load_mmdet
    from zooport.converters.mmdet.darknet_bridge import (darknet_to_mmdet_checkpoint, mmdet_to_darknet_state_dict,
                                                  write_darknet_weights)
    from zooport.parsers.darknet.cfg import parse_cfg
    from zooport.parsers.darknet.plan import build_plan

    folder, rows, sd, x, preds = bridge
    plan = build_plan(parse_cfg(cfg320))
    # MMDetection -> Darknet, two ways: via the plan + darknet-core's writer, and directly (no cfg needed)
    w1 = tmp_path / "a.weights"
    zooport.save_darknet_weights(mmdet_to_darknet_state_dict(sd, plan), w1, plan=plan)
    w2 = tmp_path / "b.weights"
    write_darknet_weights(w2, sd)
    assert w1.stat().st_size == 248_007_048
    assert w1.read_bytes() == w2.read_bytes()

    # Darknet runs the same network: head inputs equal MMDetection's pred maps (heads in stride 32, 16, 8 order)
    dk = zooport.load_darknet(cfg320, w1)
    with torch.no_grad():
        raw = dk.raw(x)
    assert len(raw) == 3
    for i, (t, ref) in enumerate(zip(raw, preds)):
        assert_close(t, ref, what=f"darknet yolov3 head {i}")

    # Darknet -> MMDetection checkpoint: keys and shapes exactly keys.tsv, values exactly the generated ones
    ckpt = darknet_to_mmdet_checkpoint(dk, names=None)
    del dk
    assert [(k, tuple(v.shape)) for k, v in ckpt["state_dict"].items()] == rows
    for k, v in sd.items():
        assert torch.equal(ckpt["state_dict"][k], v), k
    pth = tmp_path / "yolov3_mmdet.pth"
    torch.save(ckpt, pth)
    loaded = torch.load(pth, weights_only=True)
    assert list(loaded["state_dict"]) == [k for k, _ in rows]

    # the checkpoint loads natively without --config (config text in meta)
    native = load_mmdet(pth)
    assert native.model_cfg["type"] == "YOLOV3" and native.source["darknet_header"]["major"] == 0
    expected_cfg = json.loads((folder / "config.json").read_text())
    assert native.model_cfg["bbox_head"]["anchor_generator"] == expected_cfg["bbox_head"]["anchor_generator"]
    assert native.model_cfg["neck"] == expected_cfg["neck"]

    # MMDetection -> Darknet through the CLI: byte-identical to the first file
    w3 = tmp_path / "c.weights"
    assert main(["convert", "mmdet", str(pth), "--to", "darknet", "-o", str(w3)]) == 0
    assert w3.read_bytes() == w1.read_bytes()

    # Darknet -> MMDetection through the CLI (`convert darknet --to mmdet`), and back: byte-identical
    pth2 = tmp_path / "cli_mmdet.pth"
    assert main(["convert", "darknet", str(cfg320), str(w1), "--to", "mmdet", "-o", str(pth2)]) == 0
    cli_ckpt = torch.load(pth2, weights_only=True)
    assert [(k, tuple(v.shape)) for k, v in cli_ckpt["state_dict"].items()] == rows
    w4 = tmp_path / "d.weights"
    assert main(["convert", "mmdet", str(pth2), "--to", "darknet", "-o", str(w4)]) == 0
    assert w4.read_bytes() == w1.read_bytes()


def test_bridge_rejects_wrong_keys(bridge):
    from zooport.converters.mmdet.darknet_bridge import darknet_payload
    from zooport.errors import CheckpointError

    _, _, sd, _, _ = bridge
    bad = dict(sd)
    bad["bbox_head.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="bbox_head.extra.weight"):
        darknet_payload(bad)
    bad = {k: v for k, v in sd.items() if k != "neck.conv1.bn.running_var"}
    with pytest.raises(CheckpointError, match="neck.conv1.bn.running_var"):
        darknet_payload(bad)
