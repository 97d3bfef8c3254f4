"""``zooport convert darknet`` and ``zooport info darknet``: outputs, targets, --num-classes, and bad inputs
(exit code 2, one-line message, no traceback, no output file left)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import asset, sha256

from zooport.cli.main import main

from test_darknet_cfg import BAD_CFGS
from test_darknet_weights import SMALL_CFG, SMALL_FLOATS, TINY_SHA, write_file


def tiny():
    cfg, weights = asset("zoo/darknet/yolov3-tiny.cfg"), asset("zoo/darknet/yolov3-tiny.weights")
    assert sha256(weights) == TINY_SHA
    return cfg, weights


BUNDLED = Path(__file__).resolve().parent.parent / "zooport" / "cfgs" / "darknet"  # byte-equal to AlexeyAB's


def test_info_darknet_json(capsys):
    cfg = BUNDLED / "yolov4.cfg"
    assert main(["info", "darknet", str(cfg), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["layers"] == 162 and facts["weights_bytes"] == 257_717_640
    assert facts["params"] == (257_717_640 - 20) // 4
    assert [h["layer"] for h in facts["heads"]] == [139, 150, 161]


def test_convert_default_pt_beside_weights(tmp_path, capsys):
    cfg, weights = tiny()
    w = tmp_path / "yolov3-tiny.weights"
    shutil.copy(weights, w)
    assert main(["convert", "darknet", str(cfg), str(w), "--names", str(asset("zoo/darknet/coco.names"))]) == 0
    out = tmp_path / "yolov3-tiny.pt"
    assert f"wrote {out}" in capsys.readouterr().out
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    assert ckpt["family"] == "darknet" and ckpt["meta"]["names"][0] == "person"
    assert ckpt["meta"]["source"]["sha256"] == TINY_SHA and ckpt["meta"]["source"]["format"] == "darknet"
    assert ckpt["meta"]["input_size"] == [416, 416] and ckpt["meta"]["preprocess"]["mode"] == "resize"
    raw = np.fromfile(weights, dtype="<f4", offset=20)
    assert np.array_equal(ckpt["state_dict"]["layers.0.bn.bias"].numpy(), raw[:16])
    # the native checkpoint goes back to a byte-identical .weights file
    from zooport.converters.darknet.load import save_darknet_weights
    from zooport.converters.native import load_native

    save_darknet_weights(load_native(out), tmp_path / "back.weights")
    assert sha256(tmp_path / "back.weights") == TINY_SHA


def test_convert_format_darknet_round_trip(tmp_path):
    cfg, weights = tiny()
    out = tmp_path / "rt.weights"
    assert main(["convert", "darknet", str(cfg), str(weights), "-o", str(out)]) == 0  # format from suffix
    assert sha256(out) == TINY_SHA


def test_convert_safetensors_identical_tensors(tmp_path):
    from safetensors.torch import load_file

    from zooport.converters.darknet.load import read_weights
    from zooport.converters.native import load_native
    from zooport.parsers.darknet.cfg import parse_cfg
    from zooport.parsers.darknet.plan import build_plan

    cfg, weights = tiny()
    out = tmp_path / "m.safetensors"
    assert main(["convert", "darknet", str(cfg), str(weights), "--to", "safetensors", "-o", str(out)]) == 0
    _, ref = read_weights(weights, build_plan(parse_cfg(cfg)))
    got = load_file(str(out))
    assert list(got) and set(got) == set(ref)
    for k in ref:
        assert got[k].dtype == torch.float32 and torch.equal(got[k], ref[k]), k
    model = load_native(out)
    assert model.source["darknet_header"]["seen"] == 32013312
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_convert_classes_reports_skipped_layers(tmp_path, capsys):
    cfg, weights = tiny()
    out = tmp_path / "t3.pt"
    assert main(["convert", "darknet", str(cfg), str(weights), "--num-classes", "3", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "not loaded" in text and "layers.15" in text and "layers.22" in text
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    assert ckpt["state_dict"]["layers.15.conv.weight"].shape == (24, 512, 1, 1)
    assert "classes=3" in ckpt["arch"]["cfg"] and ckpt["meta"]["names"] == ["class0", "class1", "class2"]
    out_w = tmp_path / "t3.weights"
    assert main(["convert", "darknet", str(cfg), str(weights), "--classes", "3", "-o", str(out_w)]) == 0
    assert out_w.stat().st_size == 35_434_956 - 4 * (255 * 512 + 255 * 256 + 2 * 255) + 4 * (24 * 512 + 24 * 256 + 2 * 24)


def _small(tmp_path):
    cfg = tmp_path / "small.cfg"
    cfg.write_text(SMALL_CFG)
    return cfg, write_file(tmp_path / "small.weights", np.zeros(SMALL_FLOATS))


def _bad_cases(tmp_path):
    """(name, argv) pairs of bad inputs: every bad cfg of test_darknet_cfg plus bad weights/arguments."""
    cfg, good_w = _small(tmp_path)
    cases = []
    for name, (text, _) in sorted(BAD_CFGS.items()):
        p = tmp_path / f"{name}.cfg"
        p.write_text(text)
        cases.append((name, [str(p), str(good_w)]))
    trunc = write_file(tmp_path / "trunc.weights", np.zeros(SMALL_FLOATS - 1))
    trail = write_file(tmp_path / "trail.weights", np.zeros(SMALL_FLOATS + 1))
    hdr = tmp_path / "hdr.weights"
    hdr.write_bytes(b"\1\2")
    names = tmp_path / "two.names"
    names.write_text("a\nb\n")
    rnn = tmp_path / "rnn.cfg"  # the layer type, not a real model, is what is refused
    rnn.write_text("[net]\nbatch=1\nheight=1\nwidth=1\nchannels=256\n\n[rnn]\nbatch_normalize=1\noutput=1024\n"
                   "hidden=1024\nactivation=leaky\n\n[connected]\noutput=256\nactivation=leaky\n")
    cases += [("truncated", [str(cfg), str(trunc)]), ("trailing", [str(cfg), str(trail)]),
              ("bad_header", [str(cfg), str(hdr)]), ("missing_weights", [str(cfg), str(tmp_path / "no.weights")]),
              ("missing_cfg", [str(tmp_path / "no.cfg"), str(good_w)]), ("unsupported_rnn", [str(rnn), str(good_w)]),
              ("classes_zero", [str(cfg), str(good_w), "--num-classes", "0"]),
              ("classes_no_head", [str(cfg), str(good_w), "--num-classes", "2"])]
    # a model with an 80-class head (the bundled yolov3-tiny.cfg, zero weights of its exact size) and 2 names
    tiny_w = write_file(tmp_path / "tiny.weights", np.zeros((35_434_956 - 20) // 4))
    cases.append(("names_count", [str(BUNDLED / "yolov3-tiny.cfg"), str(tiny_w), "--names", str(names)]))
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pt", "darknet"])
def test_cli_bad_inputs_exit_2_and_leave_no_file(tmp_path, capsys, fmt):
    cases = _bad_cases(tmp_path)
    assert len(cases) >= 15
    outdir = tmp_path / "out"
    outdir.mkdir()
    for name, argv in cases:
        out = outdir / f"{name}.{'weights' if fmt == 'darknet' else 'pt'}"
        rc = main(["convert", "darknet", *argv, "-o", str(out), "--to", fmt])
        err = capsys.readouterr().err
        assert rc == 2, (name, err)
        assert err.startswith("zooport: error: ") and "Traceback" not in err, (name, err)
        assert len(err.strip().splitlines()) == 1, (name, err)
        assert os.listdir(outdir) == [], (name, os.listdir(outdir))


@pytest.mark.slow
def test_cli_subprocess_no_traceback(tmp_path):
    cfg, _ = _small(tmp_path)
    trunc = write_file(tmp_path / "trunc.weights", np.zeros(SMALL_FLOATS - 1))
    out = tmp_path / "x.pt"
    r = subprocess.run([sys.executable, "-m", "zooport", "convert", "darknet", str(cfg), str(trunc), "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "trunc.weights" in r.stderr and f"expected {SMALL_FLOATS} floats" in r.stderr
    assert not out.exists() and not list(tmp_path.glob(".x.pt*"))
    r = subprocess.run([sys.executable, "-m", "zooport", "info", "darknet", str(tmp_path / "missing.cfg")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "missing.cfg" in r.stderr and "Traceback" not in r.stderr
